// The two servers bench/workerd.ts compares on a hello-world: Cloudflare's workerd (installed from
// the npm package `workerd` into a cache folder under build/, never into the project's
// dependencies) running a hello Worker, and tinyedge running the SDK hello program with every
// request entering its VM. Also: checking an answer is exactly the hello body.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitReady } from './proxy-servers.ts';
import type { Child, Children, Started } from './proxy-servers.ts';

/** The body both servers must answer with, byte for byte. */
export const HELLO_BODY = 'hello, world\n';

/**
 * Sent with every request to both servers (wrk and the checks). The hello program asks tinyedge
 * to cache its answer for 60 s and `serve` has no per-route "never cache" setting; a request's
 * `no-store` makes the cache pass it straight to the program, stored nothing (X-Cache: PASS), so
 * every request enters the VM. workerd ignores it. Same bytes on the wire for both.
 */
export const REQUEST_HEADERS: Record<string, string> = { 'cache-control': 'no-store' };

/**
 * Spawns a server (pinned like Children.spawn does) with its stdout and stderr going to `logFile`
 * instead of a pipe to this process: `tinyedge dev` logs a line per request, and draining a pipe
 * would wake this unpinned process thousands of times a second, maybe on the server's own core,
 * and stall the server whenever the pipe filled. `exec` keeps the server the pinned process.
 */
function spawnLogged(children: Children, command: string, args: string[], logFile: string, cpu?: string, cwd?: string): Child {
  return children.spawn('sh', ['-c', 'log=$1; shift; exec "$@" >>"$log" 2>&1', 'sh', logFile, command, ...args], cpu, cwd);
}

/** Waits for the server to answer; on failure, the error carries the end of its log. */
async function waitLogged(url: string, child: Child, logFile: string, timeoutMs: number): Promise<void> {
  try {
    // With REQUEST_HEADERS: tinyedge serve must not cache the probe's answer.
    await waitReady(url, child, timeoutMs, REQUEST_HEADERS);
  } catch (err) {
    let log = '';
    try {
      log = readFileSync(logFile, 'utf8').slice(-4096).trim();
    } catch {
      // never written: the error says enough
    }
    throw new Error(`${err instanceof Error ? err.message.trim() : String(err)}${log === '' ? '' : `\n${log}`}`);
  }
}

export interface Workerd {
  /** The native executable (not the npm `bin` shim, which may be a Node wrapper on some installs). */
  readonly bin: string;
  /** Version of the npm package, e.g. 1.20261117.1. */
  readonly packageVersion: string;
  /** What `workerd --version` prints, e.g. "workerd 2026-11-17". */
  readonly binaryVersion: string;
  /** The compatibility date the Worker is configured with: the binary's own date, or today if earlier. */
  readonly compatibilityDate: string;
}

/** Where the native binary sits inside an install: the platform package first, then the main one. */
function workerdBinary(cacheDir: string): string | undefined {
  const modules = join(cacheDir, 'node_modules');
  const arch = process.arch === 'x64' ? '64' : process.arch;
  const candidates = [join(modules, `@cloudflare/workerd-${process.platform}-${arch}/bin/workerd`), join(modules, 'workerd/bin/workerd')];
  return candidates.find((path) => existsSync(path));
}

/** Runs `workerd --version`; returns the line, or undefined when it does not run on this machine. */
function workerdVersion(bin: string): { line: string; date: string } | { error: string } {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  const m = /workerd (\d{4}-\d{2}-\d{2})/.exec(out);
  if (r.status !== 0 || m === null) return { error: `\`${bin} --version\` exited with ${r.status ?? r.signal}: ${out || r.error?.message || 'no output'}` };
  return { line: out.split('\n')[0] as string, date: m[1] as string };
}

/**
 * Makes sure workerd is installed in `cacheDir` (its own package.json and node_modules, so the
 * project's dependencies never include it) and runs on this machine. Installs with npm on first
 * use and reinstalls once if the cached copy does not run; delete the folder to get a newer one.
 */
