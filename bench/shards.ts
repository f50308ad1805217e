// What a second shard costs in CPU: the server's user + system time per response of `tinyedge
// serve` with `shards: 1` against `shards: 2`, for cache hits of a 100-byte object and for
// requests the hello program answers, in one run. The target (issue 12): two shards spend at most
// 1.15 × one shard's CPU time per response, for both. The server runs unpinned (both cores), as
// does wrk; rounds alternate the order of the two servers so a drift of the machine falls on both.
// It also checks from the tenant's stats that both shards served during each 2-shard run.
// `--only hits` (or `program`) measures one workload; with hits alone the server has no program,
// so that this runs on a host without KVM. Usage:
//   node --import tsx bench/shards.ts [--duration 10] [--warmup 2] [--rounds 5] [--connections 50] [--only hits|program]
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildExample } from '../guest/build.ts';
import { BENCH_DIR, machineLine, median, printTable } from './lib.ts';
import { freePort, startHarness, waitReady } from './proxy-servers.ts';
import type { Child } from './proxy-servers.ts';
import { runWrkWithHeaders } from './wrk.ts';
import type { WrkResult } from './wrk.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
    only: { type: 'string' },
  },
});
const durationSec = Number(values.duration);
const warmupSec = Number(values.warmup);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const TARGET_CPU_RATIO = 1.15;
const ROOT = join(BENCH_DIR, '..');
const TOKEN = 'bench-shards-token-0123456789';
/** Clock ticks per second of /proc/<pid>/stat's utime and stime. */
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

interface Workload {
  /** What `--only` calls it. */
  readonly key: 'hits' | 'program';
  readonly name: string;
  readonly path: string;
  /** Request headers: the program's requests carry `no-store`, so the cache passes every one to it. */
  readonly headers: readonly string[];
  /** Which counter of the tenant's stats must have moved once per response. */
  readonly counter: 'hits' | 'vmCalls';
}
const WORKLOADS: readonly Workload[] = [
  { key: 'hits', name: 'cache hit, 100 B', path: '/obj', headers: [], counter: 'hits' },
  { key: 'program', name: 'hello program', path: '/hello', headers: ['Cache-Control: no-store'], counter: 'vmCalls' },
].filter((w) => values.only === undefined || w.key === values.only) as Workload[];
if (WORKLOADS.length === 0) {
  console.error(`--only: hits or program, not ${values.only}`);
  process.exit(2);
}
const withProgram = WORKLOADS.some((w) => w.key === 'program');
const SHARDS = [1, 2] as const;

/** One measured run of one workload against one server. */
interface Sample {
  readonly wrk: WrkResult;
  readonly responses: number;
  readonly cpuUsPerResponse: number;
  /** Requests each shard counted during the run. */
  readonly perShard: number[];
}

/** The tenant's stats this benchmark reads. */
interface Stats {
  readonly hits: number;
  readonly vmCalls: number;
  readonly shards: number[];
}

const harness = startHarness('tinyedge-shards-');
const { children, dir } = harness;
const hello = withProgram ? buildExample('hello') : undefined;

// The origin of the cached object: 100 B, fresh for 10 minutes, so every measured request is a hit.
const origin = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600', 'content-length': 100 });
  res.end('x'.repeat(100));
});
await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;

/** User + system time of every thread of process `pid` so far, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name is in parentheses and may hold spaces: count fields after the last ")".
  // utime and stime are fields 14 and 15 of the line, the 12th and 13th after ") ".
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Responses wrk completed, from its "N requests in Xs" line. */
function wrkResponses(raw: string): number {
  const m = /(\d+) requests in /.exec(raw);
  if (m === null) throw new Error(`wrk: no request count in:\n${raw}`);
  return Number(m[1]);
}

async function readStats(adminPort: number): Promise<Stats> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/v1/tenants/bench/stats`, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (res.status !== 200) throw new Error(`tenant stats answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  const body = (await res.json()) as { counters: { vmCalls: number }; cache: { hits: number }; shards: number[] };
  return { hits: body.cache.hits, vmCalls: body.counters.vmCalls, shards: body.shards };
}

interface Server {
  readonly child: Child;
  readonly url: string;
  readonly adminPort: number;
}

async function startServe(shards: number): Promise<Server> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const config = join(dir, `shards-${shards}.yaml`);
  // queueTimeout 1s: 50 connections share `concurrency` instances per shard, and this measures
  // CPU time, not load shedding.
  writeFileSync(config, `server:
  listen: 127.0.0.1:${port}
  admin: 127.0.0.1:${adminPort}
  shards: ${shards}
tenants:
  - name: bench
    hosts: [127.0.0.1]
    token: ${TOKEN}
    origins: [{ name: default, url: "${originUrl}" }]
${hello === undefined ? '' : `    programs:
      - name: hello
        file: ${JSON.stringify(hello)}
        mode: sdk
        roles: [generate]
        routes: [{ prefix: /hello, methods: [GET, HEAD] }]
        queueTimeout: 1s
`}`);
  const child = children.spawn(process.execPath, [join(ROOT, 'bin/tinyedge.js'), 'serve', '--config', config], undefined, ROOT);
  const url = `http://127.0.0.1:${port}`;
  // no-store: the probe must not put the object in the cache of the shard that answers it.
  await waitReady(`${url}${hello === undefined ? '/obj' : '/hello'}`, child, 60_000, { 'cache-control': 'no-store' });
  return { child, url, adminPort };
}

