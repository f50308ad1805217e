// Cache-hit throughput and latency of `tinyedge proxy` and `tinyedge serve` (one tenant without
// programs) against Varnish and nginx on this machine, all in front of one origin, each server
// pinned to CPU 0 and wrk to CPU 1. Every server is checked to really serve hits (the origin
// counts its fetches). Usage:
//   node --import tsx bench/proxy.ts [--duration 10] [--connections 50] [--warmup 2] [--only tinyedge,serve,serve-log,varnish,nginx]
// `serve-log` measures what a live request log reader costs hits: one `tinyedge serve`, wrk runs
// without and with a reader attached (every record), `--rounds` of each (default 3), in pairs
// whose first run alternates (without first, then with first, ...), medians of each side in the
// table. `--pace MS` makes each wrk connection wait MS between requests: a fixed load below
// saturation, where the server's CPU time per request is what compares (with wrk and the server
// about as fast as each other, req/s at saturation measures the pair's stalls and wake-ups as
// much as the server's work).
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Children, ensureTool, fetchOnce, startHarness, startNginx, startTinyedge, startTinyedgeServe, startVarnish, versionOf } from './proxy-servers.ts';
import type { CpuSample, LiveLogReader, Started } from './proxy-servers.ts';
import { runWrk } from './wrk.ts';
import type { WrkResult } from './wrk.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SERVERS = ['tinyedge', 'serve', 'serve-log', 'varnish', 'nginx'] as const;
type ServerName = (typeof SERVERS)[number];
/** How the table names each server: `tinyedge` is `tinyedge proxy`, kept short as before. */
const LABELS: Readonly<Record<ServerName, string>> = { tinyedge: 'tinyedge', serve: 'tinyedge serve', 'serve-log': 'serve', varnish: 'varnish', nginx: 'nginx' };

interface Options {
  rounds: number;
  durationSec: number;
  connections: number;
  warmupSec: number;
  only: ServerName[];
  /** serve-log: each wrk connection's pause between requests, ms (a fixed load below saturation). */
  paceMs?: number;
  /** The origin's objects to load (by name, as `100b`); all when omitted. */
  objects?: string[];
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { rounds: 3, durationSec: 10, connections: 50, warmupSec: 2, only: [...SERVERS] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const number = (): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer, got '${value}'`);
      i++;
      return n;
    };
    if (flag === '--duration') opts.durationSec = number();
    else if (flag === '--connections') opts.connections = number();
    else if (flag === '--warmup') opts.warmupSec = number();
    else if (flag === '--rounds') opts.rounds = number();
    else if (flag === '--pace') opts.paceMs = number();
    else if (flag === '--objects') {
      opts.objects = (value ?? '').split(',').filter((s) => s !== '');
      if (opts.objects.length === 0) throw new Error(`--objects takes a list of the origin's objects (100b,100k), got '${value}'`);
      i++;
    }    else if (flag === '--only') {
      const names = (value ?? '').split(',').filter((s) => s !== '');
      const bad = names.filter((n) => !(SERVERS as readonly string[]).includes(n));
      if (names.length === 0 || bad.length > 0) throw new Error(`--only takes a list of ${SERVERS.join(',')}, got '${value}'`);
      opts.only = names as ServerName[];
      i++;
    } else if (flag === '--help' || flag === '-h') {
      console.log(`usage: node --import tsx bench/proxy.ts [--duration SEC] [--connections N] [--warmup SEC] [--rounds N] [--pace MS] [--objects 100b,100k] [--only ${SERVERS.join(',')}]`);
      process.exit(0);
    } else throw new Error(`unknown option '${flag}' (try --help)`);
  }
  return opts;
}

/**
 * Where serve-log's CPU time goes: the main thread (shard 0, which serves), the threads that
 * started with the first reader (the live log's thread), the server's other threads (V8's
 * helpers: GC, compilers), and the reader process (on wrk's CPU, not the server's).
 */
const CPU_PARTS = ['main thread', 'log thread', 'other threads', 'reader process'] as const;
type CpuPart = (typeof CPU_PARTS)[number];

