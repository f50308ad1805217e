// The admin API, on its own port. Every call but /v1/health carries `Authorization: Bearer
// <token>`: a tenant's token reaches only that tenant's routes, the operator's token reaches all.
// docs/admin-api.md is the reference.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BanSyntaxError } from '../cache/index.ts';
import { ProgramError, SandboxError } from '../sandbox/index.ts';
import { readLimited } from '../http/body.ts';
import { ConfigError } from './config.ts';
import { Dashboard } from './dashboard.ts';
import { ReaderRefused, TooManyReaders } from './live-log.ts';
import { FilterError, parseFilter, type RecordFilter } from './record-filter.ts';
import { metricsRegistry } from './metrics.ts';
import type { EdgeServer, TenantStatsReport } from './server.ts';

const MAX_UPLOAD_BYTES = 256 * 1024 * 1024;
const MAX_JSON_BYTES = 64 * 1024;

type Caller = { kind: 'operator' } | { kind: 'tenant'; tenant: string };

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = `${JSON.stringify(value, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Whom a token names: the operator, a tenant, or nobody. */
function callerOf(server: EdgeServer, token: string): Caller | null {
  const op = server.config.server.operatorToken;
  if (op !== null && sameSecret(token, op)) return { kind: 'operator' };
  for (const t of server.config.tenants) if (sameSecret(token, t.token)) return { kind: 'tenant', tenant: t.name };
  return null;
}

/**
 * Who is calling: from the bearer token, or from the dashboard's session cookie — then a change
 * (any method but GET and HEAD) must also carry the session's CSRF token. 401 without either.
 */
function authenticate(server: EdgeServer, dashboard: Dashboard, req: IncomingMessage): Caller {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!m) {
    const session = dashboard.session(req);
    if (session === undefined) throw new HttpError(401, 'missing bearer token');
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD' && !Dashboard.csrfOk(req, session)) throw new HttpError(403, 'missing or wrong X-CSRF-Token for this session');
    const caller = callerOf(server, session.token);
    if (caller === null) throw new HttpError(401, 'session expired');
    return caller;
  }
  const caller = callerOf(server, m[1]!);
  if (caller === null) throw new HttpError(401, 'unknown token');
  return caller;
}

function allow(caller: Caller, tenant: string | null): void {
  if (caller.kind === 'operator') return;
  if (tenant === null || caller.tenant !== tenant) throw new HttpError(403, tenant === null ? 'operator token required' : `token not valid for tenant ${tenant}`);
}

const readBody = (req: IncomingMessage, limit: number): Promise<Buffer> =>
  readLimited(req, limit, (n) => new HttpError(413, `body larger than ${n} bytes`));

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const text = (await readBody(req, MAX_JSON_BYTES)).toString('utf8');
  try {
    const v: unknown = JSON.parse(text || '{}');
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'body must be a JSON object');
  }
}

function stringField(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  if (typeof v !== 'string' || v === '') throw new HttpError(400, `"${name}" must be a non-empty string`);
  return v;
}

function tenantSummary(server: EdgeServer, name: string): Record<string, unknown> {
  const t = server.tenants.get(name);
  if (!t) throw new HttpError(404, `no tenant ${name}`);
  return {
    name,
    hosts: t.config.hosts,
    origins: t.config.origins.map((o) => ({ name: o.name, url: o.url, healthy: t.origins.get(o.name)?.healthy ?? null })),
    programs: t.config.programs.map((p) => {
      const loaded = t.programs.get(p.name);
      return { name: p.name, mode: p.mode, roles: p.roles, version: loaded?.key ?? null, loadedAt: loaded?.loadedAt ?? null, loadMs: loaded?.loadMs ?? null, routes: p.routes };
    }),
  };
}

/** A tenant's stats as JSON: histograms as their non-empty buckets, for windows of the reader's own. */
function statsJson(tenant: string, report: TenantStatsReport): Record<string, unknown> {
  const { histograms, ...rest } = report;
  return { tenant, ...rest, buckets: { latency: histograms.latency.sparse(), vm: histograms.vm.sparse() } };
}

/**
 * Starts a live log stream on `req`'s connection, which the log thread then answers and owns
 * until the reader leaves: NDJSON, or Server-Sent Events when asked (`Accept:
 * text/event-stream` or `format=sse`). `tenant` null: every tenant's records.
 */
async function streamLog(server: EdgeServer, req: IncomingMessage, tenant: string | null, query: URLSearchParams): Promise<void> {
  const format = query.get('format') ?? ((req.headers.accept ?? '').includes('text/event-stream') ? 'sse' : 'ndjson');
  if (format !== 'sse' && format !== 'ndjson') throw new HttpError(400, `format "${format.slice(0, 20)}": expected ndjson or sse`);
  query.delete('format');
  let filter: RecordFilter;
  try {
    filter = parseFilter(query);
  } catch (err) {
    if (err instanceof FilterError) throw new HttpError(400, err.message);
    throw err;
  }
  if (tenant !== null) filter.tenant = tenant;
  else if (filter.tenant !== undefined && !server.tenants.has(filter.tenant)) throw new HttpError(404, `no tenant ${filter.tenant}`);
  try {
    // Answered by the log thread, which takes the connection over (live-log.ts).
    await server.liveLog.add({ tenant: tenant ?? filter.tenant ?? null, filter, format, chunked: req.httpVersion !== '1.0' }, req.socket);
  } catch (err) {
    if (err instanceof TooManyReaders) throw new HttpError(429, `too many live log readers: ${err.message}; close one first`);
    if (err instanceof ReaderRefused) throw new HttpError(503, `the live log cannot take this reader: ${err.message}`);
    throw err;
  }
}

/** The path segments of a request target, percent-decoded; 400 for a target or escape that does not parse. */
function pathParts(target: string): string[] {
  let url: URL;
  try {
    url = new URL(target, 'http://admin.invalid');
  } catch {
    throw new HttpError(400, 'malformed request target');
  }
  return url.pathname.split('/').filter(Boolean).map((segment) => {
    try {
      return decodeURIComponent(segment);
    } catch {
      throw new HttpError(400, `malformed percent-escape in path segment "${segment.slice(0, 100)}"`);
    }
  });
}

/** The query of a request target (pathParts has checked that it parses). */
const queryOf = (target: string): URLSearchParams => new URL(target, 'http://admin.invalid').searchParams;

/** A purge target the cache understands: an origin-form path, or an absolute URL that parses. */
function purgeTarget(body: Record<string, unknown>): string {
  const target = stringField(body, 'url');
  if (!target.startsWith('/') && !URL.canParse(target)) throw new HttpError(400, '"url" must be a path (/path?query) or an absolute URL (http://host/path)');
  return target;
}

/** The admin request handler for `startFront`. */
export function registerAdmin(server: EdgeServer) {
  const metrics = metricsRegistry(server);
  const dashboard = new Dashboard((token) => callerOf(server, token) !== null);
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    try {
      const parts = pathParts(req.url ?? '/');
      if (parts[0] !== 'v1') {
        if (await dashboard.handle(req, res, new URL(req.url ?? '/', 'http://admin.invalid').pathname)) return;
        throw new HttpError(404, 'unknown admin route');
      }
      if (parts[1] === 'health' && parts.length === 2) return json(res, 200, { ok: true });
      const caller = authenticate(server, dashboard, req);

      if (parts[1] === 'metrics' && parts.length === 2 && method === 'GET') {
        // A tenant's token scrapes that tenant's series; the operator's, every tenant's and the process's.
        const text = await metrics.scrape(caller.kind === 'operator' ? null : caller.tenant);
        res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
        res.end(text);
        return;
      }
      if (parts[1] === 'log' && parts.length === 2 && method === 'GET') {
        allow(caller, null);
        return await streamLog(server, req, null, queryOf(req.url ?? '/'));
      }
      if (parts[1] === 'stats' && parts.length === 2 && method === 'GET') {
        const names = caller.kind === 'operator' ? [...server.tenants.keys()] : [caller.tenant];
        const tenants = await Promise.all(names.map(async (n) => statsJson(n, await server.tenantStats(n))));
        // The shared cache as a whole is every tenant's: the operator's to see.
        return json(res, 200, caller.kind === 'operator' ? { tenants, store: server.cacheStoreStats() } : { tenants });
      }
      if (parts[1] === 'failures' && parts.length === 2 && method === 'GET') {
        allow(caller, null);
        return json(res, 200, { failures: server.failures.list(null) });
      }
      if (parts[1] === 'tenants' && parts.length === 2 && method === 'GET') {
        allow(caller, null);
        return json(res, 200, { tenants: [...server.tenants.keys()].map((n) => tenantSummary(server, n)) });
      }
      if (parts[1] === 'reload' && parts.length === 2 && method === 'POST') {
        allow(caller, null);
        const next = server.loadNextConfig();
        const diff = await server.reload(next);
        return json(res, 200, { reloaded: true, ...diff, warnings: next.warnings });
      }
      if (parts[1] === 'tenants' && parts[2] !== undefined) {
        const tenant = parts[2];
        allow(caller, tenant);
        if (!server.tenants.has(tenant)) throw new HttpError(404, `no tenant ${tenant}`);
        const action = parts.slice(3).join('/');
        if (action === '' && method === 'GET') return json(res, 200, tenantSummary(server, tenant));
        if (action === 'stats' && method === 'GET') {
          return json(res, 200, statsJson(tenant, await server.tenantStats(tenant)));
        }
        if (action === 'log' && method === 'GET') return await streamLog(server, req, tenant, queryOf(req.url ?? '/'));
        if (action === 'failures' && method === 'GET') return json(res, 200, { failures: server.failures.list(tenant) });
        if (parts[3] === 'failures' && parts[4] !== undefined && parts.length === 5 && method === 'GET') {
          const bundle = server.failures.get(tenant, parts[4]);
          if (bundle === undefined) throw new HttpError(404, `no failure bundle ${parts[4].slice(0, 100)} of tenant ${tenant}`);
          res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(bundle), 'cache-control': 'no-store' });
          res.end(bundle);
          return;
        }
        if (action === 'purge' && method === 'POST') {
          const body = await readJson(req);
          return json(res, 200, { purged: await server.purge(tenant, purgeTarget(body)) });
        }
        if (action === 'purge-tag' && method === 'POST') {
          const body = await readJson(req);
          return json(res, 200, { purged: await server.purgeTag(tenant, stringField(body, 'tag')) });
        }
        if (action === 'ban' && method === 'POST') {
          const body = await readJson(req);
          await server.ban(tenant, stringField(body, 'expression'));
          return json(res, 200, { banned: true });
        }
        if (parts[3] === 'programs' && parts[4] !== undefined && parts.length === 5 && method === 'PUT') {
          const elf = await readBody(req, MAX_UPLOAD_BYTES);
          const started = performance.now();
          const loaded = await server.uploadProgram(tenant, parts[4], elf);
          return json(res, 200, { program: parts[4], version: loaded.key, loadMs: Math.round(performance.now() - started) });
        }
      }
      throw new HttpError(404, 'unknown admin route');
    } catch (err) {
      if (err instanceof HttpError) return json(res, err.status, { error: err.message });
      if (err instanceof BanSyntaxError) return json(res, 400, { error: err.message });
      if (err instanceof ConfigError) return json(res, 400, { error: 'config refused; nothing changed', problems: err.message.split('\n') });
      if (err instanceof SandboxError || err instanceof ProgramError) return json(res, 422, { error: `program refused; nothing changed: ${err.message}` });
      if (err instanceof Error && /has no program/.test(err.message)) return json(res, 404, { error: err.message });
      throw err;
    }
  };
}