export function ensureWorkerd(cacheDir: string): Workerd {
  let bin = workerdBinary(cacheDir);
  let version = bin === undefined ? undefined : workerdVersion(bin);
  if (bin === undefined || version === undefined || 'error' in version) {
    mkdirSync(cacheDir, { recursive: true });
    const manifest = join(cacheDir, 'package.json');
    // A package.json of its own makes the folder an npm project root: npm cannot climb up to the
    // repository's package.json and install workerd there.
    if (!existsSync(manifest)) {
      writeFileSync(manifest, `${JSON.stringify({ name: 'tinyedge-bench-workerd', private: true, description: 'workerd for bench/workerd.ts (not a dependency of tinyedge)' }, null, 2)}\n`);
    }
    console.error(`installing workerd into ${cacheDir} (npm install workerd) ...`);
    const npm = spawnSync('npm', ['install', '--prefix', cacheDir, '--no-audit', '--no-fund', 'workerd'], { stdio: 'inherit', cwd: cacheDir });
    if (npm.status !== 0) throw new Error(`npm install workerd into ${cacheDir} failed (exit ${npm.status ?? npm.signal})`);
    bin = workerdBinary(cacheDir);
    if (bin === undefined) throw new Error(`npm installed workerd into ${cacheDir}, but no workerd binary for ${process.platform}-${process.arch} is in it`);
    version = workerdVersion(bin);
    if ('error' in version) throw new Error(`workerd does not run on this machine: ${version.error}`);
  }
  const pkg = JSON.parse(readFileSync(join(cacheDir, 'node_modules/workerd/package.json'), 'utf8')) as { version?: unknown };
  // The binary accepts any date up to its own; today's date if the clock is behind the build.
  const today = new Date().toISOString().slice(0, 10);
  return {
    bin,
    packageVersion: typeof pkg.version === 'string' ? pkg.version : '?',
    binaryVersion: version.line,
    compatibilityDate: version.date < today ? version.date : today,
  };
}

/** The hello Worker: a module Worker answering every request with the same text. */
const WORKER_JS = `export default {
  fetch() {
    return new Response(${JSON.stringify(HELLO_BODY)}, { headers: { "content-type": "text/plain" } });
  },
};
`;

function workerdConfig(port: number, compatibilityDate: string): string {
  return `# bench/workerd.ts: one hello Worker on one loopback socket.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "hello", worker = .helloWorker) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "hello") ],
);

const helloWorker :Workerd.Worker = (
  modules = [ (name = "hello.js", esModule = embed "hello.js") ],
  compatibilityDate = "${compatibilityDate}",
);
`;
}

/** Writes the Worker and its config into `dir`/workerd and starts `workerd serve` pinned to `cpu`. */
export async function startWorkerd(children: Children, workerd: Workerd, dir: string, cpu?: string): Promise<Started> {
  const work = join(dir, 'workerd');
  mkdirSync(work, { recursive: true });
  const port = await freePort();
  writeFileSync(join(work, 'hello.js'), WORKER_JS);
  const config = join(work, 'config.capnp');
  writeFileSync(config, workerdConfig(port, workerd.compatibilityDate));
  const log = join(work, 'workerd.log');
  const child = spawnLogged(children, workerd.bin, ['serve', config], log, cpu, work);
  const url = `http://127.0.0.1:${port}`;
  await waitLogged(`${url}/`, child, log, 30_000);
  return { name: 'workerd', url, child };
}

/** A bare node:http server answering the hello: what Node's HTTP costs per request, for the ceiling. */
const NODE_HELLO_JS = `const { createServer } = require('node:http');
const body = Buffer.from(${JSON.stringify(HELLO_BODY)});
createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
}).listen(Number(process.argv[2]), '127.0.0.1');
`;