interface Row {
  server: ServerName;
  /** serve-log's two sides: 'no reader' and 'reader'. */
  variant?: string;
  /** serve-log: the server's CPU time (all its threads) per request answered, µs, median of the runs. */
  cpuUsPerRequest?: number;
  /** serve-log: medians of the same per thread (and of the reader process), µs per request. */
  cpuParts?: Record<CpuPart, number>;
  /** serve-log's reader side: each reader run against the runs without beside it (`pairedChanges`). */
  paired?: { requestsPerSec: number[]; cpuUsPerRequest: number[]; cpuPartsUs: Record<CpuPart, number[]> };
  object: string;
  result?: WrkResult;
  /** Origin fetches of this object while wrk was running: 0 or 1 means hits were measured. */
  originDuringLoad: number;
  cacheHeader: string;
  note?: string;
}

function machine(): string {
  let model = cpus()[0]?.model ?? 'unknown CPU';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m !== null) model = (m[1] as string).trim();
  } catch {
    // not Linux: os.cpus() is good enough
  }
  return `${model}, ${cpus().length} cores`;
}

async function originCounts(origin: string): Promise<Record<string, number>> {
  const res = await fetch(`${origin}/__counts`);
  return (await res.json()) as Record<string, number>;
}

/** The cache verdict a server reports for a repeated request (X-Cache, else Age). */
function cacheHeader(headers: Record<string, string | string[] | undefined>): string {
  const xcache = headers['x-cache'];
  if (xcache !== undefined) return `X-Cache: ${String(xcache)}`;
  const age = headers.age;
  return age !== undefined ? `Age: ${String(age)}` : '-';
}

/** The run whose req/s is the median of `runs` (an odd count: a real run, not an average). */
function median(runs: WrkResult[]): WrkResult {
  const sorted = [...runs].sort((a, b) => a.requestsPerSec - b.requestsPerSec);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/**
 * serve-log: for each object, `rounds` wrk runs without a live log reader and as many with one,
 * in pairs on the same server; a row for each side with its median run.
 */
async function benchLiveLog(server: Started & { liveLog?: LiveLogReader }, objects: Record<string, number>, origin: string, opts: Options, children: Children, wrkCpu: string | undefined): Promise<Row[]> {
  const rows: Row[] = [];
  const reader = server.liveLog!;
  /** The server's threads before the first reader attached (the log thread starts with it). */
  let existing: Set<number> | undefined;
  for (const [path, size] of Object.entries(objects)) {
    const url = `${server.url}${path}`;
    await fetchOnce(url);
    const second = await fetchOnce(url);
    const header = cacheHeader(second.headers);
    if (second.status !== 200 || second.bytes !== size) {
      rows.push({ server: 'serve-log', object: path.slice(1), originDuringLoad: 0, cacheHeader: header, note: `warm-up answered ${second.status} with ${second.bytes} bytes (want 200, ${size})` });
      continue;
    }
    if (opts.warmupSec > 0) await runWrk({ url, connections: opts.connections, durationSec: opts.warmupSec, cpu: wrkCpu }, children);
    const before = (await originCounts(origin))[path] ?? 0;
    const without: WrkResult[] = [];
    const withReader: WrkResult[] = [];
    const cpu: Record<'no reader' | 'reader', number[]> = { 'no reader': [], reader: [] };
    const parts: Record<'no reader' | 'reader', Array<Record<CpuPart, number>>> = { 'no reader': [], reader: [] };
    // wrk, with the server's CPU time per request it answered (robust to what else the machine runs).
    const measured = async (into: WrkResult[], side: 'no reader' | 'reader'): Promise<void> => {
      const a = await reader.sample();
      existing ??= new Set(a.threads.keys());
      into.push(await runWrk({ url, connections: opts.connections, durationSec: opts.durationSec, cpu: wrkCpu, paceMs: opts.paceMs }, children));
      const b = await reader.sample();
      const requests = Math.max(1, b.requests - a.requests);
      cpu[side].push((b.cpuUs - a.cpuUs) / requests);
      parts[side].push(cpuParts(a, b, server.child.process.pid!, existing, requests));
    };
    const withTheReader = async (): Promise<void> => {
      await reader.attach();
      try {
        await measured(withReader, 'reader');
      } finally {
        await reader.detach();
      }
    };
    // Which side runs first alternates round to round (without, reader; reader, without; ...):
    // whatever favours a run for its place in a pair then favours each side as often.
    for (let r = 0; r < opts.rounds; r++) {
      if (r % 2 === 0) {
        await measured(without, 'no reader');
        await withTheReader();
      } else {
        await withTheReader();
        await measured(without, 'no reader');
      }
    }
    const originDuringLoad = ((await originCounts(origin))[path] ?? 0) - before;
    const middle = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) / 2)]!;
    for (const [variant, runs] of [['no reader', without], ['reader', withReader]] as const) {
      const row: Row = { server: 'serve-log', variant, object: path.slice(1), result: median(runs), originDuringLoad, cacheHeader: header, cpuUsPerRequest: middle(cpu[variant]) };
      if (variant === 'reader') {
        row.paired = {
          requestsPerSec: pairedChanges(without.map((x) => x.requestsPerSec), withReader.map((x) => x.requestsPerSec)),
          cpuUsPerRequest: pairedChanges(cpu['no reader'], cpu.reader),
          cpuPartsUs: Object.fromEntries(CPU_PARTS.map((part) => [part, pairedDifferences(parts['no reader'].map((x) => x[part]), parts.reader.map((x) => x[part]))])) as Record<CpuPart, number[]>,
        };
      }
      row.cpuParts = Object.fromEntries(CPU_PARTS.map((part) => [part, middle(parts[variant].map((x) => x[part]))])) as Record<CpuPart, number>;
      const errors = runs.reduce((n, x) => n + x.errors, 0);
      if (originDuringLoad > 1) row.note = `origin saw ${originDuringLoad} fetches during the load: not cache hits`;
      if (errors > 0) row.note = `${errors} errors or non-2xx responses`;
      rows.push(row);
    }
  }
  return rows;
}

