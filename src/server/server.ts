// The multi-tenant edge server: `server.shards` threads each accept their own connections (one
// SO_REUSEPORT socket each) and serve them — the HTTP front, the cache, and tenant programs run on
// the same thread a slice at a time (shard.ts). The main thread is shard 0 and also runs the admin
// API, the loader threads that boot programs, and the tenants' key-value stores. The config can be
// reloaded (SIGHUP or the admin API) without dropping requests: programs are loaded and adopted by
// every shard first, then every shard swaps its tenant runtimes, then the old ones close.
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { pino } from 'pino';
import type { Config, ConfigDiff, ProgramConfig, TenantConfig } from './config.ts';
import { diffConfigs, loadConfig } from './config.ts';
import { type Front, startFront } from '../http/front.ts';
import { openReusePortSocket } from '../http/listen-socket.ts';
import { KvStore } from './kv.ts';
import { type AlsoAdopt, type LoadedProgram, loadProgramVersion, type Logger as TenantLogger, programLoadFailure } from './tenant.ts';
import { ProgramPool } from '../sandbox/index.ts';
import { type CacheStats, SharedStorage, type StoreStats } from '../cache/index.ts';
import { Shard, type TenantUpdate } from './shard.ts';
import { RemoteShards } from './shards.ts';
import { mergeStats, type StatsSnapshot, sumFields } from './stats.ts';
import type { TenantRuntime } from './tenant.ts';
import type { KvStats } from './kv.ts';
import { LiveLog } from './live-log.ts';
import { FailureBundles } from './failure-bundles.ts';
import { turnOffPretenuring } from './pretenuring.ts';

/** The server's structured logger (pino). */
export type Logger = pino.Logger;

export interface EdgeServerOptions {
  /** Operational log (JSON lines on stdout by default). */
  logger?: Logger;
  /** Overrides the config's listen / admin addresses (tests use port 0). */
  listen?: { host: string; port: number };
  admin?: { host: string; port: number };
  /** Where a reload reads the config from (default: the config's own file). */
  configSource?: () => Config;
}

/** One tenant's figures over every shard. */
export interface TenantStatsReport extends StatsSnapshot {
  cache: CacheStats;
  kv: KvStats;
  /** Requests each shard answered, shard 0 first. */
  shards: number[];
}

export class EdgeServer {
  config: Config;
  /** Shard 0: this thread's tenants, cache and program pool. */
  readonly local: Shard;
  front!: Front;
  admin!: Front;
  readonly log: Logger;
  /** Reads the config a reload applies. */
  readonly loadNextConfig: () => Config;
  private readonly kv = new Map<string, KvStore>();
  /** The live request log: its readers, and what the shards record for them. */
  readonly liveLog: LiveLog;
  /** The newest failure bundles of each tenant, from every shard (replayable failures). */
  readonly failures: FailureBundles;
  /** Serialises reloads and uploads: one change to the tenant set at a time. */
  private changing: Promise<unknown> = Promise.resolve();

  private constructor(config: Config, pool: ProgramPool, private readonly storage: SharedStorage, private readonly remote: RemoteShards | undefined, log: Logger, source: (() => Config) | undefined) {
    this.config = config;
    this.loadNextConfig = source ?? (() => loadConfig(this.config.file));
    this.log = log;
    const shards = 1 + (remote?.count ?? 0);
    const tenantLog: TenantLogger = shards > 1 ? log.child({ shard: 0 }) : log;
    const failures = new FailureBundles(config.server.failureBundles, config.server.failureBundleBytes);
    this.failures = failures;
    this.local = new Shard(0, shards, pool, (tenant) => this.kvStore(tenant), tenantLog, storage, { shard: 0, keep: (b) => failures.keep(b) });
    if (remote) remote.onBundle = (b) => failures.keep(b);
    const liveLog: LiveLog = new LiveLog(async (scope) => {
      this.local.setRecording(scope, liveLog.deliver);
      await remote?.all({ type: 'record', scope });
    }, (message) => log.warn(message), { readers: config.server.liveLogReaders, perTenant: config.server.liveLogReadersPerTenant });
    if (remote) remote.onRecords = liveLog.deliver;
    this.liveLog = liveLog;
  }

  /** This thread's tenant runtimes (shard 0's). */
  get tenants(): ReadonlyMap<string, TenantRuntime> {
    return this.local.tenants;
  }

  /** This thread's program pool (shard 0's). */
  get pool(): ProgramPool {
    return this.local.pool;
  }

  /** Threads serving connections, this one included. */
  get shards(): number {
    return 1 + (this.remote?.count ?? 0);
  }

