// One tenant at run time: its cache (a namespace of the shared storage), origins, key-value store,
// programs (loaded on the VM workers, by version), routes and hooks. The cache's backend is a
// router: a miss goes to the route's program or origin.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { Cache, type Backend, type BackendRequest, type BackendResponse, type CacheHooks, type FastResponse, type HeaderList, type RawRequest, type HookRequest, type HookResponse, type Origin, OriginError, type ObjectStorage, type RecvDecision } from '../cache/index.ts';
import { endToEndPairs, isFixedHopByHop } from '../cache/hop-by-hop.ts';
import { type CallOptions, type CallResult, type CallUsage, type ExportedProgram, type HostCalls, KvmError, type PoolProgramOptions, ProgramLoadError, type ProgramOptions, type ProgramPool, QueueFullError, SandboxError, type SandboxRequest, type Warmup } from '../sandbox/index.ts';
import { readLimited } from '../http/body.ts';
import { clientFailure } from '../http/failure.ts';
import type { ProgramConfig, TenantConfig } from './config.ts';
import { headerPairs, openOrigin, tenantHostCalls } from './host-calls.ts';
import type { KvAccess } from './kv.ts';
import { type LiveRecord, recordOf } from './records.ts';
import { FailureRecorder, type FailureSink } from './failure-bundles.ts';
import { buildRoutes, matchRoute, type Route } from './routes.ts';
import { TenantStats } from './stats.ts';

const MiB = 1024 * 1024;
const EMPTY_BODY = Buffer.alloc(0);
/** A backend call's options: the `generate` phase, no response (one object for every such call). */
const GENERATE: Pick<CallOptions, 'phase' | 'response'> = Object.freeze({});

/** A program as loaded: `key` names its current version in the program pool. */
export interface LoadedProgram {
  config: ProgramConfig;
  key: string;
  /** SHA-256 of the version's file (hex), for its failure bundles. */
  sha256: string;
  /** When this version was loaded (epoch ms), and how long its load and warm-up took. */
  loadedAt: number;
  loadMs: number;
}

/**
 * What a tenant runtime logs through: the server's pino logger, or on a shard's thread one that
 * forwards records to it (pino's own methods take these arguments).
 */
