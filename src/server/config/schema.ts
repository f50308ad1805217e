// The config file's shape as a zod schema: keys, types, defaults, and the mapping from file names
// (`timeout: 1s`) to the typed Config (`timeoutMs: 1000`). Every issue it raises already reads
// `expected …, got …`; cross-field rules (uniqueness, references) live in checks.ts.
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { programFile, readableDirectory } from './files.ts';
import { DEFAULT_SLICE_MS, MAX_BATCH, MAX_WARMUP_REQUESTS } from '../../sandbox/index.ts';
import type { CacheConfig, Config, HealthCheckConfig, KvConfig, Lifecycle, OriginConfig, OriginRouteConfig, ProgramConfig, ProgramRole, RouteConfig, ServerConfig, TenantConfig, WarmupConfig } from './types.ts';
import {
  HTTP_METHODS, no, ok, parseAddress, parseDuration, parseGuestMemory, parseHost, parseInteger, parseMethod, parseName,
  parseOriginUrl, parsePathPrefix, parseSize, show, type Parsed,
} from './values.ts';

const MiB = 1024 * 1024;

/** Defaults of every optional key; docs/config.md lists the same values. */
export const DEFAULTS = {
  listen: { host: '127.0.0.1', port: 8080 },
  admin: { host: '127.0.0.1', port: 8081 },
  sliceMs: DEFAULT_SLICE_MS,
  /** One serving thread per CPU this process may use. */
  shards: Math.min(256, availableParallelism()),
  origin: { name: 'default', connectTimeoutMs: 5000, firstByteTimeoutMs: 30_000, idleTimeoutMs: 30_000, connections: 128 },
  healthCheck: { intervalMs: 5000, timeoutMs: 2000, threshold: 2 },
  cache: { memoryBytes: 64 * MiB, defaultGraceMs: 10_000, defaultKeepMs: 60_000, maxObjectBytes: 8 * MiB },
  kv: { memoryBytes: 1 * MiB },
  failureBundles: { count: 20, memoryBytes: 4 * MiB },
  liveLogReaders: { total: 64, perTenant: 16 },
  program: {
    mode: 'sdk', roles: ['generate'], memoryBytes: 64 * MiB, timeoutMs: 1000, initTimeoutMs: 10_000, concurrency: 4,
    queueTimeoutMs: 100, maxRequestBytes: 1 * MiB, maxResponseBytes: 8 * MiB, lifecycle: 'ephemeral',
  },
} as const;

type Shown = (v: unknown) => string;

/** A size given as a bare number is bytes; saying so explains why `memory: 64` is refused. */
const showSize: Shown = (v) => (typeof v === 'number' ? `${v} (bytes)` : show(v));
/** Tokens are secrets: a message never repeats one. */
const showSecret: Shown = (v) => (typeof v === 'string' ? `a ${v.length}-character string (not shown)` : typeof v === 'number' ? 'a number (not shown)' : show(v));

/** A value checked by one of the parsers in values.ts, with its `expected …, got …` message. */
function leaf<T>(parse: (v: unknown) => Parsed<T>, shown: Shown = show) {
  return z.unknown().transform((v, ctx): T => {
    const r = parse(v);
    if (r.ok) return r.value;
    ctx.addIssue({ code: 'custom', message: `expected ${r.expected}, got ${shown(v)}${r.detail ? ` (${r.detail})` : ''}`, input: v });
    return z.NEVER;
  });
}

const expecting = (what: string) => ({ error: (iss: { input?: unknown }) => `expected ${what}, got ${show(iss.input)}` });

/** A mapping with exactly these keys; unknown keys are reported by the caller, one per key. */
function mapping<S extends z.ZodRawShape>(shape: S, what: string) {
  const keys = Object.keys(shape).join(', ');
  // The caller appends `, got "<key>"` to an unrecognized-keys message, once per unknown key.
  return z.strictObject(shape, { error: (iss) => (iss.code === 'unrecognized_keys' ? `expected one of the keys ${keys}` : `expected ${what}, got ${show(iss.input)}`) });
}

function list<T extends z.ZodType>(item: T, what: string, min = 0) {
  const l = z.array(item, expecting(what));
  return min > 0 ? l.min(min, { error: `expected ${what} with at least ${min === 1 ? 'one entry' : `${min} entries`}, got an empty list` }) : l;
}

const duration = (positive: boolean) => leaf((v) => parseDuration(v, positive));
const size = (positive: boolean) => leaf((v) => parseSize(v, positive), showSize);
const integer = (min: number, max: number) => leaf((v) => parseInteger(v, min, max));
const name = leaf(parseName);

/** Tokens travel in an HTTP header, where surrounding spaces are trimmed: allow visible ASCII only. */
function parseToken(v: unknown): Parsed<string> {
  return typeof v === 'string' && /^[\x21-\x7e]+$/.test(v) ? ok(v) : no('a non-empty token of visible ASCII characters');
}