  /** Starts the shards, loads every tenant's programs, then opens the fronts and the admin API. */
  static async start(config: Config, options: EdgeServerOptions = {}): Promise<EdgeServer> {
    // Before any request: the request path's objects die young (pretenuring.ts).
    turnOffPretenuring();
    const log = options.logger ?? pino({ name: 'tinyedge' });
    const { sliceMs, shards } = config.server;
    // One cache for every shard, in shared memory; a reload may grow its budget up to the reserve.
    // Made first: a reserve this Node.js refuses stops the start before any thread does.
    const storage = SharedStorage.create(totalCacheBytes(config), config.server.cacheMaxBytes ?? undefined);
    const pool = await ProgramPool.start({ sliceMs });
    let remote: RemoteShards | undefined;
    let server: EdgeServer | undefined;
    try {
      // The stores are the server's, made as it loads each tenant; no shard asks before then.
      if (shards > 1) remote = await RemoteShards.start(shards - 1, { shards, sliceMs, cache: storage.handle() }, (t) => server?.kv.get(t), log);
      server = new EdgeServer(config, pool, storage, remote, log, options.configSource);
      const set: TenantUpdate['set'] = [];
      for (const t of config.tenants) set.push({ config: t, programs: await server.loadPrograms(t, undefined) });
      await server.updateShards({ set, remove: [], keep: set.flatMap((s) => s.programs.map((p) => p.key)), cacheBytes: totalCacheBytes(config) });
      if (config.server.accessLog !== null) await server.liveLog.startAccessLog(config.server.accessLog);
      server.front = await server.listen(options.listen ?? config.server.listen);
      const { registerAdmin } = await import('./admin.ts');
      server.admin = await startFront(registerAdmin(server), options.admin ?? config.server.admin);
    } catch (err) {
      if (server) await server.close();
      else {
        await remote?.close();
        await pool.close();
      }
      throw err;
    }
    return server;
  }

  /**
   * Opens the front of every shard: one listening socket each on the same address (SO_REUSEPORT,
   * so the kernel spreads new connections over them), or a plain listen with a single shard.
   */
  private async listen(address: { host: string; port: number }): Promise<Front> {
    const shard = this.local;
    const fastPath = shard.fastAnswer.bind(shard);
    const handler = shard.handle.bind(shard);
    if (!this.remote) return startFront(handler, { ...address, fastPath });
    const first = await openReusePortSocket(address);
    const front = await startFront(handler, { fd: first.fd, fastPath });
    for (let i = 1; i <= this.remote.count; i++) {
      // The address the first socket got, so that a host name cannot resolve elsewhere for the others.
      const { fd } = await openReusePortSocket({ host: first.address, port: first.port });
      await this.remote.one(i, { type: 'listen', fd });
    }
    return front;
  }

  private kvStore(tenant: string): KvStore {
    const store = this.kv.get(tenant);
    if (!store) throw new Error(`no key-value store for tenant ${tenant}`);
    return store;
  }