export interface Logger {
  info(details: Record<string, unknown>, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
}

/** Other threads' pools that adopt a program version as this thread's pool loads it (shards). */
export type AlsoAdopt = (key: string, program: ExportedProgram, options: PoolProgramOptions) => Promise<void>;

/** A program's version numbers in one pool: the last one loaded, and those being loaded now. */
interface Versions {
  last: number;
  loading: Set<number>;
}
const versionsByPool = new WeakMap<ProgramPool, Map<string, Versions>>();

/**
 * The next version of `tenant`/`program` in `pool` (`tenant/program@N`), reserved until the load
 * ends: keys never repeat while one is loaded, so an old and a new version run side by side during
 * a swap. A load that fails gives its number back (the next upload gets it), so the numbers an
 * operator sees count the versions that were actually loaded.
 */
function reserveVersion(pool: ProgramPool, tenant: string, program: string): { key: string; loaded(): void; failed(): void } {
  let byName = versionsByPool.get(pool);
  if (!byName) versionsByPool.set(pool, (byName = new Map()));
  const name = `${tenant}/${program}`;
  let v = byName.get(name);
  if (!v) byName.set(name, (v = { last: 0, loading: new Set() }));
  const versions = v;
  const n = Math.max(versions.last, ...versions.loading) + 1;
  versions.loading.add(n);
  return {
    key: `${name}@${n}`,
    loaded: () => {
      versions.loading.delete(n);
      versions.last = Math.max(versions.last, n);
    },
    failed: () => void versions.loading.delete(n),
  };
}

/** The phase a program's synthetic requests are made in: its first role's. */
function warmupPhase(program: ProgramConfig): 'generate' | 'recv' | 'deliver' {
  return program.roles.includes('generate') ? 'generate' : program.roles.includes('recv') ? 'recv' : 'deliver';
}

/** How the sandbox runs a configured program: its mode, name, limits, environment, files and warm-up. */
export function sandboxOptions(program: ProgramConfig): ProgramOptions {
  return {
    mode: program.mode,
    name: program.name,
    memoryMiB: program.memoryBytes / MiB,
    timeoutMs: program.timeoutMs,
    initTimeoutMs: program.initTimeoutMs,
    maxRequestBytes: program.maxRequestBytes,
    maxResponseBytes: program.maxResponseBytes,
    env: Object.entries(program.env).map(([k, v]) => `${k}=${v}`),
    allowRead: program.allowRead,
    executableMemory: program.executableMemory,
    lifecycle: program.lifecycle,
    resetAfterRequests: program.resetAfterRequests ?? undefined,
    resetAboveDirtyBytes: program.resetAboveDirtyBytes ?? undefined,
    warmup: program.warmup ? { requests: program.warmup.requests, path: program.warmup.path ?? warmupUrl(program), phase: warmupPhase(program) } : undefined,
  };
}

/** The path a program's synthetic requests ask for: its first route's prefix for a generating program, else `/`. */
export function warmupUrl(program: ProgramConfig): string {
  return program.roles.includes('generate') ? (program.routes[0]?.prefix ?? '/') : '/';
}

/**
 * A program of the config that failed to load, said for the operator: the tenant, the program,
 * its file and the step (load, init, warm-up), then why. Still a SandboxError of the same kind (a
 * KvmError when the host has no usable KVM).
 */
export function programLoadFailure(tenant: string, program: ProgramConfig, err: unknown): unknown {
  // The host cannot run any program: said with the first one that needs it, and what runs without.
  if (err instanceof KvmError) {
    return new KvmError(`tenant ${tenant}, program ${program.name}: programs run in KVM virtual machines, and ${err.message}; a config without programs (a cache in front of origins) runs without KVM`);
  }
  // Reading the file is part of loading; any other error that is not the sandbox's is the host's own.
  const unreadable = (err as NodeJS.ErrnoException).code !== undefined;
  if (!(err instanceof SandboxError) && !unreadable) return err;
  const stage = err instanceof ProgramLoadError ? err.stage : unreadable ? 'load' : undefined;
  const step = stage === 'load' ? 'at load (reading and booting the executable)'
    : stage === 'init' ? 'at init (its main() before it waits for requests)'
    : stage === 'warm-up' ? `at warm-up (its answer to GET ${warmupUrl(program)})`
    : 'while loading';
  const message = `tenant ${tenant}, program ${program.name} (file ${program.file}) failed ${step}: ${(err as Error).message}`;
  const kind = err instanceof SandboxError ? err.kind : 'program';
  return stage === undefined ? new SandboxError(kind, message) : new ProgramLoadError(kind, message, stage);
}

/**
 * Loads `elf` as a new version of `program`, with a warm-up: one real request through the new
 * version before anyone depends on it. Taking over from `previous` (a persistent program's
 * running version), it gets the state that version hands over (te_on_live_update) first. Both
 * run on a loader thread, not on the thread that serves
 * requests (sandbox/loaders.ts). Throws on any failure, changing nothing.
 */
export async function loadProgramVersion(pool: ProgramPool, tenant: string, program: ProgramConfig, elf: Buffer, alsoAdopt?: AlsoAdopt, previous?: LoadedProgram): Promise<LoadedProgram> {
  const version = reserveVersion(pool, tenant, program.name);
  const key = version.key;
  const warmup: Warmup = {
    req: { method: 'GET', url: warmupUrl(program), headers: [['Host', 'warmup.invalid'], ['X-Tinyedge-Warmup', '1']], body: new Uint8Array(0) },
    phase: warmupPhase(program),
    response: { status: 200, headers: [] },
  };
  const options: PoolProgramOptions = { ...sandboxOptions(program), concurrency: program.concurrency, queueTimeoutMs: program.queueTimeoutMs, maxBatch: program.maxBatch };
  const started = performance.now();
  try {
    // A persistent program taking over from a persistent version hands its state over (a live update).
    const state = previous && program.lifecycle === 'persistent' && previous.config.lifecycle === 'persistent' ? await pool.liveUpdateState(previous.key) : undefined;
    await pool.load(key, elf, { ...options, liveRestore: state }, warmup, alsoAdopt && ((exported) => alsoAdopt(key, exported, options)));
  } catch (err) {
    version.failed();
    throw err;
  }
  version.loaded();
  return { config: program, key, sha256: createHash('sha256').update(elf).digest('hex'), loadedAt: Date.now(), loadMs: Math.round(performance.now() - started) };
}

/** The sandbox's own failure for a request over the program's limit, so it is answered the same way. */
const requestTooLarge = (limit: number): Error => new SandboxError('program', `request body larger than ${limit} bytes`);

/**
 * A failed program call as the cache's backend answers it, after failure.ts: 502, 503 and 504 as
 * an OriginError (a stale object may cover it, as for an origin), the 413 of a request too large
 * for the program as an answer that is never stored. Either way the client reads only the class.
 */
function failureAnswer(err: unknown): BackendResponse {
  const f = clientFailure(err);
  if (f.status === 502 || f.status === 503 || f.status === 504) throw new OriginError(f.status, f.body.trimEnd(), { cause: err });
  const body = Buffer.from(f.body);
  return {
    status: f.status,
    headers: ['content-type', 'text/plain; charset=utf-8', 'cache-control', 'no-store', 'content-length', String(body.length)],
    body: Readable.from([body]),
    buffered: body,
    policy: { uncacheable: true },
  };
}

/**
 * A program's answer as the cache's backend gives it: whole in memory (`buffered`), with a stream
 * of it made only if the cache asks for one (the raw path never does).
 */
class WholeAnswer implements BackendResponse {
  private stream: Readable | undefined;
  constructor(readonly status: number, readonly headers: HeaderList, readonly buffered: Buffer, readonly policy: BackendResponse['policy']) {}

