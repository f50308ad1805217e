// Edge compute on a hello-world: tinyedge running the SDK hello program in its tiny VM (every
// request enters the VM, nothing is cached) against Cloudflare's workerd running a hello Worker
// and a bare node:http hello, each pinned to CPU 0 and loaded by wrk on CPU 1. Checks each answers
// exactly "hello, world\n" and prints req/s, p50, p99 and tinyedge/workerd ratios against issue
// 6's targets, and tinyedge against its one-core ceiling (issue 12): 1 / (the hello's in-process
// call + reset, measured on CPU 0 in this run + node:http's time per request). With `serve`, also
// the hello as a persistent program, one request per VM entry and in batches (issue 13), each
// request proven to reach the program by the count it keeps, and VM exits per request for every
// tinyedge row. Usage:
//   node --import tsx bench/workerd.ts [--duration 10] [--connections 50] [--warmup 2]
//        [--only tinyedge,persistent,batched,workerd,node] [--tinyedge-mode auto|dev|serve]
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildExample } from '../guest/build.ts';
import { Children, freePort, startHarness, versionOf } from './proxy-servers.ts';
import type { Started } from './proxy-servers.ts';
import { contention, sampleCpu, serverUsPerResponse } from './workerd-cpu.ts';
import type { Contention } from './workerd-cpu.ts';
import { checkHello, detectTinyedgeMode, ensureWorkerd, REQUEST_HEADERS, startNodeHello, startTinyedge, startWorkerd, tenantCounters, tinyedgeLaunch } from './workerd-servers.ts';
import type { Checked, TenantCounters, TinyedgeLaunch, TinyedgeMode, Workerd } from './workerd-servers.ts';
import { exitsPerRequest, judgeCount, PERSISTENT_VARIANTS, persistentLaunch, programCount, TARGET_PERSISTENT_P99_VS_P50, TARGET_PERSISTENT_P99_VS_WORKERD, TARGET_PERSISTENT_RPS } from './workerd-persistent.ts';
import { runWrkWithHeaders } from './wrk.ts';
import type { WrkResult } from './wrk.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const WORKERD_CACHE = join(ROOT, 'build/bench/workerd');
const SERVERS = ['tinyedge', 'persistent', 'batched', 'workerd', 'node'] as const;
type ServerName = (typeof SERVERS)[number];
/** Issue 6: tinyedge should serve at least twice workerd's req/s with a tenth of its p99. */
const TARGET_RPS_RATIO = 2;
const TARGET_P99_RATIO = 0.1;
/** Issue 12: serve reaches 0.9 × its one-core ceiling, with p99 ≤ 0.2 × workerd's and ≤ 3 × its own p50. */
const TARGET_CEILING_RATIO = 0.9;
const TARGET_P99_VS_WORKERD = 0.2;
const TARGET_P99_VS_OWN_P50 = 3;
/** Sequential requests checked after each load (and the sample for the VM timing). */
const CHECKS_AFTER = 20;
/** Above this share of the server's core taken by other processes, a row is flagged as noisy. */
const NOISY_PCT = 5;

interface Options {
  durationSec: number;
  connections: number;
  warmupSec: number;
  only: ServerName[];
  tinyedgeMode: TinyedgeMode | 'auto';
}

const USAGE =
  'usage: node --import tsx bench/workerd.ts [--duration SEC] [--connections N] [--warmup SEC] [--only tinyedge,persistent,batched,workerd,node] [--tinyedge-mode auto|dev|serve]';

function parseArgs(argv: string[]): Options {
  const opts: Options = { durationSec: 10, connections: 50, warmupSec: 2, only: [...SERVERS], tinyedgeMode: 'auto' };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const number = (min: number): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer ≥ ${min}, got '${value}'`);
      i++;
      return n;
    };
    if (flag === '--duration') opts.durationSec = number(1);
    else if (flag === '--connections') opts.connections = number(1);
    else if (flag === '--warmup') opts.warmupSec = number(0);
    else if (flag === '--only') {
      const names = (value ?? '').split(',').filter((s) => s !== '');
      const bad = names.filter((n) => !(SERVERS as readonly string[]).includes(n));
      if (names.length === 0 || bad.length > 0) throw new Error(`--only takes a list of ${SERVERS.join(',')}, got '${value}'`);
      opts.only = [...new Set(names as ServerName[])];
      i++;
    } else if (flag === '--tinyedge-mode') {
      if (value !== 'auto' && value !== 'dev' && value !== 'serve') throw new Error(`--tinyedge-mode takes auto, dev or serve, got '${value}'`);
      opts.tinyedgeMode = value;
      i++;
    } else if (flag === '--help' || flag === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option '${flag}' (try --help)`);
  }
  return opts;
}

