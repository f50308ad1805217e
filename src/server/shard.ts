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
import type { ExportedStats } from './stats.ts';
import { type LoadedProgram, type Logger, TenantRuntime } from './tenant.ts';

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
  const h = header.startsWith('[') ? header.slice(0, header.indexOf(']') + 1) : header.split(':')[0]!;
  return h.toLowerCase();
};

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export class Shard {
  readonly tenants = new Map<string, TenantRuntime>();
  private byHost = new Map<string, TenantRuntime>();

  /**
   * `shards`: how many shards serve (origin connection limits are shared out); `kv` reaches a
   * tenant's key-value store, which lives on the main thread; `storage` is the cache storage all
   * shards share.
   */
  constructor(readonly index: number, private readonly shards: number, readonly pool: ProgramPool, private readonly kv: (tenant: string) => KvAccess, private readonly log: Logger, readonly storage: ObjectStorage) {}

  /** The front's handler: the tenant named by Host, or 404. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> | void {
    const tenant = this.byHost.get(hostOf(req.headers.host));
    if (tenant === undefined) {
      sendText(res, 404, `unknown host ${JSON.stringify(hostOf(req.headers.host))}\n`);
      return;
    }
    const started = performance.now();
    res.once('finish', () => tenant.stats.response(res.statusCode, (performance.now() - started) * 1000));
    return tenant.cache.handle(req, res);
  }

  /** The front's fast path: a fresh hit of the Host's tenant, straight to bytes (or null). */
  fastHit(r: FastRequest): FastResponse | null {
    const tenant = this.byHost.get(hostOf(r.host));
    if (tenant === undefined) return null;
    const started = performance.now();
    const answer = tenant.cache.fastHit(r.host, r.url, r.method === 'HEAD');
    if (answer !== null) tenant.stats.response(answer.status, (performance.now() - started) * 1000);
    return answer;
  }

  /** Builds the update's runtimes, swaps them in with one Host map, then closes the ones they replace. */
  async update(u: TenantUpdate): Promise<void> {
    const built = u.set.map(({ config, programs }) => new TenantRuntime(config, this.pool, this.storage, this.kv(config.name), programs, this.log, this.shards));
    this.storage.setBudget(u.cacheBytes);
    if (this.index === 0 && this.storage.maxBytes < u.cacheBytes) {
      this.log.warn({ cacheBytes: u.cacheBytes, budget: this.storage.maxBytes }, `the tenants' cache memory now adds up to ${u.cacheBytes} bytes, above the ${this.storage.maxBytes} reserved at start: the budget stays ${this.storage.maxBytes} until a restart`);
    }
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

  /** Closes every runtime, then the program pool. */
  async close(): Promise<void> {
    for (const t of this.tenants.values()) await t.close();
    await this.pool.close();
  }
}