/** An empty operator token (e.g. `${TINYEDGE_OPERATOR_TOKEN:-}`) means "none configured". */
function parseOptionalToken(v: unknown): Parsed<string | null> {
  return v === undefined || v === null || v === '' ? ok(null) : parseToken(v);
}

function oneOf<T extends string>(values: readonly T[]): (v: unknown) => Parsed<T> {
  return (v) => {
    const found = values.find((x) => x === v);
    return found === undefined ? no(`one of ${values.join(', ')}`) : ok(found);
  };
}

function parseBoolean(v: unknown): Parsed<boolean> {
  return typeof v === 'boolean' ? ok(v) : no('true or false');
}

/** Environment values are strings; YAML reads `PORT: 80` as a number, which is surely meant as "80". */
function parseEnvValue(v: unknown): Parsed<string> {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? ok(String(v)) : no('a string');
}

const methods = list(leaf(parseMethod), 'a list of HTTP methods', 1).default(() => [...HTTP_METHODS]);

const route = mapping({ prefix: leaf(parsePathPrefix), methods }, 'a route such as { prefix: /hello, methods: [GET, HEAD] }')
  .transform((r): RouteConfig => r);

const originRoute = mapping({ prefix: leaf(parsePathPrefix), methods, origin: name }, 'a route such as { prefix: /api, origin: api }')
  .transform((r): OriginRouteConfig => r);

const healthCheck = mapping({
  path: leaf(parsePathPrefix),
  interval: duration(true).default(DEFAULTS.healthCheck.intervalMs),
  timeout: duration(true).default(DEFAULTS.healthCheck.timeoutMs),
  threshold: integer(1, 100).default(DEFAULTS.healthCheck.threshold),
}, 'a health check such as { path: /health, interval: 5s }')
  .transform((h): HealthCheckConfig => ({ path: h.path, intervalMs: h.interval, timeoutMs: h.timeout, threshold: h.threshold }));

const origin = mapping({
  name: name.default(DEFAULTS.origin.name),
  url: leaf(parseOriginUrl),
  connectTimeout: duration(true).default(DEFAULTS.origin.connectTimeoutMs),
  firstByteTimeout: duration(true).default(DEFAULTS.origin.firstByteTimeoutMs),
  idleTimeout: duration(true).default(DEFAULTS.origin.idleTimeoutMs),
  connections: integer(1, 4096).default(DEFAULTS.origin.connections),
  healthCheck: healthCheck.optional(),
}, 'an origin such as { name: default, url: "http://127.0.0.1:9000" }')
  .transform((o): OriginConfig => ({
    name: o.name, url: o.url, connectTimeoutMs: o.connectTimeout, firstByteTimeoutMs: o.firstByteTimeout,
    idleTimeoutMs: o.idleTimeout, connections: o.connections, healthCheck: o.healthCheck ?? null,
  }));

const cache = mapping({
  memory: size(true).default(DEFAULTS.cache.memoryBytes),
  defaultGrace: duration(false).default(DEFAULTS.cache.defaultGraceMs),
  defaultKeep: duration(false).default(DEFAULTS.cache.defaultKeepMs),
  maxObjectSize: size(true).optional(),
}, 'a cache policy such as { memory: 64MiB }')
  .transform((c): CacheConfig => ({
    memoryBytes: c.memory, defaultGraceMs: c.defaultGrace, defaultKeepMs: c.defaultKeep,
    // A small quota lowers the default rather than making the default an error.
    maxObjectBytes: c.maxObjectSize ?? Math.min(DEFAULTS.cache.maxObjectBytes, c.memory),
  }))
  .prefault({});

const kv = mapping({ memory: size(false).default(DEFAULTS.kv.memoryBytes) }, 'a key-value store policy such as { memory: 1MiB }')
  .transform((k): KvConfig => ({ memoryBytes: k.memory }))
  .prefault({});

