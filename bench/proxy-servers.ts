// The servers bench/proxy.ts compares (tinyedge proxy, tinyedge serve, Varnish, nginx) and the process plumbing
// around them: installing a missing tool with apt, writing each one's minimal cache config into a
// temp dir, starting it pinned to one CPU, waiting until it answers, and killing every process we
// started (whole process groups, so varnishd's and nginx's children go too), even on Ctrl-C.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';

/** A child process in its own process group, with the tail of its output kept for error messages. */
export interface Child {
  readonly process: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
}

const OUTPUT_TAIL = 8 * 1024;

/** Every process group we started, so one call (or the exit hook) can end them all. */
export class Children {
  private readonly live = new Set<ChildProcess>();

  spawn(command: string, args: string[], cpu?: string, cwd?: string): Child {
    const [cmd, argv] = cpu === undefined ? [command, args] : ['taskset', ['-c', cpu, command, ...args]];
    // detached: the child leads a new process group, so killing -pid reaches its own children.
    const child = spawn(cmd, argv, { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.live.add(child);
    let tail = '';
    const keep = (d: Buffer): void => {
      tail = (tail + d.toString()).slice(-OUTPUT_TAIL);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = new Promise<number | null>((resolve) => {
      // 'close', not 'exit': the output is only complete once the pipes are closed.
      child.on('close', (code) => {
        this.live.delete(child);
        resolve(code);
      });
      child.on('error', (err) => {
        tail += `\n${err.message}`;
        this.live.delete(child);
        resolve(null);
      });
    });
    return { process: child, exited, output: () => tail };
  }

  /** SIGTERM the group, then SIGKILL if it has not exited after `graceMs`. */
  async stop(child: Child, graceMs = 3_000): Promise<void> {
    if (!this.live.has(child.process)) return;
    signalGroup(child.process, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(child.process, 'SIGKILL'), graceMs);
    await child.exited;
    clearTimeout(timer);
    signalGroup(child.process, 'SIGKILL'); // stragglers in the group (varnishd's cache process)
  }

  /** Synchronous last resort for exit paths: SIGKILL every group still alive. */
  killAll(): void {
    for (const child of this.live) signalGroup(child, 'SIGKILL');
    this.live.clear();
  }
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** Absolute path of `name` on PATH or in the sbin directories (varnishd lives in /usr/sbin). */
export function findCommand(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  return undefined;
}

/**
 * Finds `binary`, installing Debian package `pkg` with apt when it is missing and we are root.
 * Returns its path, or a sentence saying why it is not available.
 */
export function ensureTool(binary: string, pkg: string): { path: string } | { missing: string } {
  const found = findCommand(binary);
  if (found !== undefined) return { path: found };
  if (process.getuid?.() !== 0) return { missing: `${binary} not found; install it with: sudo apt-get install -y ${pkg}` };
  console.log(`${binary} not found: apt-get install -y ${pkg}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): boolean => spawnSync('apt-get', ['install', '-y', '-q', pkg], { stdio: 'inherit', env }).status === 0;
  if (!install()) {
    // A fresh machine may have no package lists yet.
    spawnSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
    if (!install()) return { missing: `apt-get install -y ${pkg} failed` };
  }
  const path = findCommand(binary);
  return path === undefined ? { missing: `${pkg} installed but ${binary} not found` } : { path };
}

/** An unused loopback port (the usual bind-to-0-and-close; fine on a quiet benchmark machine). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (address !== null && typeof address !== 'string' ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly bytes: number;
}

/** One GET over a fresh connection; resolves with status, headers and body size. */
export function fetchOnce(url: string, timeoutMs = 5_000, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: timeoutMs, headers }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout fetching ${url}`)));
    req.on('error', reject);
  });
}

/**
 * Polls `url` until it answers with any status, sending `headers` (a server that caches must not
 * store the probe's answer); fails early if `child` exits.
 */
export async function waitReady(url: string, child: Child, timeoutMs: number, headers: Record<string, string> = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`exited before answering:\n${child.output()}`);
    try {
      await fetchOnce(url, 1_000, headers);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`did not answer ${url} within ${timeoutMs} ms:\n${child.output()}`);
}

/** What every benchmark run sets up: its processes, a temp dir, wrk, and the CPU pinning. */
export interface Harness {
  children: Children;
  dir: string;
  wrkPath: string;
  twoCpus: boolean;
  /** CPU for the servers and for wrk; undefined without taskset. */
  serverCpu: string | undefined;
  wrkCpu: string | undefined;
}

/**
 * Starts a benchmark run: a temp dir named after `prefix`, clean-up of every started process and
 * the dir on exit or signal, wrk (installed when missing), and servers on CPU 0, wrk on CPU 1.
 */
export function startHarness(prefix: string): Harness {
  const children = new Children();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.on('exit', () => {
    children.killAll();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      console.error(`\n${signal}: stopping every server this benchmark started`);
      process.exit(130);
    });
  }
  const wrk = ensureTool('wrk', 'wrk');
  if ('missing' in wrk) throw new Error(wrk.missing);
  const pinned = ensureTool('taskset', 'util-linux');
  const twoCpus = cpus().length >= 2;
  return {
    children,
    dir,
    wrkPath: wrk.path,
    twoCpus,
    serverCpu: 'path' in pinned ? '0' : undefined,
    wrkCpu: 'path' in pinned ? (twoCpus ? '1' : '0') : undefined,
  };
}

