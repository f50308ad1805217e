// The multi-tenant edge server: the HTTP front routes by Host to a tenant's cache, tenant programs
// run on the same thread a slice at a time (their loads on loader threads), and the config can be reloaded (SIGHUP or the admin API) without
// dropping requests: new tenant runtimes are built first, then swapped in, then the old ones close.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { type FastResponse, Storage } from '../cache/index.ts';
import type { FastRequest } from '../http/fast-path.ts';
import type { Config, ConfigDiff, ProgramConfig, TenantConfig } from './config.ts';
import { diffConfigs, loadConfig } from './config.ts';
import { type Front, startFront } from '../http/front.ts';
import { KvStore } from './kv.ts';
import { pino } from 'pino';
import { type LoadedProgram, loadProgramVersion, type Logger, TenantRuntime } from './tenant.ts';
import { ProgramPool } from '../sandbox/index.ts';

export interface EdgeServerOptions {
  /** Operational log (JSON lines on stdout by default). */
  logger?: Logger;
  /** Overrides the config's listen / admin addresses (tests use port 0). */
  listen?: { host: string; port: number };
  admin?: { host: string; port: number };
  /** Where a reload reads the config from (default: the config's own file). */
  configSource?: () => Config;
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

export class EdgeServer {
  config: Config;
  readonly pool: ProgramPool;
  readonly storage: Storage;
  readonly tenants = new Map<string, TenantRuntime>();
  private byHost = new Map<string, TenantRuntime>();
  private readonly kv = new Map<string, KvStore>();
  front!: Front;
  admin!: Front;
  readonly log: Logger;
  /** Reads the config a reload applies. */
  readonly loadNextConfig: () => Config;
  /** Serialises reloads and uploads: one change to the tenant set at a time. */
  private changing: Promise<unknown> = Promise.resolve();

  private constructor(config: Config, pool: ProgramPool, log: Logger, source: (() => Config) | undefined) {
    this.config = config;
    this.loadNextConfig = source ?? (() => loadConfig(this.config.file));
    this.pool = pool;
    this.log = log;
    this.storage = new Storage({ maxBytes: totalCacheBytes(config) });
  }

  /** Starts the program pool, loads every tenant's programs, then opens the front and the admin API. */
  static async start(config: Config, options: EdgeServerOptions = {}): Promise<EdgeServer> {
    const log = options.logger ?? pino({ name: 'tinyedge' });
    const pool = await ProgramPool.start({ sliceMs: config.server.sliceMs });
    const server = new EdgeServer(config, pool, log, options.configSource);
    try {
      for (const t of config.tenants) server.install(await server.buildTenant(t, undefined));
      server.indexHosts();
      const { registerAdmin } = await import('./admin.ts');
      server.front = await startFront((req, res) => server.handle(req, res), { ...(options.listen ?? config.server.listen), fastPath: (r) => server.fastHit(r) });
      server.admin = await startFront(registerAdmin(server), options.admin ?? config.server.admin);
    } catch (err) {
      await server.close();
      throw err;
    }
    return server;
  }

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
  private fastHit(r: FastRequest): FastResponse | null {
    const tenant = this.byHost.get(hostOf(r.host));
    if (tenant === undefined) return null;
    const started = performance.now();
    const answer = tenant.cache.fastHit(r.host, r.url, r.method === 'HEAD');
    if (answer !== null) tenant.stats.response(answer.status, (performance.now() - started) * 1000);
    return answer;
  }

