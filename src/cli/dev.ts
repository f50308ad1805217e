// `tinyedge dev`: serves one tenant over HTTP on 127.0.0.1 for developing its programs locally —
// one program (every request to its handler, its sub-requests to `--origin`), or a tenant of a
// config file (`--config FILE --tenant NAME`: its programs, hooks, routes and origins), with an
// in-memory key-value store either way. Requests run one at a time per program, on one instance
// each, in this thread (as the multi-tenant server does, through its program pool).
import { Kvm, KvmError, ProgramError, SandboxError } from '../sandbox/index.ts';
import type { Origin } from '../cache/index.ts';
import { ConfigError, loadConfig, type TenantConfig } from '../server/config.ts';
import { DEFAULTS as CONFIG_DEFAULTS } from '../server/config/schema.ts';
import { HTTP_METHODS } from '../server/config/values.ts';
import { openOrigin } from '../server/host-calls.ts';
import { KvStore } from '../server/kv.ts';
import { sandboxOptions } from '../server/tenant.ts';
import { startFront } from '../http/front.ts';
import { DevSite, type DevSiteParts, loadDevProgram } from './dev-site.ts';
import { EXIT_USAGE, type ProgramCliOptions } from './options.ts';
import { programOptions } from './program-options.ts';

export interface DevOptions extends ProgramCliOptions {
  port: number;
  host: string;
  /** Where the program's sub-requests go (its `default` origin). */
  origin?: string;
  config?: string;
  tenant?: string;
  trace?: boolean;
}

/** A command line that names no program, or too much. */
class UsageError extends Error {}

/** The tenant `opts` names in its config file (or the file's only tenant). */
function pickTenant(opts: DevOptions): TenantConfig {
  const config = loadConfig(opts.config!);
  if (opts.tenant === undefined) {
    if (config.tenants.length === 1) return config.tenants[0]!;
    throw new UsageError(`${opts.config} has ${config.tenants.length} tenants: name one with --tenant (${config.tenants.map((t) => t.name).join(', ')})`);
  }
  const tenant = config.tenants.find((t) => t.name === opts.tenant);
  if (!tenant) throw new UsageError(`${opts.config} has no tenant ${opts.tenant} (it has ${config.tenants.map((t) => t.name).join(', ')})`);
  return tenant;
}

/**
 * Loads what the command line names; whatever was loaded is closed again when a later part fails.
 * `kvm` opens /dev/kvm when a program is first loaded: a usage error is said as one, wherever KVM is missing.
 */
function loadSite(kvm: () => Kvm, path: string | undefined, opts: DevOptions, log: (line: string) => void): { site: DevSite; description: string } {
  const trace = opts.trace === true ? log : undefined;
  const origins = new Map<string, Origin>();
  const programs: Array<DevSiteParts['programs'][number]> = [];
  try {
    if (opts.config !== undefined) {
      if (path !== undefined || opts.origin !== undefined) throw new UsageError('--config serves the tenant\'s own programs and origins: give no program and no --origin with it');
      const tenant = pickTenant(opts);
      for (const o of tenant.origins) origins.set(o.name, openOrigin(o));
      // With several programs, each trace line says whose it is.
      const traceOf = (name: string): ((line: string) => void) | undefined =>
        trace && tenant.programs.length > 1 ? (line) => trace(`[${name}] ${line}`) : trace;
      for (const p of tenant.programs) programs.push({ config: p, loaded: loadDevProgram(kvm(), p.name, p.file, { ...sandboxOptions(p), trace: traceOf(p.name) }) });
      const site = new DevSite({ programs, originRoutes: tenant.routes, origins, kv: new KvStore(tenant.kv.memoryBytes) }, log);
      return { site, description: `tenant ${tenant.name} of ${opts.config} (${tenant.programs.map((p) => `${p.name}: ${p.roles.join('+')}`).join(', ') || 'no programs'})` };
    }
    if (path === undefined) throw new UsageError('name a program to serve, or a tenant with --config FILE --tenant NAME');
    if (opts.origin !== undefined) origins.set('default', openOrigin({ url: opts.origin }));
    const options = programOptions(path, opts);
    const loaded = loadDevProgram(kvm(), options.name!, path, { ...options, trace });
    programs.push({ config: { name: options.name!, roles: ['generate'], routes: [{ prefix: '/', methods: [...HTTP_METHODS] }] }, loaded });
    const site = new DevSite({ programs, originRoutes: [], origins, kv: new KvStore(CONFIG_DEFAULTS.kv.memoryBytes) }, log);
    const t = loaded.program.timing;
    return { site, description: `${path} (${loaded.program.limits.mode}) booted in ${t.bootUs}µs, initialised in ${t.initUs}µs, snapshot in ${t.snapshotUs}µs` };
  } catch (err) {
    for (const p of programs) p.loaded.close();
    for (const o of origins.values()) void o.close();
    throw err;
  }
}

/** How often dev looks whether the process that started it is still there. */
const PARENT_CHECK_MS = 250;

/**
 * Calls `stop` once `parent`, the process that started this one, has ended. `npx tinyedge dev`
 * runs this process under `sh -c`: a SIGTERM to npx's PID ends npx and the shell, not this
 * process, which would go on serving with a new parent (init, or a subreaper). Polled: Node has no
 * event for it. `parent` is read when dev starts, not here: the parent may end while the program
 * loads or between the "listening" line and this call, and then the parent read here would
 * already be the new one.
 */
function endWithParent(parent: number, stop: () => void, log: (line: string) => void): void {
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    log(`tinyedge dev: the process that started it (pid ${parent}) has ended; stopping`);
    stop();
  }, PARENT_CHECK_MS);
  timer.unref();
}

/** Runs `tinyedge dev` until SIGINT/SIGTERM or its parent ends; a failure to start sets the exit status. */
export async function dev(path: string | undefined, opts: DevOptions): Promise<void> {
  const parent = process.ppid;
  try {
    let kvm: Kvm | undefined;
    const log = (line: string): void => void process.stderr.write(`${line}\n`);
    const { site, description } = loadSite(() => (kvm ??= new Kvm()), path, opts, log);
    const front = await startFront(site.handle, { host: opts.host, port: opts.port });
    log(`tinyedge dev: ${description}`);
    if (opts.origin !== undefined) log(`sub-requests go to ${opts.origin}`);
    log(`listening on ${front.url}`);
    let stopping: Promise<void> | undefined;
    const stop = (): void => {
      stopping ??= front.close().then(() => site.close()).then(() => kvm?.close());
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    endWithParent(parent, stop, log);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(`tinyedge: ${err.message}\n`);
      process.exitCode = EXIT_USAGE;
      return;
    }
    if (err instanceof SandboxError || err instanceof ProgramError || err instanceof KvmError || err instanceof RangeError) {
      process.stderr.write(`tinyedge: ${err.message}\n`);
      process.exitCode = 125;
      return;
    }
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      process.stderr.write(`tinyedge: ${opts.host}:${opts.port} is already in use\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
}
