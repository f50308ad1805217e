// Rules that span more than one value: unique names, hosts and tokens, routes that name existing
// origins and do not collide, program roles that make sense together. They run on the typed
// config once its shape is right, and report every violation rather than the first.
import { MAX_STORED_BODY_BYTES } from '../../cache/index.ts';
import type { RawProblem, Segment } from './document.ts';
import type { Config, HttpMethod, RouteConfig } from './types.ts';
import { formatSize } from './values.ts';

/** Below this, a token is guessable enough to deserve a warning (the demo's is longer). */
const MIN_TOKEN_LENGTH = 16;

export function formatPath(path: readonly Segment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

export function checkConfig(config: Omit<Config, 'file' | 'warnings'>): { errors: RawProblem[]; warnings: RawProblem[] } {
  const errors: RawProblem[] = [];
  const warnings: RawProblem[] = [];
  const error = (path: Segment[], message: string): void => void errors.push({ path, message });
  const warn = (path: Segment[], message: string): void => void warnings.push({ path, message });

  const { listen, admin, operatorToken, workers, cacheMaxBytes } = config.server;
  if (workers !== undefined) {
    warn(['server', 'workers'], 'no longer used: programs run on the thread that serves the connection, a slice at a time (server.slice); remove it');
  }
  // Port 0 lets the system pick, so two zeros never clash.
  if (listen.port !== 0 && listen.port === admin.port && listen.host === admin.host) {
    error(['server', 'admin'], `expected an address other than server.listen's, got the same (${admin.host}:${admin.port})`);
  }
  if (operatorToken !== null && operatorToken.length < MIN_TOKEN_LENGTH) {
    warn(['server', 'operatorToken'], `shorter than ${MIN_TOKEN_LENGTH} characters (${operatorToken.length}): use a long random token`);
  }

  const cacheBytes = config.tenants.reduce((n, t) => n + t.cache.memoryBytes, 0);
  if (cacheMaxBytes !== null && cacheBytes > cacheMaxBytes) {
    error(['server', 'cacheMaxMemory'], `expected at least the tenants' cache memory added up (${formatSize(cacheBytes)}), got ${formatSize(cacheMaxBytes)}`);
  }

  const tenantByName = new Map<string, number>();
  const hostOwner = new Map<string, Segment[]>();
  const tokenOwner = new Map<string, number>();
  config.tenants.forEach((t, ti) => {
    const at = (...rest: Segment[]): Segment[] => ['tenants', ti, ...rest];
    const sameName = tenantByName.get(t.name);
    if (sameName !== undefined) error(at('name'), `expected a tenant name no other tenant has, got ${JSON.stringify(t.name)} (also tenants[${sameName}].name)`);
    else tenantByName.set(t.name, ti);

    t.hosts.forEach((host, hi) => {
      const owner = hostOwner.get(host);
      if (owner === undefined) hostOwner.set(host, at('hosts', hi));
      else if (owner[1] === ti) error(at('hosts', hi), `expected each host once, got ${JSON.stringify(host)} again (also ${formatPath(owner)})`);
      else error(at('hosts', hi), `expected a host no other tenant serves, got ${JSON.stringify(host)} (already ${formatPath(owner)}, tenant ${JSON.stringify(config.tenants[owner[1] as number]?.name)})`);
    });

    // A shared token would let one tenant act on another's cache and programs.
    const tokenTwin = tokenOwner.get(t.token);
    if (tokenTwin !== undefined) error(at('token'), `expected a token no other tenant uses, got the same token as tenants[${tokenTwin}].token`);
    else tokenOwner.set(t.token, ti);
    if (t.token === operatorToken) error(at('token'), 'expected a token other than server.operatorToken, got the same token');
    else if (t.token.length < MIN_TOKEN_LENGTH) warn(at('token'), `shorter than ${MIN_TOKEN_LENGTH} characters (${t.token.length}): use a long random token outside of demos`);

    const originNames = new Map<string, number>();
    t.origins.forEach((o, oi) => {
      const twin = originNames.get(o.name);
      if (twin !== undefined) error(at('origins', oi, 'name'), `expected an origin name unique in this tenant, got ${JSON.stringify(o.name)} (also origins[${twin}].name)`);
      else originNames.set(o.name, oi);
    });
    if (t.origins.length > 0 && !originNames.has('default')) {
      warn(at('origins'), 'no origin is named "default": requests that no route matches will get a 404');
    }
    const known = [...originNames.keys()].join(', ') || 'none';
    t.routes.forEach((r, ri) => {
      if (!originNames.has(r.origin)) error(at('routes', ri, 'origin'), `expected the name of one of this tenant's origins (${known}), got ${JSON.stringify(r.origin)}`);
    });

    const claims = new Map<string, Segment[]>();
    const claim = (r: RouteConfig, path: Segment[]): void => {
      const clashes: HttpMethod[] = [];
      let other: Segment[] | undefined;
      for (const m of r.methods) {
        const key = `${m} ${r.prefix}`;
        const owner = claims.get(key);
        if (owner) {
          clashes.push(m);
          other ??= owner;
        } else {
          claims.set(key, path);
        }
      }
      if (other) error([...path, 'prefix'], `expected a prefix and methods no other route claims, got ${JSON.stringify(r.prefix)} for ${clashes.join(', ')} (also ${formatPath(other)})`);
    };
    t.routes.forEach((r, ri) => claim(r, at('routes', ri)));

    const programNames = new Map<string, number>();
    const hookOwner = new Map<string, number>();
    t.programs.forEach((p, pi) => {
      const pat = (...rest: Segment[]): Segment[] => at('programs', pi, ...rest);
      const twin = programNames.get(p.name);
      if (twin !== undefined) error(pat('name'), `expected a program name unique in this tenant, got ${JSON.stringify(p.name)} (also programs[${twin}].name)`);
      else programNames.set(p.name, pi);

      if (p.mode === 'cgi' && p.roles.some((r) => r !== 'generate')) {
        error(pat('roles'), `expected only generate for a cgi program (hooks need the SDK), got [${p.roles.join(', ')}]`);
      }
      if (p.mode === 'cgi' && p.lifecycle === 'persistent') {
        error(pat('lifecycle'), 'expected ephemeral for a cgi program (it starts afresh for every request), got "persistent"');
      }
      if (p.mode === 'cgi' && p.warmup !== null) error(pat('warmup'), 'expected no warmup for a cgi program (it has no snapshot to warm), got one');
      for (const key of ['resetAfterRequests', 'resetAboveDirty'] as const) {
        const set = key === 'resetAfterRequests' ? p.resetAfterRequests : p.resetAboveDirtyBytes;
        if (set !== null && p.lifecycle !== 'persistent') error(pat(key), `expected ${key} only with lifecycle: persistent (an ephemeral program is reset after every request), got ${p.lifecycle}`);
      }
      const seen = new Set<string>();
      p.roles.forEach((role, ri) => {
        if (seen.has(role)) error(pat('roles', ri), `expected each role once, got ${JSON.stringify(role)} again`);
        seen.add(role);
        if (role === 'generate') return;
        // Hooks run in a fixed place of the request's life; two would need an order nobody chose.
        const first = hookOwner.get(role);
        if (first !== undefined && first !== pi) error(pat('roles', ri), `expected at most one ${role} program per tenant, got a second (also programs[${first}])`);
        else hookOwner.set(role, pi);
      });
      if (seen.has('generate') && p.routes.length === 0) {
        error(pat('routes'), 'expected at least one route for a program with the generate role, got none');
      } else if (!seen.has('generate') && p.routes.length > 0) {
        error(pat('routes'), `expected no routes for a program without the generate role, got ${p.routes.length}`);
      }
      p.routes.forEach((r, ri) => claim(r, pat('routes', ri)));
    });

    if (t.cache.maxObjectBytes > t.cache.memoryBytes) {
      error(at('cache', 'maxObjectSize'), `expected at most cache.memory (${formatSize(t.cache.memoryBytes)}), got ${formatSize(t.cache.maxObjectBytes)}`);
    } else if (t.cache.maxObjectBytes > MAX_STORED_BODY_BYTES) {
      error(at('cache', 'maxObjectSize'), `expected at most ${formatSize(MAX_STORED_BODY_BYTES)} (the largest body the cache keeps), got ${formatSize(t.cache.maxObjectBytes)}`);
    }
  });
  return { errors, warnings };
}
