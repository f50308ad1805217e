// What one serving thread (a shard) holds: for the connections it accepted, every tenant's runtime
// — its cache (a namespace of the storage every shard shares), origins, routes and hooks — and
// the program pool its guest calls run in. The main thread is shard 0 and coordinates the others (shards.ts),
// which run this same class in worker threads (shard-worker.ts): every change reaches each shard
// as the same `TenantUpdate`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CacheStats, FastResponse, ObjectStorage } from '../cache/index.ts';
import type { FastRequest } from '../http/fast-path.ts';
import type { ProgramPool } from '../sandbox/index.ts';
import type { TenantConfig } from './config.ts';
import type { KvAccess } from './kv.ts';
import { type EncodedBatch, RecordBatcher } from './record-batch.ts';
import { abandonedRecord, completeRecord, RECORD_NOTHING, type RecordScope, startRawRecord, startRecord } from './records.ts';
import type { ExportedStats } from './stats.ts';
import { type LoadedProgram, type Logger, TenantRuntime } from './tenant.ts';
import type { FailureSink } from './failure-bundles.ts';

/** A change to the tenant set, applied by every shard alike. */
export interface TenantUpdate {
  /** Tenants to (re)build, each with its programs as loaded (already adopted by every shard's pool). */
  set: Array<{ config: TenantConfig; programs: LoadedProgram[] }>;
  /** Tenants gone: their runtimes close and their cached objects are dropped. */
  remove: string[];
  /** Program keys in use after the update; a retired runtime unloads its others. */
  keep: string[];
  /** The byte budget of the cache storage. */
  cacheBytes: number;
}

/** One tenant's figures on one shard. */
export interface ShardTenantStats extends ExportedStats {
  cache: CacheStats;
}

const hostOf = (header: string | undefined): string => {
  if (header === undefined) return '';
  // indexOf and slice, not split: this runs for every request, hits included, and split makes an
  // array through V8's runtime.
  const end = header.startsWith('[') ? header.indexOf(']') + 1 : header.indexOf(':');
  return (end < 0 ? header : header.slice(0, end)).toLowerCase();
};

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** The Content-Length of the head Node wrote (0 when it has none), for the bytes counter. */
function sentLength(res: ServerResponse): number {
  const head = (res as unknown as { _header?: string | null })._header;
  if (typeof head !== 'string') return 0;
  const at = head.search(/\r\ncontent-length:/i);
  return at < 0 ? 0 : parseInt(head.slice(at + 17, head.indexOf('\r\n', at + 17)), 10) || 0;
}

export class Shard {
  readonly tenants = new Map<string, TenantRuntime>();
  private byHost = new Map<string, TenantRuntime>();
  /** Whose requests are recorded (only while someone reads them), and where their batches go. */
  private scope: RecordScope = RECORD_NOTHING;
  private recordedTenants = new Set<string>();
  private batcher: RecordBatcher | undefined;

  /**
   * `shards`: how many shards serve (origin connection limits are shared out); `kv` reaches a
   * tenant's key-value store, which lives on the main thread; `storage` is the cache storage all
   * shards share; `failures` gets the bundles of failed program calls.
   */
  constructor(readonly index: number, private readonly shards: number, readonly pool: ProgramPool, private readonly kv: (tenant: string) => KvAccess, private readonly log: Logger, readonly storage: ObjectStorage, private readonly failures?: FailureSink) {}

  /** The front's handler: the tenant named by Host, or 404. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> | void {
    const tenant = this.byHost.get(hostOf(req.headers.host));
    if (tenant === undefined) {
      sendText(res, 404, `unknown host ${JSON.stringify(hostOf(req.headers.host))}\n`);
      return;
    }
    const started = performance.now();
    const stats = tenant.stats;
    const rec = this.batcher !== undefined && this.records(tenant.name) ? startRecord(this.index, tenant.name, req, res, started, this.batcher.push) : undefined;
    res.once('finish', () => {
      const us = (performance.now() - started) * 1000;
      stats.response(res.statusCode, us);
      stats.counters.bytesOut += sentLength(res);
      if (rec !== undefined) completeRecord(rec, res, us);
    });
    // A client that leaves first still gets its record (no 'finish' then).
    if (rec !== undefined) {
      res.once('close', () => {
        if (!res.writableFinished) abandonedRecord(rec, res, (performance.now() - started) * 1000);
      });
    }
    const done = tenant.handle(req, res);
    // The host time of the request's synchronous part (a hit: nearly all of it).
    stats.counters.cpuHostUs += (performance.now() - started) * 1000;
    return done;
  }

  /**
   * The front's fast path for the Host's tenant: a fresh hit straight to bytes, a program's pass or
   * miss as bytes made later, or null for the full path.
   */
  fastAnswer(r: FastRequest): FastResponse | Promise<FastResponse> | null {
    const tenant = this.byHost.get(hostOf(r.host));
    if (tenant === undefined) return null;
    return (r.cacheControl === undefined ? this.fastHit(tenant, r) : null) ?? this.fastFetch(tenant, r);
  }