/** Starts the bare node:http hello pinned to `cpu`. */
export async function startNodeHello(children: Children, dir: string, cpu?: string): Promise<Started> {
  const script = join(dir, 'node-hello.cjs');
  writeFileSync(script, NODE_HELLO_JS);
  const port = await freePort();
  const child = children.spawn(process.execPath, [script, String(port)], cpu, dir);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/`, child, 30_000);
  return { name: 'node', url, child };
}

export type TinyedgeMode = 'dev' | 'serve';

/** How to start tinyedge for the benchmark: the files to write, the command, and what to request. */
export interface TinyedgeLaunch {
  readonly mode: TinyedgeMode;
  /** Row label: says which subcommand was measured, since they are different servers. */
  readonly label: string;
  /** Arguments to `node` (the script first). */
  readonly args: string[];
  /** Files to write before starting, path → content (the serve config). */
  readonly files: Record<string, string>;
  /** Base URL and the path wrk loads. */
  readonly url: string;
  readonly path: string;
  /** The tenant's stats in the admin API (`serve` only), to prove every request entered the VM. */
  readonly stats?: { readonly url: string; readonly token: string };
}

/**
 * Builds the tinyedge command for `mode`. `dev` serves one program, one instance, no cache, so
 * every request enters the VM. `serve` is the multi-tenant server, whose cache would keep the
 * hello answer for 60 s (the program asks for it) and measure hits instead of compute; the
 * requests' `Cache-Control: no-store` (REQUEST_HEADERS) makes it pass each one to the program.
 */
export function tinyedgeLaunch(mode: TinyedgeMode, root: string, dir: string, program: string, port: number, adminPort: number): TinyedgeLaunch {
  const bin = join(root, 'bin/tinyedge.js');
  const url = `http://127.0.0.1:${port}`;
  if (mode === 'dev') {
    return { mode, label: 'tinyedge dev', args: [bin, 'dev', program, '--host', '127.0.0.1', '--port', String(port)], files: {}, url, path: '/' };
  }
  return serveLaunch({ root, dir, program, port, adminPort, name: 'tinyedge', label: 'tinyedge serve', programKeys: [] });
}

/** Where and what `serveLaunch` runs: the config file's name, the row's label, extra program keys. */
export interface ServeLaunchSpec {
  root: string;
  dir: string;
  program: string;
  port: number;
  adminPort: number;
  name: string;
  label: string;
  /** YAML lines (`key: value`) added to the program's entry. */
  programKeys: readonly string[];
}

/** `tinyedge serve` with one tenant whose program answers every path (requests carry no-store). */
export function serveLaunch(spec: ServeLaunchSpec): TinyedgeLaunch {
  const { root, dir, program, port, adminPort } = spec;
  const bin = join(root, 'bin/tinyedge.js');
  const url = `http://127.0.0.1:${port}`;
  // Keys as in docs/config.md. One shard: the server is pinned to one CPU. queueTimeout 1s: on a
  // busy machine the 100 ms default can turn a scheduling stall into 503s, and this measures
  // throughput and latency, not load shedding. The admin token only guards this loopback run.
  const config = join(dir, `${spec.name}.yaml`);
  const token = 'bench-workerd-token-0123456789';
  const yaml = `# bench/workerd.ts: one tenant, the hello program on every path (requests carry no-store).
server:
  listen: 127.0.0.1:${port}
  # One shard: the server is pinned to one CPU.
  shards: 1
  admin: 127.0.0.1:${adminPort}
tenants:
  - name: bench
    hosts: [127.0.0.1, localhost]
    token: ${token}
    programs:
      - name: hello
        file: ${JSON.stringify(program)}
        mode: sdk
        roles: [generate]
        routes:
          - { prefix: /, methods: [GET, HEAD] }
        queueTimeout: 1s
${spec.programKeys.map((line) => `        ${line}\n`).join('')}`;
  const stats = { url: `http://127.0.0.1:${adminPort}/v1/tenants/bench/stats`, token };
  return { mode: 'serve', label: spec.label, args: [bin, 'serve', '--config', config], files: { [config]: yaml }, url, path: '/', stats };
}

