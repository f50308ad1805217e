// The validated configuration as the server consumes it: every default filled in, durations in
// milliseconds, sizes in bytes, paths absolute. docs/config.md describes the file it comes from.
import type { Lifecycle, ProgramMode } from '../../sandbox/index.ts';
import type { Address, HttpMethod } from './values.ts';

export type { Address, HttpMethod, Lifecycle, ProgramMode };

export interface ServerConfig {
  /** The HTTP front. */
  listen: Address;
  /** The admin API, on its own port. */
  admin: Address;
  /** Token for operator-wide admin calls; null when none is configured (operator calls refused). */
  operatorToken: string | null;
  /** Where each request's record goes as a JSON line: an absolute file path, '-' (stdout), or null (nowhere). */
  accessLog: string | null;
  /**
   * The longest a guest call holds the thread serving its connection before that thread serves
   * others for a turn (the call then goes on).
   */
  sliceMs: number;
  /** Threads that accept and serve connections (the main thread is one of them). */
  shards: number;
  /** Obsolete (the VM worker threads are gone): accepted, with a warning, and not used. */
  workers: number | undefined;
  /** Failure bundles kept per tenant (the newest; 0 keeps none), and the bytes they may hold per tenant. */
  failureBundles: number;
  failureBundleBytes: number;
  /** Live log streams open at once (admin API, dashboard, `tinyedge log`), all tenants together. */
  liveLogReaders: number;
  /** Live log streams of one tenant's records open at once, whoever opened them. */
  liveLogReadersPerTenant: number;
  /**
   * The most the tenants' cache memory may add up to, reserved at start so that a reload may raise
   * it up to there; null: what it adds up to at start (a reload may then lower it, not raise it).
   */
  cacheMaxBytes: number | null;
}

export interface HealthCheckConfig {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failures before the origin counts as sick. */
  threshold: number;
}

export interface OriginConfig {
  name: string;
  /** Scheme, host and port only, e.g. `http://127.0.0.1:9000`. */
  url: string;
  connectTimeoutMs: number;
  /** Time from sending the request to the response head. */
  firstByteTimeoutMs: number;
  /** Longest silence between body chunks. */
  idleTimeoutMs: number;
  /** Most connections kept open to the origin. */
  connections: number;
  healthCheck: HealthCheckConfig | null;
}

export interface RouteConfig {
  /** Matches the path at a segment boundary; the longest matching prefix wins. */
  prefix: string;
  methods: HttpMethod[];
}

/** A tenant-level route sending matching requests to a named origin instead of `default`. */
export interface OriginRouteConfig extends RouteConfig {
  origin: string;
}

export interface CacheConfig {
  /** The tenant's share of cache memory. */
  memoryBytes: number;
  /** Grace when a response names none (no stale-while-revalidate). */
  defaultGraceMs: number;
  /** How long an expired object with a validator is kept for conditional refreshes. */
  defaultKeepMs: number;
  /** Larger bodies stream through uncached. */
  maxObjectBytes: number;
}

export interface KvConfig {
  /** Keys plus values, per tenant. */
  memoryBytes: number;
}

/** `generate` answers its routes; `recv` runs before lookup; `deliver` runs before sending. */
export type ProgramRole = 'generate' | 'recv' | 'deliver';

export interface ProgramConfig {
  name: string;
  /** Absolute path of the static x86-64 ELF executable. */
  file: string;
  mode: ProgramMode;
  roles: ProgramRole[];
  /** Empty unless `roles` includes `generate`. */
  routes: RouteConfig[];
  /** Guest memory: a multiple of 2 MiB, from 10 MiB to 4 GiB. */
  memoryBytes: number;
  timeoutMs: number;
  initTimeoutMs: number;
  /** Instances in the program's pool. */
  concurrency: number;
  /** How long a request waits for a free instance before a 503. */
  queueTimeoutMs: number;
  maxRequestBytes: number;
  maxResponseBytes: number;
  env: Record<string, string>;
  /** Absolute directories the guest may open files under, read-only. */
  allowRead: string[];
  /** The program may map executable memory beyond its own code (JITs). */
  executableMemory: boolean;
  /** Reset after every request, or keep state between the requests of an instance. */
  lifecycle: Lifecycle;
  /** persistent: reset after this many requests (null: no bound). */
  resetAfterRequests: number | null;
  /** persistent: reset once this much memory was dirtied since the last reset (null: no bound). */
  resetAboveDirtyBytes: number | null;
  /** Synthetic requests answered before the snapshot (null: none). */
  warmup: WarmupConfig | null;
  /** Most requests a persistent program answers per VM entry (1: no batches). */
  maxBatch: number;
}

export interface WarmupConfig {
  requests: number;
  /** Path and query of each GET; null: the first route's prefix (`/` for a hook). */
  path: string | null;
}

export interface TenantConfig {
  name: string;
  /** Lower-case, without port, unique across tenants. */
  hosts: string[];
  token: string;
  origins: OriginConfig[];
  routes: OriginRouteConfig[];
  cache: CacheConfig;
  kv: KvConfig;
  programs: ProgramConfig[];
}

export interface Config {
  /** Absolute path of the file the config came from (relative paths in it were resolved from its directory). */
  file: string;
  server: ServerConfig;
  tenants: TenantConfig[];
  /** Problems that do not stop the server (e.g. a short token), as `<file>:<line>: <path>: <message>`. */
  warnings: string[];
}

/** One problem found in a config file; `path` reads like `tenants[0].programs[1].memory`. */
export interface ConfigProblem {
  path: string;
  message: string;
  line?: number;
}