  get body(): Readable {
    return (this.stream ??= Readable.from(this.buffered.length > 0 ? [this.buffered] : []));
  }
}

/**
 * The answer to a request no route matches in a tenant without a `default` origin: a 404 naming
 * the method and path, never stored (a reload may add the route).
 */
function noRoute(method: string, url: string): BackendResponse {
  const body = Buffer.from(`no route for ${method} ${url.split('?')[0]}\n`);
  return {
    status: 404,
    headers: ['content-type', 'text/plain; charset=utf-8', 'cache-control', 'no-store', 'content-length', String(body.length)],
    body: Readable.from([body]),
    buffered: body,
    policy: { uncacheable: true },
  };
}

export class TenantRuntime implements Backend {
  readonly cache: Cache;
  readonly stats: TenantStats;
  readonly origins = new Map<string, Origin>();
  readonly programs = new Map<string, LoadedProgram>();
  private readonly routes: Route[];
  private closed = false;
  /** Requests in handle() now, and what close() left to do once there are none. */
  private active = 0;
  private drained: (() => void) | undefined;
  private readonly healthWatch: ReturnType<typeof setInterval> | undefined;
  private readonly failureLog = new Map<string, { at: number; skipped: number }>();
  private readonly failures: FailureRecorder;
  /** What this tenant's programs reach through host calls: its origins and key-value store. */
  private readonly hostCalls: HostCalls;