  private fastHit(tenant: TenantRuntime, r: FastRequest): FastResponse | null {
    const started = performance.now();
    const answer = tenant.cache.fastHit(r.host, r.url, r.method === 'HEAD');
    if (answer !== null) {
      const us = (performance.now() - started) * 1000;
      const stats = tenant.stats;
      const bytes = answer.body?.length ?? 0;
      stats.response(answer.status, us);
      stats.counters.bytesOut += bytes;
      stats.counters.cpuHostUs += us;
      if (this.batcher !== undefined && this.records(tenant.name)) this.batcher.pushFast(this.index, tenant.name, r.host, r.method, r.url, answer.status, bytes, started, us);
    }
    return answer;
  }

  /** A program's pass or miss on the raw path, counted and recorded as `handle` does. */
  private fastFetch(tenant: TenantRuntime, r: FastRequest): Promise<FastResponse> | null {
    const started = performance.now();
    // The request's own object is its identity for the backend (BackendRequest.client).
    const rec = this.batcher !== undefined && this.records(tenant.name) ? startRawRecord(this.index, tenant.name, r.host, r.method, r.url, started, this.batcher.push, r) : undefined;
    const taken = tenant.fastFetch(r, r);
    if (taken === null) return null;
    const stats = tenant.stats;
    // The host time of the request's synchronous part, as `handle` counts it.
    stats.counters.cpuHostUs += (performance.now() - started) * 1000;
    return taken.answer.then((answer) => {
      const us = (performance.now() - started) * 1000;
      const bytes = answer.body?.length ?? 0;
      stats.response(answer.status, us);
      stats.counters.bytesOut += bytes;
      if (rec !== undefined) {
        rec.r.status = answer.status;
        rec.r.cache = taken.label === 'MISS' ? 'miss' : 'pass';
        rec.r.bytes = bytes;
        rec.r.totalUs = Math.round(us);
        rec.finish();
      }
      return answer;
    });
  }

  /**
   * Records the requests of `scope`'s tenants from now on, sent in batches to `send`; with none,
   * records nothing (what the requests cost then is one check).
   */
  setRecording(scope: RecordScope, send: (batch: EncodedBatch) => void): void {
    this.batcher?.flush();
    this.scope = scope;
    this.recordedTenants = new Set(scope.tenants);
    if (!scope.all && scope.tenants.length === 0) {
      this.batcher = undefined;
      return;
    }
    this.batcher = new RecordBatcher(send);
  }

  private records(tenant: string): boolean {
    return this.scope.all || this.recordedTenants.has(tenant);
  }

  /** Builds the update's runtimes, swaps them in with one Host map, then closes the ones they replace. */
  async update(u: TenantUpdate): Promise<void> {
    // The budget first: a tenant's quota is capped at it when its runtime sets it.
    this.storage.setBudget(u.cacheBytes);
    if (this.index === 0 && this.storage.maxBytes < u.cacheBytes) {
      this.log.warn({ cacheBytes: u.cacheBytes, budget: this.storage.maxBytes }, `the tenants' cache memory now adds up to ${u.cacheBytes} bytes, above the ${this.storage.maxBytes} reserved at start (server.cacheMaxMemory, or the tenants' cache memory then): the budget stays ${this.storage.maxBytes} until a restart`);
    }
    const built = u.set.map(({ config, programs }) => new TenantRuntime(config, this.pool, this.storage, this.kv(config.name), programs, this.log, this.shards, this.failures));
    const retired: TenantRuntime[] = [];
    for (const name of u.remove) {
      const t = this.tenants.get(name);
      if (!t) continue;
      retired.push(t);
      this.tenants.delete(name);
      this.storage.namespace(name).clear();
    }
    for (const t of built) {
      const old = this.tenants.get(t.name);
      if (old) retired.push(old);
      this.tenants.set(t.name, t);
    }
    const next = new Map<string, TenantRuntime>();
    for (const t of this.tenants.values()) for (const h of t.config.hosts) next.set(h, t);
    this.byHost = next;
    const keep = new Set(u.keep);
    for (const t of retired) await t.close(keep);
  }

  /** A live upload: `program` serves `tenant` from now on; the version it replaces finishes what it started. */
  swapProgram(tenant: string, program: LoadedProgram): void {
    const t = this.tenants.get(tenant);
    if (!t) throw new Error(`shard ${this.index} has no tenant ${tenant}`);
    const old = t.programs.get(program.config.name);
    t.programs.set(program.config.name, program);
    if (old) this.pool.unload(old.key);
  }

  /** The runtime of `tenant`; throws when this shard has none (the shards disagree: a bug). */
  tenant(name: string): TenantRuntime {
    const t = this.tenants.get(name);
    if (!t) throw new Error(`shard ${this.index} has no tenant ${name}`);
    return t;
  }

  stats(tenant: string): ShardTenantStats {
    const t = this.tenant(tenant);
    return { ...t.stats.export(), cache: t.cache.stats() };
  }

  /**
   * Closes every runtime, then the program pool; the records waiting go out first, and again at
   * the end: a program request's record waits for its VM's reset, which closing may settle.
   */
  async close(): Promise<void> {
    this.batcher?.flush();
    for (const t of this.tenants.values()) await t.close();
    await this.pool.close();
    this.batcher?.flush();
  }
}