export interface Started {
  readonly name: string;
  readonly url: string;
  readonly child: Child;
  /** A line on how the server answered, from its own counters, where it has them. */
  readonly report?: () => Promise<string>;
}

/** Varnish with a minimal VCL: one backend, default caching, an X-Cache header to prove hits. */
export async function startVarnish(children: Children, varnishd: string, dir: string, originPort: number, cpu?: string): Promise<Started> {
  const work = join(dir, 'varnish');
  mkdirSync(work, { recursive: true });
  const vcl = join(work, 'bench.vcl');
  writeFileSync(
    vcl,
    `vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "${originPort}"; }
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
`,
  );
  const port = await freePort();
  // -j none: no privilege-separation jail, so it runs as whoever we are (root included) and can
  // use our temp dir; -n: its own working dir, so it never touches a system varnishd's.
  const args = ['-F', '-j', 'none', '-n', work, '-a', `127.0.0.1:${port}`, '-f', vcl, '-s', 'malloc,256m', '-T', 'none'];
  const child = children.spawn(varnishd, args, cpu);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/`, child, 30_000);
  return { name: 'varnish', url, child };
}

/** nginx with one worker process, a proxy_cache zone on a temp dir, and X-Cache from its status. */
export async function startNginx(children: Children, nginx: string, dir: string, originPort: number, cpu?: string): Promise<Started> {
  const prefix = join(dir, 'nginx');
  mkdirSync(join(prefix, 'cache'), { recursive: true });
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? 'user root root;' : ''}
worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  # no tcp_nopush: with sendfile it stalls each 100 KiB response ~40 ms here (cork + delayed ACK)
  keepalive_requests 1000000;
  open_file_cache max=1000 inactive=60s;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy_temp;
  fastcgi_temp_path ${prefix}/fastcgi_temp;
  uwsgi_temp_path ${prefix}/uwsgi_temp;
  scgi_temp_path ${prefix}/scgi_temp;
  proxy_cache_path ${prefix}/cache levels=1:2 keys_zone=bench:10m max_size=256m inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:${originPort}; keepalive 16; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      proxy_cache_lock on;
      add_header X-Cache $upstream_cache_status;
    }
  }
}
`,
  );
  const child = children.spawn(nginx, ['-p', `${prefix}/`, '-c', conf, '-e', join(prefix, 'error.log')], cpu);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/`, child, 15_000);
  return { name: 'nginx', url, child };
}

/**
 * `tinyedge proxy` from this checkout. Returns a reason instead when the subcommand does not exist
 * yet (the cache engine and its CLI are being written alongside this benchmark).
 */
export async function startTinyedge(children: Children, root: string, originPort: number, cpu?: string): Promise<Started | { missing: string }> {
  const bin = join(root, 'bin/tinyedge.js');
  const probe = spawnSync(process.execPath, [bin, 'proxy', '--help'], { cwd: root, encoding: 'utf8' });
  if (probe.status !== 0) {
    return { missing: `\`tinyedge proxy\` is not available in this checkout yet (${(probe.stderr || probe.stdout).trim().split('\n')[0]})` };
  }
  const port = await freePort();
  const args = [bin, 'proxy', '--origin', `http://127.0.0.1:${originPort}`, '--listen', `127.0.0.1:${port}`];
  const child = children.spawn(process.execPath, args, cpu, root);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/`, child, 30_000);
  return { name: 'tinyedge', url, child };
}

/** Attaches and detaches a reader of the live request log (`serve-log`). */
export interface LiveLogReader {
  attach(): Promise<void>;
  detach(): Promise<void>;
  /** Records received and drops announced, over every attachment. */
  counts(): { records: number; dropped: number };
  /** The server's requests answered so far (its stats), its CPU time so far, and the reader's. */
  sample(): Promise<CpuSample>;
}

/** CPU time so far, µs: the server's (all threads, and each thread by id), and the attached reader process's (0 with none). */
export interface CpuSample {
  requests: number;
  cpuUs: number;
  threads: Map<number, number>;
  readerUs: number;
}

/** CPU time of each thread of a process, by thread id, µs (Linux /proc). */
function threadCpuUs(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), statCpuUs(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')));
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** CPU time of a process, all its threads, user and system, µs (Linux /proc). */
function processCpuUs(pid: number): number {
  return statCpuUs(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** utime + stime of a /proc stat line, µs. */
function statCpuUs(stat: string): number {
  // Fields after the command name (which may hold spaces, in parentheses): utime is the 14th field.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / CLOCK_TICKS;
}
/** Clock ticks per second of /proc's times (USER_HZ): 100 on Linux's every architecture. */
const CLOCK_TICKS = 100;

/**
 * `tinyedge serve` from this checkout: one tenant for the Host wrk sends (127.0.0.1), the bench
 * origin as its default origin, no programs, so its hits are served as `serve` serves any tenant
 * without hook programs (the raw fast path included). With `readerCpu` (`serve-log`), `liveLog`
 * attaches a reader of the live request log (every tenant, no filter unless BENCH_LOG_QUERY has
 * one: a record for every request), a process of its own on that CPU (wrk's). BENCH_LOG_AA=1
 * attaches a process that reads nothing instead (an A/A run: what the bench gives two sides
 * that do the same, its own spread and bias).
 */
export async function startTinyedgeServe(children: Children, root: string, dir: string, originPort: number, cpu?: string, readerCpu?: string): Promise<Started & { liveLog?: LiveLogReader }> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const config = join(dir, 'serve.yaml');
  writeFileSync(
    config,
    `server:
  listen: 127.0.0.1:${port}
  # One shard: the server is pinned to one CPU.
  shards: 1
  admin: 127.0.0.1:${adminPort}
  operatorToken: bench-operator-token-0123456789