  /**
   * `shards`: how many shards hold a runtime of this tenant; each gets that share of an origin's
   * `connections`, so that the limit holds for the whole server. `failures` gets the bundles of
   * its programs' faults and timeouts (none without).
   */
  constructor(readonly config: TenantConfig, private readonly pool: ProgramPool, storage: ObjectStorage, private readonly kv: KvAccess, programs: LoadedProgram[], private readonly log: Logger, shards = 1, failures?: FailureSink) {
    this.failures = new FailureRecorder(config.name, failures);
    for (const o of config.origins) this.origins.set(o.name, openOrigin({ ...o, connections: Math.max(1, Math.ceil(o.connections / shards)) }));
    this.hostCalls = tenantHostCalls(this.origins, kv);
    for (const p of programs) this.programs.set(p.config.name, p);
    this.stats = new TenantStats(() => {
      const sum = { exits: 0, timerExits: 0, batches: 0 };
      for (const p of this.programs.values()) {
        const c = pool.counters(p.key);
        sum.exits += c.exits;
        sum.timerExits += c.timerExits;
        sum.batches += c.batches;
      }
      return sum;
    });
    this.healthWatch = this.watchHealth();
    this.routes = buildRoutes(config);
    const recv = config.programs.find((p) => p.roles.includes('recv'));
    const deliver = config.programs.find((p) => p.roles.includes('deliver'));
    // No hooks object at all without hook programs: the cache's raw fast path serves only tenants
    // whose every request need not be seen by a program.
    let hooks: CacheHooks | undefined;
    if (recv) (hooks ??= {}).recv = (req) => this.recvHook(recv.name, req);
    if (deliver) (hooks ??= {}).deliver = (req, resp) => this.deliverHook(deliver.name, req, resp);
    this.cache = new Cache({
      backend: this,
      storage,
      namespace: config.name,
      namespaceMaxBytes: config.cache.memoryBytes,
      maxObjectBytes: config.cache.maxObjectBytes,
      defaultGraceSec: config.cache.defaultGraceMs / 1000,
      defaultKeepSec: config.cache.defaultKeepMs / 1000,
      hooks,
      warn: (message) => this.log.warn({ tenant: config.name }, message),
    });
  }

  get name(): string {
    return this.config.name;
  }

  /** Healthy while the default origin is (programs have no health of their own). */
  get healthy(): boolean {
    return this.origins.get('default')?.healthy ?? true;
  }

  /** A program answers whole: the front's raw path may take its requests (cache/fast-fetch.ts). */
  answersWhole(method: string, path: string): boolean {
    return matchRoute(this.routes, this.origins.has('default'), method, path)?.kind === 'program';
  }

  /** The cache's backend: the route's program or origin answers a miss or a pass. */
  // Not async: the promise of the call it makes is the answer, without another to resolve with it.
  fetch(req: BackendRequest): Promise<BackendResponse> {
    const target = matchRoute(this.routes, this.origins.has('default'), req.method, req.path);
    if (target === undefined) {
      req.body?.resume();
      return Promise.resolve(noRoute(req.method, req.path));
    }
    const rec = recordOf(req.client);
    if (target.kind === 'origin') return this.fetchOrigin(target.name, req, rec);
    return this.runProgram(target.name, req, rec);
  }

  /** An origin's answer; a failed exchange is counted, logged, and noted in the request's record. */
  private async fetchOrigin(name: string, req: BackendRequest, rec: LiveRecord | undefined): Promise<BackendResponse> {
    if (rec?.open === true) {
      rec.r.backend = name;
      rec.r.backendKind = 'origin';
    }
    const started = performance.now();
    try {
      const resp = await this.origins.get(name)!.fetch(req);
      this.stats.originFetch(name, (performance.now() - started) * 1000);
      if (rec?.open === true) rec.r.originStatus = resp.status;
      return resp;
    } catch (err) {
      // A client that left aborts its pass: not the origin's failure.
      if (req.signal?.aborted !== true) {
        this.stats.counters.originErrors++;
        const message = err instanceof Error ? err.message : String(err);
        this.logOriginFailure(name, req, message);
        if (rec?.open === true) rec.r.error = `origin: ${message}`;
      }
      throw err;
    }
  }

  private async runProgram(name: string, req: BackendRequest, rec: LiveRecord | undefined): Promise<BackendResponse> {
    let body: Buffer;
    try {
      // No body (a GET): no await, so the call starts in this turn.
      body = req.body === null ? EMPTY_BODY : await readLimited(req.body, this.programs.get(name)!.config.maxRequestBytes, requestTooLarge, { discardExcess: true });
    } catch (err) {
      this.reportFailure(name, req.method, req.path, err, rec);
      return failureAnswer(err);
    }
    // Looked up after the await and used at once: a live upload may have swapped versions meanwhile.
    const program = this.programs.get(name)!;
    if (rec?.open === true) {
      rec.r.backend = name;
      rec.r.backendKind = 'program';
      rec.r.version = program.key;
    }
    const sreq: SandboxRequest = { method: req.method, url: req.path, headers: headerPairs(req.headers), body };
    let r: CallResult;
    try {
      r = await this.call(program, sreq, GENERATE, rec);
      if (rec?.open === true) rec.r.originStatus = r.status;
    } catch (err) {
      return failureAnswer(err);
    }
    // The program's end-to-end fields; the framing is ours, from the body it returned.
    const headers: HeaderList = endToEndPairs(r.headers, true);
    headers.push('content-length', String(r.body.length));
    if (r.cache.tags.length > 0) headers.push('surrogate-key', r.cache.tags.join(' '));
    const { ttl, grace, keep, uncacheable } = r.cache;
    return new WholeAnswer(r.status, headers, r.body, { ttlMs: ttl === undefined ? undefined : ttl * 1000, graceMs: grace === undefined ? undefined : grace * 1000, keepMs: keep === undefined ? undefined : keep * 1000, uncacheable });
  }