/** A warm-up request's target: path and query, as a client would send it. */
function parseRequestPath(v: unknown): Parsed<string> {
  return typeof v === 'string' && /^\/[^\s#]*$/.test(v) && v.length <= 8192 ? ok(v) : no('a path starting with "/" (a query may follow)');
}

const warmup = mapping({
  requests: integer(1, MAX_WARMUP_REQUESTS),
  path: leaf(parseRequestPath).optional(),
}, 'a warm-up such as { requests: 10, path: /hello }')
  .transform((w): WarmupConfig => ({ requests: w.requests, path: w.path ?? null }));

const ROLES: readonly ProgramRole[] = ['generate', 'recv', 'deliver'];
const LIFECYCLES: readonly Lifecycle[] = ['ephemeral', 'persistent'];

function program(baseDir: string) {
  const P = DEFAULTS.program;
  return mapping({
    name,
    file: leaf(programFile(baseDir)),
    mode: leaf(oneOf(['sdk', 'cgi'] as const)).default(P.mode),
    roles: list(leaf(oneOf(ROLES)), 'a list of roles (generate, recv, deliver)', 1).default(() => [...P.roles]),
    routes: list(route, 'a list of routes').default(() => []),
    memory: leaf(parseGuestMemory, showSize).default(P.memoryBytes),
    timeout: duration(true).default(P.timeoutMs),
    initTimeout: duration(true).default(P.initTimeoutMs),
    concurrency: integer(1, 1024).default(P.concurrency),
    queueTimeout: duration(false).default(P.queueTimeoutMs),
    maxRequestSize: size(true).default(P.maxRequestBytes),
    maxResponseSize: size(true).default(P.maxResponseBytes),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), leaf(parseEnvValue), {
      // zod reports a bad key through the record's own error map, with the key as input.
      error: (iss) => iss.code === 'invalid_key'
        ? `expected a variable name of letters, digits and "_", got ${show(iss.input)}`
        : `expected a mapping of environment variables such as { KEY: value }, got ${show(iss.input)}`,
    }).default(() => ({})),
    allowRead: list(leaf(readableDirectory(baseDir)), 'a list of directories').default(() => []),
    executableMemory: leaf(parseBoolean).default(false),
    lifecycle: leaf(oneOf(LIFECYCLES)).default(P.lifecycle),
    resetAfterRequests: integer(1, 1_000_000_000).optional(),
    resetAboveDirty: size(true).optional(),
    warmup: warmup.optional(),
    maxBatch: integer(1, MAX_BATCH).default(MAX_BATCH),
  }, 'a program such as { name: hello, file: build/examples/hello, routes: [{ prefix: /hello }] }')
    .transform((p): ProgramConfig => ({
      name: p.name, file: p.file, mode: p.mode, roles: p.roles, routes: p.routes, memoryBytes: p.memory,
      timeoutMs: p.timeout, initTimeoutMs: p.initTimeout, concurrency: p.concurrency, queueTimeoutMs: p.queueTimeout,
      maxRequestBytes: p.maxRequestSize, maxResponseBytes: p.maxResponseSize, env: p.env, allowRead: p.allowRead,
      executableMemory: p.executableMemory, lifecycle: p.lifecycle, resetAfterRequests: p.resetAfterRequests ?? null,
      resetAboveDirtyBytes: p.resetAboveDirty ?? null, warmup: p.warmup ?? null, maxBatch: p.maxBatch,
    }));
}

function tenant(baseDir: string) {
  return mapping({
    name,
    hosts: list(leaf(parseHost), 'a list of host names', 1),
    token: leaf(parseToken, showSecret),
    origins: list(origin, 'a list of origins').default(() => []),
    routes: list(originRoute, 'a list of routes').default(() => []),
    cache,
    kv,
    programs: list(program(baseDir), 'a list of programs').default(() => []),
  }, 'a tenant such as { name: demo, hosts: [localhost], token: … }')
    .transform((t): TenantConfig => t);
}

/** The access log's path: `-` for stdout, a file (relative to the config's directory), or none. */
function accessLogPath(baseDir: string): (v: unknown) => Parsed<string | null> {
  return (v) => {
    if (v === undefined || v === null || v === '') return ok(null);
    if (typeof v !== 'string') return no('a file path, or - for stdout');
    return ok(v === '-' ? '-' : resolvePath(baseDir, v));
  };
}

const server = (baseDir: string) => mapping({
  listen: leaf(parseAddress).default(() => ({ ...DEFAULTS.listen })),
  admin: leaf(parseAddress).default(() => ({ ...DEFAULTS.admin })),
  operatorToken: leaf(parseOptionalToken, showSecret).default(null),
  accessLog: leaf(accessLogPath(baseDir)).default(null),
  slice: duration(true).default(DEFAULTS.sliceMs),
  shards: integer(1, 256).default(DEFAULTS.shards),
  workers: integer(1, 256).optional(),
  failureBundles: integer(0, 1000).default(DEFAULTS.failureBundles.count),
  failureBundleMemory: size(true).default(DEFAULTS.failureBundles.memoryBytes),
  liveLogReaders: integer(1, 10_000).default(DEFAULTS.liveLogReaders.total),
  liveLogReadersPerTenant: integer(1, 10_000).default(DEFAULTS.liveLogReaders.perTenant),
  cacheMaxMemory: size(true).optional(),
}, 'a server section such as { listen: "127.0.0.1:8080" }')
  .transform(({ slice, workers, failureBundleMemory, cacheMaxMemory, ...s }): ServerConfig => ({
    ...s, sliceMs: slice, workers, failureBundleBytes: failureBundleMemory, cacheMaxBytes: cacheMaxMemory ?? null,
  }))
  .prefault({});

/** The whole file; paths in it resolve against `baseDir`, and files are checked as they parse. */
export function configSchema(baseDir: string) {
  return mapping({ server: server(baseDir), tenants: list(tenant(baseDir), 'a list of tenants', 1) }, 'a mapping with server and tenants')
    .transform((c): Omit<Config, 'file' | 'warnings'> => c);
}