  /** A tenant runtime for `cfg`, reusing the programs of `previous` whose config is unchanged. */
  private async buildTenant(cfg: TenantConfig, previous: TenantRuntime | undefined): Promise<TenantRuntime> {
    const loaded: LoadedProgram[] = [];
    try {
      for (const p of cfg.programs) {
        const old = previous?.programs.get(p.name);
        if (old && isDeepStrictEqual(old.config, p)) loaded.push(old);
        else loaded.push(await loadProgramVersion(this.pool, cfg.name, p, readFileSync(p.file)));
      }
    } catch (err) {
      for (const l of loaded) if (!previous || previous.programs.get(l.config.name) !== l) this.pool.unload(l.key);
      throw err;
    }
    let kv = this.kv.get(cfg.name);
    if (kv) kv.resize(cfg.kv.memoryBytes);
    else this.kv.set(cfg.name, (kv = new KvStore(cfg.kv.memoryBytes)));
    return new TenantRuntime(cfg, this.pool, this.storage, kv, loaded, this.log);
  }

  private install(t: TenantRuntime): void {
    this.tenants.set(t.name, t);
  }

  private indexHosts(): void {
    const next = new Map<string, TenantRuntime>();
    for (const t of this.tenants.values()) for (const h of t.config.hosts) next.set(h, t);
    this.byHost = next;
  }

  /** Applies a new config: builds changed tenants first; a failure changes nothing. */
  reload(next: Config): Promise<ConfigDiff> {
    const run = this.changing.then(() => this.applyConfig(next));
    this.changing = run.catch(() => undefined);
    return run;
  }

  private async applyConfig(next: Config): Promise<ConfigDiff> {
    const diff = diffConfigs(this.config, next);
    const built = new Map<string, TenantRuntime>();
    try {
      for (const name of [...diff.tenantsAdded, ...diff.tenantsChanged]) {
        built.set(name, await this.buildTenant(next.tenants.find((t) => t.name === name)!, this.tenants.get(name)));
      }
    } catch (err) {
      for (const t of built.values()) await t.close(new Set(this.keptKeys()));
      throw err;
    }
    this.storage.maxBytes = totalCacheBytes(next);
    const retired: TenantRuntime[] = [];
    for (const name of diff.tenantsRemoved) {
      retired.push(this.tenants.get(name)!);
      this.tenants.delete(name);
      this.kv.delete(name);
      this.storage.namespace(name).clear();
    }
    for (const [name, t] of built) {
      const old = this.tenants.get(name);
      if (old) retired.push(old);
      this.tenants.set(name, t);
    }
    this.indexHosts();
    this.config = next;
    const keep = new Set(this.keptKeys());
    for (const t of retired) await t.close(keep);
    this.log.info({ added: diff.tenantsAdded, changed: diff.tenantsChanged, removed: diff.tenantsRemoved }, 'config reloaded');
    if (diff.serverChanged.length > 0) this.log.warn({ keys: diff.serverChanged }, 'server settings changed; restart to apply them');
    return diff;
  }

  private keptKeys(): string[] {
    return [...this.tenants.values()].flatMap((t) => [...t.programs.values()].map((p) => p.key));
  }

  /**
   * Replaces a program with an uploaded executable: it boots, initialises and answers a warm-up
   * request on a loader thread of its own, then the pool adopts its snapshot before it takes over; a failure changes nothing. Uploads and reloads are applied one at a time.
   */
  uploadProgram(tenantName: string, programName: string, elf: Buffer): Promise<LoadedProgram> {
    const run = this.changing.then(async () => {
      const tenant = this.tenants.get(tenantName);
      const cfg: ProgramConfig | undefined = tenant?.config.programs.find((p) => p.name === programName);
      if (!tenant || !cfg) throw new Error(`tenant ${tenantName} has no program ${programName}`);
      const loaded = await loadProgramVersion(this.pool, tenant.name, cfg, elf);
      const old = tenant.programs.get(programName);
      tenant.programs.set(programName, loaded);
      if (old) this.pool.unload(old.key);
      return loaded;
    });
    this.changing = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await Promise.all([this.front?.close(), this.admin?.close()]);
    for (const t of this.tenants.values()) await t.close();
    await this.pool.close();
  }
}

function totalCacheBytes(config: Config): number {
  return Math.max(1, config.tenants.reduce((n, t) => n + t.cache.memoryBytes, 0));
}
