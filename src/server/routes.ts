// Which backend answers a request of a tenant: a program or a named origin, by path prefix (at a
// segment boundary, longest first) and method. Pure functions over the tenant's config.
import type { ProgramConfig, TenantConfig } from './config.ts';

export type RouteTarget = { kind: 'program'; name: string } | { kind: 'origin'; name: string };

export interface Route {
  prefix: string;
  methods: ReadonlySet<string>;
  target: RouteTarget;
}

/** The tenant's routes, longest prefix first; programs before origins for equal prefixes. */
export function buildRoutes(tenant: Pick<TenantConfig, 'routes'> & { programs: ReadonlyArray<Pick<ProgramConfig, 'name' | 'roles' | 'routes'>> }): Route[] {
  const routes: Route[] = [];
  for (const p of tenant.programs) {
    if (!p.roles.includes('generate')) continue;
    for (const r of p.routes) routes.push({ prefix: r.prefix, methods: new Set(r.methods), target: { kind: 'program', name: p.name } });
  }
  for (const r of tenant.routes) routes.push({ prefix: r.prefix, methods: new Set(r.methods), target: { kind: 'origin', name: r.origin } });
  return routes.sort((a, b) => b.prefix.length - a.prefix.length || (a.target.kind === 'program' ? -1 : 1));
}

/** True when `path` is `prefix` or continues it after a `/` (or `?`): /hello matches /hello/x, not /helloworld. */
function prefixMatches(prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false;
  if (path.length === prefix.length || prefix.endsWith('/')) return true;
  const next = path.charCodeAt(prefix.length);
  return next === 47 /* / */ || next === 63 /* ? */;
}

/** The target for `method` `url`: the first matching route, else the `default` origin, else none. */
export function matchRoute(routes: readonly Route[], hasDefaultOrigin: boolean, method: string, url: string): RouteTarget | undefined {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  for (const r of routes) if (r.methods.has(method) && prefixMatches(r.prefix, path)) return r.target;
  return hasDefaultOrigin ? { kind: 'origin', name: 'default' } : undefined;
}