  /**
   * Runs a program with this tenant's host services; a failure is counted, logged and rethrown.
   * What the call cost goes to the tenant's CPU time and, with `rec`, to the request's record.
   */
  private async call(program: LoadedProgram, req: SandboxRequest, options: Pick<CallOptions, 'phase' | 'response'>, rec: LiveRecord | undefined): Promise<CallResult> {
    const started = performance.now();
    // `settled` present from the start: the usage keeps one shape (the pool's options do too).
    const usage: CallUsage = { guestUs: 0, runUs: 0, exits: 0, dirtyPages: 0, settled: undefined };
    const counters = this.stats.counters;
    if (rec?.open === true) rec.vmCall(usage);
    try {
      const r = await this.pool.call(program.key, req, { phase: options.phase, response: options.response, host: this.hostCalls, usage });
      this.stats.vmCall(program.config.name, (performance.now() - started) * 1000);
      for (const line of r.logs) this.log.info({ tenant: this.name, program: program.config.name }, line);
      if (rec?.open === true && r.logs.length > 0) rec.r.logs.push(...r.logs);
      return r;
    } catch (err) {
      if (err instanceof QueueFullError) counters.queueFull++;
      else if (err instanceof SandboxError && err.kind === 'timeout') counters.vmTimeouts++;
      else counters.vmErrors++;
      this.reportFailure(program.config.name, req.method, req.url, err, rec);
      this.failures.failed({ name: program.config.name, key: program.key, sha256: program.sha256, settings: () => sandboxOptions(program.config) }, req, options, err);
      throw err;
    } finally {
      counters.cpuGuestUs += usage.guestUs;
      counters.cpuHostUs += usage.runUs - usage.guestUs;
    }
  }

  /** Logs a failed call with what the client is not told: the guest's own message. */
  private reportFailure(program: string, method: string, url: string, err: unknown, rec: LiveRecord | undefined): void {
    const f = clientFailure(err);
    const detail = err instanceof Error ? err.message : String(err);
    this.log.warn({ tenant: this.name, program, method, url, status: f.status, failure: f.class }, `program ${program}: ${detail}`);
    if (rec?.open === true) rec.r.error = `${f.class}: ${detail}`;
  }

  /**
   * One line per origin failure, at most one a second per origin (a dead origin fails every
   * request): the next line counts those left out.
   */
  private logOriginFailure(origin: string, req: BackendRequest, message: string): void {
    const now = performance.now();
    const seen = this.failureLog.get(origin);
    if (seen !== undefined && now - seen.at < 1000) {
      seen.skipped++;
      return;
    }
    const skipped = seen?.skipped ?? 0;
    this.failureLog.set(origin, { at: now, skipped: 0 });
    this.log.warn({ tenant: this.name, origin, method: req.method, url: req.path, ...(skipped > 0 ? { alsoFailed: skipped } : {}) }, `origin ${origin} failed: ${message}`);
  }

  /** Logs each change of an origin's health (each shard watches its own origin clients). */
  private watchHealth(): ReturnType<typeof setInterval> | undefined {
    const checked = this.config.origins.filter((o) => o.healthCheck);
    if (checked.length === 0) return undefined;
    const last = new Map(checked.map((o) => [o.name, true]));
    const timer = setInterval(() => {
      for (const o of checked) {
        const now = this.origins.get(o.name)?.healthy ?? true;
        if (now === last.get(o.name)) continue;
        last.set(o.name, now);
        this.log.warn({ tenant: this.name, origin: o.name, healthy: now }, `origin ${o.name} is ${now ? 'healthy again' : 'sick: its health check fails'}`);
      }
    }, Math.min(...checked.map((o) => o.healthCheck!.intervalMs)));
    timer.unref();
    return timer;
  }