/** Warms `workload` up (each shard's cache gets the object), then measures it. */
async function measure(server: Server, workload: Workload): Promise<Sample> {
  const url = `${server.url}${workload.path}`;
  const pid = server.child.process.pid;
  if (pid === undefined) throw new Error('the server has no pid');
  if (warmupSec > 0) await runWrkWithHeaders({ url, connections, durationSec: warmupSec }, workload.headers, children);
  const before = await readStats(server.adminPort);
  const cpuBefore = cpuSeconds(pid);
  const wrk = await runWrkWithHeaders({ url, connections, durationSec }, workload.headers, children);
  const cpu = cpuSeconds(pid) - cpuBefore;
  const after = await readStats(server.adminPort);
  const responses = wrkResponses(wrk.raw);
  const problems: string[] = [];
  if (wrk.errors > 0) problems.push(`${wrk.errors} errors in wrk's report`);
  const counted = after[workload.counter] - before[workload.counter];
  if (counted < responses) problems.push(`${counted} ${workload.counter} in the tenant's stats for ${responses} responses`);
  if (problems.length > 0) throw new Error(`${workload.name}: ${problems.join('; ')}`);
  const perShard = after.shards.map((n, i) => n - (before.shards[i] ?? 0));
  return { wrk, responses, cpuUsPerResponse: (cpu * 1e6) / responses, perShard };
}

/** Each shard's share of the requests of a run, in %, e.g. "52/48". */
function shares(sample: Sample): string {
  const total = sample.perShard.reduce((sum, n) => sum + n, 0);
  return sample.perShard.map((n) => ((100 * n) / total).toFixed(0)).join('/');
}

/** Samples by workload and shard count, in round order. */
const samples = new Map<string, Sample[]>();
const key = (workload: Workload, shards: number): string => `${workload.name}/${shards}`;
for (let round = 0; round < rounds; round++) {
  // Alternate which server goes first, so a drift of the machine during a round falls on both.
  for (const shards of round % 2 === 0 ? SHARDS : [...SHARDS].reverse()) {
    const server = await startServe(shards);
    for (const workload of WORKLOADS) {
      const sample = await measure(server, workload);
      samples.set(key(workload, shards), [...(samples.get(key(workload, shards)) ?? []), sample]);
      console.error(`round ${round + 1}/${rounds}, shards ${shards}, ${workload.name}: ${sample.wrk.requestsPerSec.toFixed(0)} req/s, ${sample.cpuUsPerResponse.toFixed(1)} µs CPU per response, per shard ${shares(sample)} %`);
    }
    await children.stop(server.child);
  }
}
origin.close();

// Both shards must have served during every 2-shard run, or "2 shards" measured one.
const idle = WORKLOADS.filter((w) => (samples.get(key(w, 2)) ?? []).some((s) => s.perShard.length !== 2 || s.perShard.some((n) => n === 0)));
const rows: Array<Array<string | number>> = [];
for (const workload of WORKLOADS) {
  const one = samples.get(key(workload, 1)) ?? [];
  for (const shards of SHARDS) {
    const runs = samples.get(key(workload, shards)) ?? [];
    const cpu = median(runs.map((s) => s.cpuUsPerResponse));
    const ratio = cpu / median(one.map((s) => s.cpuUsPerResponse));
    // The same ratio round by round: the two servers of a round ran minutes apart at most.
    const perRound = runs.map((s, i) => s.cpuUsPerResponse / (one[i]?.cpuUsPerResponse ?? NaN));
    rows.push([
      workload.name,
      String(shards),
      median(runs.map((s) => s.wrk.requestsPerSec)),
      `${median(runs.map((s) => s.wrk.p50Ms)).toFixed(2)} ms`,
      `${median(runs.map((s) => s.wrk.p99Ms)).toFixed(2)} ms`,
      cpu,
      shards === 1 ? '(baseline)' : `${ratio.toFixed(2)}× ${ratio <= TARGET_CPU_RATIO ? 'yes' : 'NO'}`,
      shards === 1 ? '-' : perRound.map((r) => r.toFixed(2)).join(', '),
      runs.map(shares).join(', '),
    ]);
  }
}
console.log(`shards — ${machineLine()}; tinyedge serve unpinned, wrk -t1 -c${connections} unpinned, ${durationSec} s after ${warmupSec} s of warm-up; medians of ${rounds} rounds; CPU = the server's user + system time / responses`);
printTable(['workload', 'shards', 'req/s', 'p50', 'p99', 'CPU µs/resp', `vs 1 shard (≤ ${TARGET_CPU_RATIO}×)`, 'each round', '% per shard, each round'], rows);
if (idle.length > 0) {
  console.log(`NOT VALID: a shard served nothing during a 2-shard run of ${idle.map((w) => w.name).join(', ')}`);
  process.exit(1);
}
console.log("both shards served during every 2-shard run (the tenant stats' `shards`, counted around each measured run)");
process.exit(0);