interface Row {
  server: ServerName;
  label: string;
  result?: WrkResult;
  /** Why this row is not a valid measurement; any makes the script exit 1. */
  problems: string[];
  /** Median VM call and reset per request from Server-Timing, when the server reports them. */
  vm?: { callUs: number; resetUs: number };
  /** Other processes' and the hypervisor's share of the server's core during the measured run. */
  cpu?: Contention;
  /** The server's CPU time per response during the measured run, µs. */
  serverUs?: number;
  /** `serve` only: what the tenant's counters say about the measured run. */
  proof?: string;
  /** `serve` only: VM exits per request over the measured run (the timer's among them), and batches. */
  exits?: { all: number; timer: number; batches: number };
}

function machine(): string {
  let model = cpus()[0]?.model ?? 'unknown CPU';
  let nested = false;
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^model name\s*:\s*(.+)$/m.exec(info);
    if (m !== null) model = (m[1] as string).trim();
    nested = /^flags\s*:.*\bhypervisor\b/m.test(info);
  } catch {
    // not Linux: os.cpus() is good enough
  }
  const kvm = nested ? '; this machine is itself a VM (CPU flag "hypervisor"), so /dev/kvm is nested and every VM exit costs tens of µs, not ~1 µs' : '';
  return `${model}, ${cpus().length} cores${kvm}`;
}