/**
 * Each reader run's change, %, against the run without a reader of its round, which ran just
 * before or just after it: the machine drifts (other sessions, thermal, the kernel's caches) over
 * a run of many minutes, and the two runs of a round share most of it, where two medians taken
 * over the whole run do not.
 */
function pairedChanges(without: number[], withReader: number[]): number[] {
  return withReader.map((w, r) => (w / without[r]! - 1) * 100);
}

/** As `pairedChanges`, as differences (in the figures' own unit) rather than percentages. */
function pairedDifferences(without: number[], withReader: number[]): number[] {
  return withReader.map((w, r) => w - without[r]!);
}

/** The median of `xs` and the range of its middle half (quartiles), as `+1.2 % (−0.3 … +2.0)`. */
function medianAndSpread(xs: number[], unit = '%', digits = 1): string {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.round(q * (s.length - 1))]!;
  const sign = (x: number): string => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(digits)}`;
  return `${sign(at(0.5))} ${unit} (quartiles ${sign(at(0.25))} … ${sign(at(0.75))})`;
}

/** CPU time between two samples per request answered, µs, by part (CPU_PARTS). */
function cpuParts(a: CpuSample, b: CpuSample, pid: number, existing: Set<number>, requests: number): Record<CpuPart, number> {
  const out: Record<CpuPart, number> = { 'main thread': 0, 'log thread': 0, 'other threads': 0, 'reader process': (b.readerUs - a.readerUs) / requests };
  for (const [tid, us] of b.threads) {
    const part: CpuPart = tid === pid ? 'main thread' : existing.has(tid) ? 'other threads' : 'log thread';
    out[part] += (us - (a.threads.get(tid) ?? 0)) / requests;
  }
  return out;
}

async function benchServer(
  server: Started,
  objects: Record<string, number>,
  origin: string,
  opts: Options,
  children: Children,
  wrkCpu: string | undefined,
): Promise<Row[]> {
  const rows: Row[] = [];
  for (const [path, size] of Object.entries(objects)) {
    const url = `${server.url}${path}`;
    // Fill the cache, then check the object comes back whole from it.
    await fetchOnce(url);
    const second = await fetchOnce(url);
    const row: Row = { server: server.name as ServerName, object: path.slice(1), originDuringLoad: 0, cacheHeader: cacheHeader(second.headers) };
    if (second.status !== 200 || second.bytes !== size) {
      row.note = `warm-up answered ${second.status} with ${second.bytes} bytes (want 200, ${size})`;
      rows.push(row);
      continue;
    }
    if (opts.warmupSec > 0) await runWrk({ url, connections: opts.connections, durationSec: opts.warmupSec, cpu: wrkCpu }, children);
    const before = (await originCounts(origin))[path] ?? 0;
    row.result = await runWrk({ url, connections: opts.connections, durationSec: opts.durationSec, cpu: wrkCpu }, children);
    row.originDuringLoad = ((await originCounts(origin))[path] ?? 0) - before;
    if (row.originDuringLoad > 1) row.note = `origin saw ${row.originDuringLoad} fetches during the load: not cache hits`;
    if (row.result.errors > 0) row.note = `${row.result.errors} errors or non-2xx responses`;
    rows.push(row);
  }
  return rows;
}

function fmtMs(ms: number): string {
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`;
}