/** 'serve' when this checkout's CLI has it, else 'dev'; with the reason, for the header. */
export function detectTinyedgeMode(root: string): { mode: TinyedgeMode; why: string } {
  const probe = spawnSync(process.execPath, [join(root, 'bin/tinyedge.js'), 'serve', '--help'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  const out = `${probe.stdout ?? ''}${probe.stderr ?? ''}`;
  // commander answers `unknown-command --help` with the top-level help and exit 0, so look for
  // the subcommand's own usage line instead of trusting the status.
  if (probe.status === 0 && /Usage: tinyedge serve\b/.test(out) && out.includes('--config')) return { mode: 'serve', why: '`tinyedge serve` is available' };
  const reason = probe.status === 0 ? 'no serve command in `tinyedge --help`' : (out.trim().split('\n')[0] ?? `exit ${probe.status}`);
  return { mode: 'dev', why: `\`tinyedge serve\` is not available in this checkout yet (${reason}); measuring \`tinyedge dev\`` };
}

/** Starts tinyedge as `launch` says, pinned to `cpu`, and waits until it answers. */
export async function startTinyedge(children: Children, launch: TinyedgeLaunch, root: string, dir: string, cpu?: string): Promise<Started> {
  for (const [path, content] of Object.entries(launch.files)) writeFileSync(path, content);
  const log = join(dir, 'tinyedge.log');
  const child = spawnLogged(children, process.execPath, launch.args, log, cpu, root);
  await waitLogged(`${launch.url}${launch.path}`, child, log, 60_000);
  return { name: launch.label, url: launch.url, child };
}

/** One checked answer: what was wrong with it (if anything) and the server's own VM timing. */
export interface Checked {
  readonly problem?: string;
  /** Server-Timing `call` and `reset` in µs, when the server reports them (tinyedge dev does). */
  readonly callUs?: number;
  readonly resetUs?: number;
}

function timing(header: string | null, name: string): number | undefined {
  const m = header === null ? null : new RegExp(`(?:^|,)\\s*${name};dur=([\\d.]+)`).exec(header);
  return m === null ? undefined : Number(m[1]) * 1000;
}

/**
 * GETs `url` and checks it is a fresh hello: status 200, the exact body, and no sign of a cache
 * hit (a hit would mean wrk measured the cache, not the program).
 */
export async function checkHello(url: string): Promise<Checked> {
  let res: Response;
  let body: string;
  try {
    res = await fetch(url, { headers: REQUEST_HEADERS, signal: AbortSignal.timeout(5_000) });
    body = await res.text();
  } catch (err) {
    return { problem: `GET ${url} failed: ${err instanceof Error ? err.message : String(err)}` };
  }
  const serverTiming = res.headers.get('server-timing');
  const out = { callUs: timing(serverTiming, 'call'), resetUs: timing(serverTiming, 'reset') };
  if (res.status !== 200) return { ...out, problem: `GET ${url} answered ${res.status} (want 200): ${JSON.stringify(body.slice(0, 200))}` };
  if (body !== HELLO_BODY) return { ...out, problem: `GET ${url} answered ${JSON.stringify(body.slice(0, 200))} (want ${JSON.stringify(HELLO_BODY)})` };
  const xcache = res.headers.get('x-cache');
  const age = res.headers.get('age');
  if ((xcache !== null && /hit/i.test(xcache)) || (age !== null && age !== '0')) {
    return { ...out, problem: `GET ${url} was a cache hit (X-Cache: ${xcache ?? '-'}, Age: ${age ?? '-'}): the route must not be cached` };
  }
  return out;
}

/** The counters of `tinyedge serve`'s tenant stats this benchmark relies on. */
export interface TenantCounters {
  readonly vmCalls: number;
  readonly hits: number;
  readonly passes: number;
  readonly status5xx: number;
  /** VM exits (of them the timer's) and batches of the serving program versions; absent from servers before issue 13. */
  readonly vmExits?: number;
  readonly vmTimerExits?: number;
  readonly vmBatches?: number;
}

function counter(section: unknown, key: string): number {
  const value = typeof section === 'object' && section !== null ? (section as Record<string, unknown>)[key] : undefined;
  if (typeof value !== 'number') throw new Error(`tenant stats: no number at ${key}`);
  return value;
}

/** Reads the tenant's counters from the admin API. */
export async function tenantCounters(stats: { readonly url: string; readonly token: string }): Promise<TenantCounters> {
  const res = await fetch(stats.url, { headers: { authorization: `Bearer ${stats.token}` }, signal: AbortSignal.timeout(5_000) });
  if (res.status !== 200) throw new Error(`GET ${stats.url} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  const body = (await res.json()) as { counters?: unknown; cache?: unknown };
  const optional = (key: string): number | undefined => {
    const c = body.counters as Record<string, unknown> | undefined;
    return typeof c?.[key] === 'number' ? c[key] : undefined;
  };
  return {
    vmCalls: counter(body.counters, 'vmCalls'),
    vmExits: optional('vmExits'),
    vmTimerExits: optional('vmTimerExits'),
    vmBatches: optional('vmBatches'),
    status5xx: counter(body.counters, 'status5xx'),
    hits: counter(body.cache, 'hits'),
    passes: counter(body.cache, 'passes'),
  };
}