function fmtMs(ms: number): string {
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** wrk's own counts of bad answers, separately, so the failure message says which. */
function wrkFailures(raw: string): string[] {
  const out: string[] = [];
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(raw);
  if (non2xx !== null && Number(non2xx[1]) > 0) out.push(`${non2xx[1]} non-2xx/3xx responses`);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(raw);
  if (socket !== null && socket.slice(1).some((n) => Number(n) > 0)) out.push(`socket errors: ${socket[0].slice('Socket errors: '.length)}`);
  return out;
}

const WRK_HEADERS = Object.entries(REQUEST_HEADERS).map(([name, value]) => `${name}: ${value}`);

/** Responses wrk completed, from its "N requests in Xs" line. */
function wrkRequests(raw: string): number {
  const m = /(\d+) requests in /.exec(raw);
  return m === null ? NaN : Number(m[1]);
}

/**
 * Compares the tenant's counters around the measured run: every response wrk got must have come
 * from a VM call, none from the cache.
 */
function judgeCounters(before: TenantCounters, after: TenantCounters, responses: number, row: Row): void {
  row.exits = exitsPerRequest(before, after);
  const calls = after.vmCalls - before.vmCalls;
  const hits = after.hits - before.hits;
  row.proof = `${calls} VM calls and ${hits} cache hits for ${responses} responses (${after.passes - before.passes} passes)`;
  if (hits > 0) row.problems.push(`the cache served ${hits} hits during the load: not compute`);
  if (!(calls >= responses)) row.problems.push(`only ${calls} VM calls for ${responses} responses: some requests did not enter the VM`);
  if (after.status5xx > before.status5xx) row.problems.push(`the server counted ${after.status5xx - before.status5xx} 5xx answers`);
}

async function benchServer(server: Started, launch: TinyedgeLaunch | undefined, row: Row, opts: Options, children: Children, cpus: { server?: string; wrk?: string }): Promise<void> {
  const wrkCpu = cpus.wrk;
  const url = `${server.url}${launch?.path ?? '/'}`;
  // Before the load: a few answers must be right, or the numbers would measure an error page.
  for (let i = 0; i < 3; i++) {
    const c = await checkHello(url);
    if (c.problem !== undefined) {
      row.problems.push(`before the load: ${c.problem}`);
      return;
    }
  }
  if (opts.warmupSec > 0) await runWrkWithHeaders({ url, connections: opts.connections, durationSec: opts.warmupSec, cpu: wrkCpu }, WRK_HEADERS, children);
  const counters = launch?.stats === undefined ? undefined : await tenantCounters(launch.stats);
  const counted = row.server === 'persistent' || row.server === 'batched' ? await programCount(server.url) : undefined;
  const before = sampleCpu(cpus.server, server.child.process.pid);
  row.result = await runWrkWithHeaders({ url, connections: opts.connections, durationSec: opts.durationSec, cpu: wrkCpu }, WRK_HEADERS, children);
  const afterCpu = sampleCpu(cpus.server, server.child.process.pid);
  row.cpu = contention(before, afterCpu);
  row.serverUs = serverUsPerResponse(before, afterCpu, wrkRequests(row.result.raw));
  if (counted !== undefined) {
    const judged = judgeCount(counted, await programCount(server.url), wrkRequests(row.result.raw), opts.connections);
    row.proof = judged.proof;
    if (judged.problem !== undefined) row.problems.push(judged.problem);
  }
  if (launch?.stats !== undefined && counters !== undefined) {
    const countProof = row.proof;
    judgeCounters(counters, await tenantCounters(launch.stats), wrkRequests(row.result.raw), row);
    if (countProof !== undefined) row.proof = `${countProof}; ${row.proof ?? ''}`;
  }
  row.problems.push(...wrkFailures(row.result.raw));
  if (row.result.errors > 0 && row.problems.length === 0) row.problems.push(`${row.result.errors} errors in wrk's report`);
  // After the load: still right (a server that broke under load would otherwise look fast).
  const checks: Checked[] = [];
  for (let i = 0; i < CHECKS_AFTER; i++) checks.push(await checkHello(url));
  const bad = checks.find((c) => c.problem !== undefined);
  if (bad?.problem !== undefined) row.problems.push(`after the load: ${bad.problem}`);
  const calls = checks.flatMap((c) => (c.callUs === undefined ? [] : [c.callUs]));
  const resets = checks.flatMap((c) => (c.resetUs === undefined ? [] : [c.resetUs]));
  if (calls.length > 0 && resets.length > 0) row.vm = { callUs: median(calls), resetUs: median(resets) };
}

function printTable(rows: Row[]): void {
  const base = rows.find((r) => r.server === 'workerd')?.result;
  const head = ['server', 'req/s', 'p50', 'p99', 'req/s vs workerd', 'p99 vs workerd', 'exits/req', 'server CPU µs/resp', 'CPU 0 taken by others'];
  const lines = rows.map((row) => {
    const r = row.result;
    if (r === undefined) return [row.label, '-', '-', '-', '-', '-', '-', '-', '-'];
    const vsBase = row.server !== 'workerd' && base !== undefined;
    return [
      row.label,
      Math.round(r.requestsPerSec).toLocaleString('en-US'),
      fmtMs(r.p50Ms),
      fmtMs(r.p99Ms),
      vsBase ? `${(r.requestsPerSec / base.requestsPerSec).toFixed(2)}×` : '-',
      vsBase ? `${(r.p99Ms / base.p99Ms).toFixed(3)}×` : '-',
      row.exits === undefined ? '-' : `${row.exits.all.toFixed(2)} (${row.exits.timer.toFixed(2)} timer)`,
      row.serverUs === undefined ? '?' : row.serverUs.toFixed(0),
      row.cpu === undefined ? '?' : `${row.cpu.othersPct.toFixed(1)} %${row.cpu.stealPct >= 0.5 ? ` (+${row.cpu.stealPct.toFixed(1)} % steal)` : ''}`,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const fmt = (cells: string[]): string => `| ${cells.map((c, i) => (i >= 1 ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join(' | ')} |`;
  console.log(fmt(head));
  console.log(`|${widths.map((w, i) => (i >= 1 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`);
  for (const line of lines) console.log(fmt(line));
  const noisy = rows.filter((r) => r.cpu !== undefined && r.cpu.othersPct + r.cpu.stealPct > NOISY_PCT);
  if (noisy.length > 0) {
    console.log(`warning: other processes took more than ${NOISY_PCT} % of CPU 0 while ${noisy.map((r) => r.label).join(' and ')} ran: those numbers measure a busy machine; rerun when it is quiet`);
  }
}

function printTargets(rows: Row[]): void {
  const te = rows.find((r) => r.server === 'tinyedge');
  const wd = rows.find((r) => r.server === 'workerd');
  if (te?.result === undefined || wd?.result === undefined || te.problems.length > 0 || wd.problems.length > 0) {
    console.log('targets: not judged (needs a clean tinyedge row and a clean workerd row)');
    return;
  }
  const rps = te.result.requestsPerSec / wd.result.requestsPerSec;
  const p99 = te.result.p99Ms / wd.result.p99Ms;
  const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  console.log(`target req/s ≥ ${TARGET_RPS_RATIO}× workerd: ${rps.toFixed(2)}× → ${verdict(rps >= TARGET_RPS_RATIO)}`);
  console.log(`target p99 ≤ ${TARGET_P99_RATIO}× workerd (1/10): ${p99.toFixed(3)}× → ${verdict(p99 <= TARGET_P99_RATIO)}`);
}

/** Issue 13's targets for each clean persistent row against a clean workerd row of this run. */
function printPersistentTargets(rows: Row[]): void {
  const wd = rows.find((r) => r.server === 'workerd');
  for (const row of rows.filter((r) => r.server === 'persistent' || r.server === 'batched')) {
    const te = row.result;
    if (te === undefined || wd?.result === undefined || row.problems.length > 0 || wd.problems.length > 0) {
      console.log(`${row.label}: targets not judged (needs a clean row and a clean workerd row)`);
      continue;
    }
    const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
    const rps = te.requestsPerSec / wd.result.requestsPerSec;
    const p99 = te.p99Ms / wd.result.p99Ms;
    const own = te.p99Ms / te.p50Ms;
    console.log(`${row.label}: req/s ≥ ${TARGET_PERSISTENT_RPS}× workerd: ${rps.toFixed(2)}× → ${verdict(rps >= TARGET_PERSISTENT_RPS)}; p99 ≤ ${TARGET_PERSISTENT_P99_VS_WORKERD}× workerd's: ${p99.toFixed(2)}× → ${verdict(p99 <= TARGET_PERSISTENT_P99_VS_WORKERD)}; p99 ≤ ${TARGET_PERSISTENT_P99_VS_P50}× its p50: ${own.toFixed(2)}× → ${verdict(own <= TARGET_PERSISTENT_P99_VS_P50)}`);
  }
  // The machine's own stalls (a few a second, 3–8 ms, whatever the server: docs/benchmarks.md)
  // weigh on a p99 that is a few p50s: node:http's ratio in the same run shows how much.
  const node = rows.find((r) => r.server === 'node');
  if (node?.result !== undefined && node.problems.length === 0 && rows.some((r) => r.server === 'persistent' || r.server === 'batched')) {
    console.log(`context: node:http's hello in this run had its p99 ${(node.result.p99Ms / node.result.p50Ms).toFixed(2)}× its p50 (the machine's stalls count in that ratio for every server)`);
  }
}

/** The hello's in-process call + reset, p50 in µs, measured by bench/call-reset.ts pinned to `cpu`. */
async function callResetUs(children: Children, cpu: string | undefined): Promise<number | undefined> {
  const child = children.spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/call-reset.ts')], cpu, ROOT);
  if ((await child.exited) !== 0) return undefined;
  const line = child.output().trim().split('\n').pop() ?? '';
  try {
    return (JSON.parse(line) as { p50Us: number }).p50Us;
  } catch {
    return undefined;
  }
}

/** node:http's hello at about serve's request rate: its CPU per response there, and the rate it ran at. */
interface PacedNode {
  requestsPerSec: number;
  serverUs: number;
}

/**
 * node:http's hello again, each connection pausing between requests so that it answers about as
 * many a second as `tinyedge serve` did: what a request costs node:http at that rate (at full
 * load many requests share each wake-up and each of wrk's, so a request costs it less). Context
 * for the ceiling, which takes node:http's full-load figure.
 */
async function pacedNode(rows: Row[], opts: Options, children: Children, dir: string, cpus: { server?: string; wrk?: string }): Promise<PacedNode | undefined> {
  const te = rows.find((r) => r.server === 'tinyedge')?.result;
  const node = rows.find((r) => r.server === 'node');
  if (te === undefined || node?.result === undefined) return undefined;
  // Offered load ≈ connections / (pause + latency); node:http's latency at that load is ~0.1 ms.
  const paceMs = Math.max(1, Math.round((opts.connections / te.requestsPerSec) * 1000 - 0.1));
  const server = await startNodeHello(children, dir, cpus.server);
  try {
    const url = `${server.url}/`;
    if (opts.warmupSec > 0) await runWrkWithHeaders({ url, connections: opts.connections, durationSec: opts.warmupSec, cpu: cpus.wrk, paceMs }, WRK_HEADERS, children);
    const before = sampleCpu(cpus.server, server.child.process.pid);
    const result = await runWrkWithHeaders({ url, connections: opts.connections, durationSec: opts.durationSec, cpu: cpus.wrk, paceMs }, WRK_HEADERS, children);
    const serverUs = serverUsPerResponse(before, sampleCpu(cpus.server, server.child.process.pid), wrkRequests(result.raw));
    return serverUs === undefined || result.errors > 0 ? undefined : { requestsPerSec: result.requestsPerSec, serverUs };
  } finally {
    await children.stop(server.child);
  }
}

/**
 * Issue 12's one-core targets for serve: its ceiling, and its tail against workerd's and its own
 * p50. The ceiling's call + reset is the mean of the p50s measured just before and just after the
 * serve row (`beside`). `paced`: node:http at serve's rate, printed beside the ceiling as context.
 */
function printCeiling(rows: Row[], beside: ReadonlyArray<number | undefined>, paced: PacedNode | undefined): void {
  const te = rows.find((r) => r.server === 'tinyedge')?.result;
  const nodeRow = rows.find((r) => r.server === 'node');
  const node = nodeRow?.result;
  const wd = rows.find((r) => r.server === 'workerd')?.result;
  const measured = beside.filter((us): us is number => us !== undefined);
  if (te === undefined || node === undefined || measured.length !== 2) {
    console.log('one-core ceiling: not judged (needs the tinyedge and node rows and the in-process measurements before and after the tinyedge row)');
    return;
  }
  const callUs = (measured[0]! + measured[1]!) / 2;
  const nodeUs = 1e6 / node.requestsPerSec;
  const ceiling = 1e6 / (callUs + nodeUs);
  const ratio = te.requestsPerSec / ceiling;
  const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  const parts = `${measured[0]!.toFixed(0)} µs before the serve row, ${measured[1]!.toFixed(0)} after`;
  console.log(`one-core ceiling: 1 / (call + reset ${callUs.toFixed(0)} µs in-process on the server's CPU (${parts}) + node:http ${nodeUs.toFixed(0)} µs per request) = ${Math.round(ceiling).toLocaleString('en-US')} req/s`);
  console.log(`target serve ≥ ${TARGET_CEILING_RATIO}× the ceiling: ${ratio.toFixed(2)}× → ${verdict(ratio >= TARGET_CEILING_RATIO)}`);
  if (paced !== undefined) {
    const nodeFullUs = nodeRow?.serverUs;
    const likeForLike = te.requestsPerSec * (callUs + paced.serverUs) / 1e6;
    console.log(
      `context: node:http's hello paced to ${Math.round(paced.requestsPerSec).toLocaleString('en-US')} req/s (about serve's rate) costs ${paced.serverUs.toFixed(0)} µs of CPU a request, ` +
        `against ${nodeFullUs === undefined ? '?' : nodeFullUs.toFixed(0)} at full load; with that figure the ceiling would be ${Math.round(1e6 / (callUs + paced.serverUs)).toLocaleString('en-US')} req/s and serve ${likeForLike.toFixed(2)}× it (not the target's formula)`,
    );
  }
  if (wd !== undefined) console.log(`target serve p99 ≤ ${TARGET_P99_VS_WORKERD}× workerd's: ${(te.p99Ms / wd.p99Ms).toFixed(2)}× → ${verdict(te.p99Ms / wd.p99Ms <= TARGET_P99_VS_WORKERD)}`);
  console.log(`target serve p99 ≤ ${TARGET_P99_VS_OWN_P50}× its p50: ${(te.p99Ms / te.p50Ms).toFixed(2)}× → ${verdict(te.p99Ms / te.p50Ms <= TARGET_P99_VS_OWN_P50)}`);
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const { children, dir, wrkPath, twoCpus, serverCpu, wrkCpu } = startHarness('tinyedge-bench-workerd-');

  const versions: string[] = [`node ${process.version}`];
  let workerd: Workerd | undefined;
  if (opts.only.includes('workerd')) {
    workerd = ensureWorkerd(WORKERD_CACHE);
    versions.push(`workerd ${workerd.packageVersion} (npm; \`workerd --version\`: ${workerd.binaryVersion}; compatibilityDate ${workerd.compatibilityDate})`);
  }
  let mode: { mode: TinyedgeMode; why: string } | undefined;
  let program = '';
  let persistentProgram = '';
  const persistentRows = opts.only.some((n) => n === 'persistent' || n === 'batched');
  if (opts.only.includes('tinyedge') || persistentRows) {
    program = buildExample('hello');
    if (persistentRows) persistentProgram = buildExample('hello_persistent');
    mode = opts.tinyedgeMode === 'auto' ? detectTinyedgeMode(ROOT) : { mode: opts.tinyedgeMode, why: `--tinyedge-mode ${opts.tinyedgeMode}` };
  }
  versions.push(versionOf(wrkPath, '-v').replace(/ \[.*$/, ''));

  console.log('Edge compute benchmark: a hello-world answered by a program on every request (no cache)');
  console.log(`machine: ${machine()}`);
  console.log(
    serverCpu === undefined
      ? 'taskset unavailable: servers and wrk are NOT pinned'
      : `each server is pinned to a single core (taskset -c ${serverCpu}, all its threads and children); wrk -t1 on taskset -c ${wrkCpu}${twoCpus ? '' : ' (only one CPU: shared!)'}`,
  );
  console.log(`versions: ${versions.join(', ')}`);
  if (mode !== undefined) console.log(`tinyedge: ${mode.why}; program ${program.slice(ROOT.length + 1)}`);
  const load = loadavg()[0] ?? 0;
  if (load > 0.5) console.log(`warning: load average ${load.toFixed(2)} before the run; other processes compete for these CPUs, so numbers are noisy`);
  console.log(`load: wrk -t1 -c${opts.connections} -d${opts.durationSec}s --latency ${WRK_HEADERS.map((h) => `-H '${h}'`).join(' ')}, after a ${opts.warmupSec}s wrk warm-up per server`);

  const rows: Row[] = [];
  const callResetBeside: Array<number | undefined> = [];
  for (const name of opts.only) {
    let launch: TinyedgeLaunch | undefined;
    const variant = PERSISTENT_VARIANTS.find((v) => v.name === name);
    if ((name === 'tinyedge' || variant !== undefined) && mode !== undefined) {
      const port = await freePort();
      let adminPort = await freePort();
      // Both probes close their socket at once, so the system may hand out the same port twice.
      while (adminPort === port) adminPort = await freePort();
      launch = variant === undefined ? tinyedgeLaunch(mode.mode, ROOT, dir, program, port, adminPort) : persistentLaunch(variant, ROOT, dir, persistentProgram, port, adminPort);
    }
    const row: Row = { server: name, label: launch?.label ?? variant?.label ?? name, problems: [] };
    rows.push(row);
    if (variant !== undefined && mode?.mode !== 'serve') {
      row.problems.push('needs `tinyedge serve` (a persistent program is configured in its config file)');
      continue;
    }
    let server: Started;
    try {
      if (launch !== undefined) server = await startTinyedge(children, launch, ROOT, dir, serverCpu);
      else if (name === 'workerd' && workerd !== undefined) server = await startWorkerd(children, workerd, dir, serverCpu);
      else if (name === 'node') server = await startNodeHello(children, dir, serverCpu);
      else throw new Error('nothing to start');
    } catch (err) {
      row.problems.push(`failed to start: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    console.error(`benchmarking ${row.label} at ${server.url} ...`);
    // The ceiling's in-process call + reset, just before and just after the row it judges: on
    // these machines it drifts by tens of percent within minutes (docs/benchmarks.md).
    const ceilingRow = name === 'tinyedge' && mode?.mode === 'serve';
    if (ceilingRow) callResetBeside.push(await callResetUs(children, serverCpu));
    try {
      await benchServer(server, launch, row, opts, children, { server: serverCpu, wrk: wrkCpu });
    } finally {
      await children.stop(server.child);
    }
    if (ceilingRow) callResetBeside.push(await callResetUs(children, serverCpu));
  }

  console.log('');
  printTable(rows);
  console.log('');
  for (const row of rows) {
    if (row.proof !== undefined) console.log(`${row.label}: the tenant's stats for the measured run: ${row.proof}`);
    if (row.vm !== undefined) {
      console.log(`${row.label}: per request inside the server (Server-Timing, median of ${CHECKS_AFTER} after the load): VM call ${row.vm.callUs.toFixed(0)} µs, reset ${row.vm.resetUs.toFixed(0)} µs`);
    }
  }
  printTargets(rows);
  printPersistentTargets(rows);
  if (mode?.mode === 'serve') printCeiling(rows, callResetBeside, await pacedNode(rows, opts, children, dir, { server: serverCpu, wrk: wrkCpu }));
  const failed = rows.filter((r) => r.problems.length > 0);
  for (const row of failed) for (const p of row.problems) console.log(`  ! ${row.label}: ${p}`);
  if (failed.length > 0) console.log('FAILED: the rows marked ! are not valid measurements');
  return failed.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