function printTable(rows: Row[]): void {
  const head = ['server', 'object', 'req/s', 'p50', 'p99', 'req/s vs varnish', 'p99 vs varnish', 'origin fetches in load', 'cache header'];
  const lines = rows.map((row) => {
    const base = rows.find((r) => r.server === 'varnish' && r.object === row.object)?.result;
    const r = row.result;
    const label = row.variant === undefined ? LABELS[row.server] : `${LABELS[row.server]} (${row.variant})`;
    if (r === undefined) return [label, row.object, '-', '-', '-', '-', '-', '-', row.cacheHeader];
    return [
      label,
      row.object,
      Math.round(r.requestsPerSec).toLocaleString('en-US'),
      fmtMs(r.p50Ms),
      fmtMs(r.p99Ms),
      base === undefined ? '-' : `${(r.requestsPerSec / base.requestsPerSec).toFixed(2)}×`,
      base === undefined ? '-' : `${(r.p99Ms / base.p99Ms).toFixed(2)}×`,
      `${row.originDuringLoad}${row.originDuringLoad <= 1 ? ' (hits)' : ' (NOT hits)'}`,
      row.cacheHeader,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const fmt = (cells: string[]): string => `| ${cells.map((c, i) => (i >= 2 && i <= 7 ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join(' | ')} |`;
  console.log(fmt(head));
  console.log(`|${widths.map((w, i) => (i >= 2 && i <= 7 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`);
  for (const line of lines) console.log(fmt(line));
  for (const row of rows) if (row.note !== undefined) console.log(`  ! ${LABELS[row.server]} ${row.object}: ${row.note}`);
}

/** What a live-log reader costs hits: `serve` with one attached against `serve` alone, same run. */
function printLiveLogCost(rows: Row[], rounds: number): void {
  for (const row of rows.filter((r) => r.server === 'serve-log' && r.variant === 'reader' && r.result !== undefined)) {
    const base = rows.find((r) => r.server === 'serve-log' && r.variant === 'no reader' && r.object === row.object)!;
    const change = (row.result!.requestsPerSec / base.result!.requestsPerSec - 1) * 100;
    const sign = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(1)} %`;
    const cpu = ((row.cpuUsPerRequest! / base.cpuUsPerRequest!) - 1) * 100;
    console.log(`live log reader attached, ${row.object}: ${sign(change)} req/s; server CPU per request ${base.cpuUsPerRequest!.toFixed(2)} → ${row.cpuUsPerRequest!.toFixed(2)} µs (${sign(cpu)}) (medians of ${rounds} runs each, same server)`);
    const part = (p: CpuPart): string => `${p} ${base.cpuParts![p].toFixed(2)} → ${row.cpuParts![p].toFixed(2)}`;
    console.log(`  CPU per request by thread, µs: ${CPU_PARTS.map(part).join('; ')}`);
    const p = row.paired!;
    console.log(`  paired within each round (${p.requestsPerSec.length} pairs, the first run of a pair alternating): req/s ${medianAndSpread(p.requestsPerSec)}; server CPU per request ${medianAndSpread(p.cpuUsPerRequest)}`);
    console.log(`  paired, CPU per request by thread: ${CPU_PARTS.map((part) => `${part} ${medianAndSpread(p.cpuPartsUs[part], 'µs', 2)}`).join('; ')}`);
  }
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const { children, dir, wrkPath, twoCpus, serverCpu, wrkCpu } = startHarness('tinyedge-bench-');

  // The origin shares CPU 1 with wrk: it is only busy during warm-up, never during a hit load.
  const origin = children.spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/proxy-origin.ts')], wrkCpu, ROOT);
  const hello = await new Promise<{ port: number; objects: Record<string, number> }>((resolve, reject) => {
    let buf = '';
    origin.process.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)) as { port: number; objects: Record<string, number> });
    });
    void origin.exited.then(() => reject(new Error(`origin exited:\n${origin.output()}`)));
  });
  const originUrl = `http://127.0.0.1:${hello.port}`;
  if (opts.objects !== undefined) {
    const unknown = opts.objects.filter((o) => hello.objects[`/${o}`] === undefined);
    if (unknown.length > 0) throw new Error(`--objects: the origin has no ${unknown.join(', ')} (it has ${Object.keys(hello.objects).map((p) => p.slice(1)).join(', ')})`);
    hello.objects = Object.fromEntries(opts.objects.map((o) => [`/${o}`, hello.objects[`/${o}`]!]));
  }

  const versions: string[] = [`node ${process.version}`, versionOf(wrkPath, '-v').replace(/ \[.*$/, '')];
  console.log(`Cache proxy benchmark: cache hits of ${Object.keys(hello.objects).join(' and ')} (Cache-Control: max-age=3600)`);
  console.log(`machine: ${machine()}`);
  console.log(
    serverCpu === undefined
      ? 'taskset unavailable: servers and wrk are NOT pinned'
      : `server processes are pinned to a single core (taskset -c ${serverCpu}, all their threads and children); wrk -t1 on taskset -c ${wrkCpu}${twoCpus ? '' : ' (only one CPU: shared!)'}`,
  );
  const load = loadavg()[0] ?? 0;
  if (load > 0.5) console.log(`warning: load average ${load.toFixed(2)} before the run; other processes compete for these CPUs, so numbers are noisy`);
  console.log(`load: wrk -t1 -c${opts.connections} -d${opts.durationSec}s --latency${opts.paceMs === undefined ? "" : `, each connection pausing ${opts.paceMs} ms between requests (serve-log)`}, after a ${opts.warmupSec}s wrk warm-up per object`);

  const rows: Row[] = [];
  const skipped: string[] = [];
  const originTotals: string[] = [];
  const reports: string[] = [];
  for (const name of opts.only) {
    let server: Started | { missing: string };
    const beforeAll = await originCounts(originUrl);
    try {
      if (name === 'tinyedge') server = await startTinyedge(children, ROOT, hello.port, serverCpu);
      else if (name === 'serve' || name === 'serve-log') server = await startTinyedgeServe(children, ROOT, dir, hello.port, serverCpu, name === 'serve-log' ? (wrkCpu ?? '') : undefined);
      else {
        const tool = name === 'varnish' ? ensureTool('varnishd', 'varnish') : ensureTool('nginx', 'nginx');
        if ('missing' in tool) server = tool;
        else {
          versions.push(name === 'varnish' ? versionOf(tool.path, '-V') : versionOf(tool.path, '-v'));
          const start = name === 'varnish' ? startVarnish : startNginx;
          server = await start(children, tool.path, dir, hello.port, serverCpu);
        }
      }
    } catch (err) {
      server = { missing: `failed to start: ${err instanceof Error ? err.message : String(err)}` };
    }
    if ('missing' in server) {
      skipped.push(`${name}: ${server.missing}`);
      continue;
    }
    console.error(`benchmarking ${LABELS[name]} at ${server.url} ...`);
    try {
      const run = name === 'serve-log' ? benchLiveLog : benchServer;
      rows.push(...(await run(server, hello.objects, originUrl, opts, children, wrkCpu)));
      if (server.report !== undefined) reports.push(`${LABELS[name]}: ${await server.report()}`);
    } finally {
      await children.stop(server.child);
    }
    const afterAll = await originCounts(originUrl);
    originTotals.push(`${LABELS[name]}: ${Object.keys(hello.objects).map((p) => `${p} ${(afterAll[p] ?? 0) - (beforeAll[p] ?? 0)}`).join(', ')}`);
  }

  console.log(`versions: ${versions.join(', ')}`);
  console.log('');
  if (rows.length > 0) printTable(rows);
  printLiveLogCost(rows, opts.rounds);
  console.log('');
  console.log(`origin fetches per server, warm-up and load together (1 per object means every other request was a hit): ${originTotals.join('; ') || '-'}`);
  for (const line of reports) console.log(line);
  for (const line of skipped) console.log(`skipped ${line}`);
  return rows.some((r) => r.note !== undefined) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