  private async recvHook(name: string, req: HookRequest): Promise<RecvDecision | undefined> {
    const program = this.programs.get(name)!;
    try {
      const r = await this.call(program, toSandboxRequest(req), { phase: 'recv' }, recordOf(req.headers));
      const d = r.recv;
      if (!d || d.action === 'lookup') return d && (d.url !== undefined || d.setHeaders.length > 0) ? { action: 'lookup', url: d.url, setHeaders: d.setHeaders } : undefined;
      if (d.action === 'pass') return { action: 'pass', url: d.url, setHeaders: d.setHeaders };
      return { action: 'synth', status: r.status, headers: Object.fromEntries(r.headers), body: r.body };
    } catch (err) {
      const f = clientFailure(err);
      return { action: 'synth', status: f.status, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, body: f.body };
    }
  }

  private async deliverHook(name: string, req: HookRequest, resp: HookResponse): Promise<void> {
    const program = this.programs.get(name)!;
    try {
      const r = await this.call(program, toSandboxRequest(req), { phase: 'deliver', response: { status: resp.status, headers: headerPairs(resp.headers) } }, recordOf(req.headers));
      // Only end-to-end fields: the framing belongs to the body already decided.
      const set = endToEndPairs(r.headers, true);
      for (let j = 0; j < set.length; j += 2) {
        const lower = set[j]!;
        const v = set[j + 1]!;
        for (let i = resp.headers.length - 2; i >= 0; i -= 2) if (resp.headers[i] === lower) resp.headers.splice(i, 2);
        if (v !== '') resp.headers.push(lower, v);
      }
    } catch {
      // The response goes out as it was; call() logged why the hook failed.
    }
  }

  /**
   * Handles a request through this runtime's cache. Counted: a request that started here finishes
   * here (its hooks, program and origins), even when a reload retires the runtime meanwhile.
   */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.active++;
    return this.cache.handle(req, res).finally(this.settled);
  }

  /** The raw path's pass or miss of a program route (cache/fast-fetch.ts), counted as `handle` is; null to go the long way. */
  fastFetch(r: RawRequest, client: object): { label: 'MISS' | 'PASS'; answer: Promise<FastResponse> } | null {
    const taken = this.cache.fastFetch(r, client);
    if (taken === null) return null;
    this.active++;
    const settled = this.settled;
    return {
      label: taken.label,
      answer: taken.answer.then(
        (a) => { settled(); return a; },
        (err: unknown) => { settled(); throw err; },
      ),
    };
  }

  private readonly settled = (): void => {
    if (--this.active === 0) this.drained?.();
  };

  /**
   * Stops this runtime: origins and cache timers; programs are unloaded unless `keep` names them.
   * Requests still running here finish first (their deliver hook, a generate call they have not
   * made yet): what they need is released after the last, and close() does not wait for that.
   */
  async close(keep: ReadonlySet<string> = new Set()): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.healthWatch !== undefined) clearInterval(this.healthWatch);
    const release = async (): Promise<void> => {
      for (const p of this.programs.values()) if (!keep.has(p.key)) this.pool.unload(p.key);
      await this.cache.close();
      await Promise.all([...this.origins.values()].map((o) => o.close()));
    };
    if (this.active === 0) return release();
    this.drained = () => void release().catch((err: unknown) => this.log.warn({ err, tenant: this.name }, 'closing a retired tenant runtime failed'));
  }
}

function toSandboxRequest(req: HookRequest): SandboxRequest {
  const headers: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(req.headers)) {
    // The request's framing stays with the front (the hook sees no body).
    if (value === undefined || isFixedHopByHop(name)) continue;
    if (Array.isArray(value)) for (const v of value) headers.push([name, v]);
    else headers.push([name, value]);
  }
  return { method: req.method, url: req.url, headers, body: new Uint8Array(0) };
}