tenants:
  - name: bench
    hosts: [127.0.0.1]
    token: bench-token-0123456789
    origins: [{ name: default, url: "http://127.0.0.1:${originPort}" }]
`,
  );
  const child = children.spawn(process.execPath, [join(root, 'bin/tinyedge.js'), 'serve', '--config', config], cpu, root);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/`, child, 30_000);
  const requests = async (): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:${adminPort}/v1/tenants/bench/stats`, { headers: { authorization: 'Bearer bench-token-0123456789' } });
    return ((await res.json()) as { counters: { requests: number } }).counters.requests;
  };
  const liveLog = readerCpu === undefined ? undefined : liveLogReader(children, root, adminPort, `/v1/log${process.env.BENCH_LOG_QUERY ?? ''}`, readerCpu, async () => ({ requests: await requests(), cpuUs: processCpuUs(child.process.pid!), threads: threadCpuUs(child.process.pid!), readerUs: 0 }));
  const report = async (): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${adminPort}/v1/tenants/bench/stats`, { headers: { authorization: 'Bearer bench-token-0123456789' } });
    const { cache } = (await res.json()) as { cache: { hits: number; fastHits: number; misses: number } };
    const c = liveLog?.counts();
    const log = c === undefined ? '' : `; the live log reader got ${c.records} records, ${c.dropped} dropped`;
    return `hits ${cache.hits}, of which on the raw fast path ${cache.fastHits}; misses ${cache.misses}${log}`;
  };
  return { name: liveLog === undefined ? 'serve' : 'serve-log', url, child, report, liveLog };
}

/** bench/live-log-reader.c, compiled into build/bench when the source is newer. */
function liveLogReaderBinary(root: string): string {
  const src = join(root, 'bench/live-log-reader.c');
  const out = join(root, 'build/bench/live-log-reader');
  mkdirSync(dirname(out), { recursive: true });
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) execFileSync('gcc', ['-O2', '-Wall', '-o', out, src], { stdio: 'inherit' });
  return out;
}

/** A "reader" that connects to nothing and reads nothing (BENCH_LOG_AA), started as a reader is. */
const NOT_A_READER = ['/bin/sh', ['-c', 'echo reading; exec sleep 100000']] as const;

/** Readers in processes of their own (bench/live-log-reader.c) on `cpu`, one at a time. */
function liveLogReader(children: Children, root: string, port: number, path: string, cpu: string, sample: LiveLogReader['sample']): LiveLogReader {
  const binary = liveLogReaderBinary(root);
  let current: Child | undefined;
  const total = { records: 0, dropped: 0 };
  const last = (child: Child): { records: number; dropped: number } => {
    const m = /records (\d+) dropped (\d+)\s*$/.exec(child.output());
    return m === null ? { records: 0, dropped: 0 } : { records: Number(m[1]), dropped: Number(m[2]) };
  };
  return {
    async attach() {
      const [command, args] = process.env.BENCH_LOG_AA === '1' ? NOT_A_READER : [binary, [String(port), path, 'bench-operator-token-0123456789']];
      const child = children.spawn(command, [...args], cpu || undefined, root);
      const deadline = Date.now() + 30_000;
      while (!child.output().includes('reading')) {
        if (Date.now() > deadline || child.process.exitCode !== null) throw new Error(`the live log reader did not start:\n${child.output()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      current = child;
    },
    async detach() {
      if (current === undefined) return;
      // Its last counts line, printed every 200 ms, once the last records are in.
      await new Promise((r) => setTimeout(r, 400));
      const c = last(current);
      total.records += c.records;
      total.dropped += c.dropped;
      await children.stop(current);
      current = undefined;
    },
    counts: () => ({ ...total }),
    async sample() {
      const pid = current?.process.pid;
      let readerUs = 0;
      try {
        if (pid !== undefined) readerUs = processCpuUs(pid);
      } catch {
        // the reader has just exited
      }
      return { ...(await sample()), readerUs };
    },
  };
}

/** `varnishd -V` / `nginx -v` first line, for the header. */
export function versionOf(binary: string, flag: string): string {
  const r = spawnSync(binary, [flag], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '?';
}