  /** Every shard adopts a program version as this thread's pool loads it. */
  private readonly alsoAdopt: AlsoAdopt = async (key, program, options) => {
    if (!this.remote) return;
    const adopted = await Promise.allSettled(Array.from({ length: this.remote.count }, (_, i) => this.remote!.one(i + 1, { type: 'adopt', key, program, options })));
    const failed = adopted.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.remote.all({ type: 'unload', key });
      throw failed.reason;
    }
  };

  /** Loads `cfg`'s programs on every shard, reusing the versions of `previous` whose config is unchanged. */
  private async loadPrograms(cfg: TenantConfig, previous: TenantRuntime | undefined): Promise<LoadedProgram[]> {
    const loaded: LoadedProgram[] = [];
    try {
      for (const p of cfg.programs) {
        const old = previous?.programs.get(p.name);
        if (old && isDeepStrictEqual(old.config, p)) loaded.push(old);
        else {
          try {
            loaded.push(await loadProgramVersion(this.pool, cfg.name, p, readFileSync(p.file), this.alsoAdopt, old));
          } catch (err) {
            throw programLoadFailure(cfg.name, p, err);
          }
        }
      }
    } catch (err) {
      for (const l of loaded) if (!previous || previous.programs.get(l.config.name) !== l) await this.unloadEverywhere(l.key);
      throw err;
    }
    let kv = this.kv.get(cfg.name);
    if (kv) kv.resize(cfg.kv.memoryBytes);
    else this.kv.set(cfg.name, (kv = new KvStore(cfg.kv.memoryBytes)));
    return loaded;
  }

  private async unloadEverywhere(key: string): Promise<void> {
    this.pool.unload(key);
    await this.remote?.all({ type: 'unload', key });
  }

  /** Applies `update` on every shard; the admin call or reload answers once all have. */
  private async updateShards(update: TenantUpdate): Promise<void> {
    await this.remote?.all({ type: 'update', update });
    await this.local.update(update);
  }

  /** Applies a new config: loads changed tenants' programs first; a failure changes nothing. */
  reload(next: Config): Promise<ConfigDiff> {
    const run = this.changing.then(() => this.applyConfig(next));
    this.changing = run.catch(() => undefined);
    return run;
  }

  private async applyConfig(next: Config): Promise<ConfigDiff> {
    const diff = diffConfigs(this.config, next);
    const set: TenantUpdate['set'] = [];
    try {
      for (const name of [...diff.tenantsAdded, ...diff.tenantsChanged]) {
        const config = next.tenants.find((t) => t.name === name)!;
        set.push({ config, programs: await this.loadPrograms(config, this.tenants.get(name)) });
      }
    } catch (err) {
      const kept = new Set(this.keptKeys());
      for (const s of set) for (const p of s.programs) if (!kept.has(p.key)) await this.unloadEverywhere(p.key);
      throw err;
    }
    const building = new Set(set.map((s) => s.config.name));
    const unchanged = [...this.tenants.values()].filter((t) => !building.has(t.name) && !diff.tenantsRemoved.includes(t.name));
    const keep = [...unchanged.flatMap((t) => [...t.programs.values()]), ...set.flatMap((s) => s.programs)].map((p) => p.key);
    await this.updateShards({ set, remove: diff.tenantsRemoved, keep, cacheBytes: totalCacheBytes(next) });
    for (const name of diff.tenantsRemoved) {
      this.kv.delete(name);
      this.failures.drop(name);
    }
    this.config = next;
    this.log.info({ added: diff.tenantsAdded, changed: diff.tenantsChanged, removed: diff.tenantsRemoved }, 'config reloaded');
    if (diff.serverChanged.length > 0) this.log.warn({ keys: diff.serverChanged }, 'server settings changed; restart to apply them');
    return diff;
  }

  private keptKeys(): string[] {
    return [...this.tenants.values()].flatMap((t) => [...t.programs.values()].map((p) => p.key));
  }

  /**
   * Replaces a program with an uploaded executable: it boots, initialises and answers a warm-up
   * request on a loader thread of its own, then every shard adopts its snapshot and switches to
   * it; a failure changes nothing. Uploads and reloads are applied one at a time.
   */
  uploadProgram(tenantName: string, programName: string, elf: Buffer): Promise<LoadedProgram> {
    const run = this.changing.then(async () => {
      const tenant = this.tenants.get(tenantName);
      const cfg: ProgramConfig | undefined = tenant?.config.programs.find((p) => p.name === programName);
      if (!tenant || !cfg) throw new Error(`tenant ${tenantName} has no program ${programName}`);
      const loaded = await loadProgramVersion(this.pool, tenant.name, cfg, elf, this.alsoAdopt, tenant.programs.get(programName));
      await this.remote?.all({ type: 'swap', tenant: tenant.name, program: loaded });
      this.local.swapProgram(tenant.name, loaded);
      return loaded;
    });
    this.changing = run.catch(() => undefined);
    return run;
  }

  /** Purges a URL of `tenant` on every shard; how many objects went. */
  async purge(tenant: string, url: string): Promise<number> {
    const here = this.local.tenant(tenant).cache.purge(url);
    const there = (await this.remote?.all({ type: 'purge', tenant, url })) ?? [];
    return there.reduce((a, b) => a + b, here);
  }

  /** Purges a surrogate key of `tenant` on every shard; how many objects went. */
  async purgeTag(tenant: string, tag: string): Promise<number> {
    const here = this.local.tenant(tenant).cache.purgeTag(tag);
    const there = (await this.remote?.all({ type: 'purgeTag', tenant, tag })) ?? [];
    return there.reduce((a, b) => a + b, here);
  }

  /** Adds a ban on every shard; a bad expression is refused here before any shard has it. */
  async ban(tenant: string, expression: string): Promise<void> {
    this.local.tenant(tenant).cache.ban(expression);
    await this.remote?.all({ type: 'ban', tenant, expression });
  }

  /** The shared cache as a whole (one store for every shard and tenant): objects, budget, memory. */
  cacheStoreStats(): StoreStats {
    return this.storage.stats();
  }

  /** `tenant`'s counters, latencies and cache figures summed over every shard. */
  async tenantStats(tenant: string): Promise<TenantStatsReport> {
    const parts = [this.local.stats(tenant), ...((await this.remote?.all({ type: 'stats', tenant })) ?? [])];
    const cache = sumFields(parts.map((p) => p.cache));
    // What the storage holds is one store every shard sees alike, and the bans are the same
    // everywhere: those are not summed.
    const { objects, bytes, evictions, bans, tags } = parts[0]!.cache;
    return { ...mergeStats(parts), cache: { ...cache, objects, bytes, evictions, bans, tags }, kv: this.kvStore(tenant).stats(), shards: parts.map((p) => p.counters.requests) };
  }

  async close(): Promise<void> {
    this.liveLog.endStreams();
    await Promise.all([this.front?.close(), this.admin?.close()]);
    await this.remote?.close();
    await this.local.close();
    await this.liveLog.close();
  }
}

function totalCacheBytes(config: Config): number {
  return Math.max(1, config.tenants.reduce((n, t) => n + t.cache.memoryBytes, 0));
}
