// What a persistent program's request costs inside the program pool, without the server around
// it: the persistent hello (`guest/examples/hello_persistent.c`) called one request at a time (a
// VM entry each, the baseline) and N at once (batches: one entry for many), in one run. For each:
// µs per request (median of the rounds) and the bytes of JavaScript objects made per request
// (V8's sampling heap profiler, objects collected or not: what the collector must then clear),
// the figure that says whether a change to the request's layout, the answer's decoding or the
// pool's bookkeeping made fewer objects. Run it pinned:
//   taskset -c 0 node --import tsx bench/batch-call.ts [--at-once 50] [--rounds 100]
import { readFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { buildExample } from '../guest/build.ts';
import { ProgramPool, type SandboxRequest } from '../src/sandbox/index.ts';
import { machineLine, printTable } from './lib.ts';

const { values } = parseArgs({ options: { 'at-once': { type: 'string', default: '50' }, rounds: { type: 'string', default: '100' } } });
const atOnce = Number(values['at-once']);
const rounds = Number(values.rounds);
if (!Number.isSafeInteger(atOnce) || atOnce < 2 || atOnce > 64 || !Number.isSafeInteger(rounds) || rounds < 5) {
  console.error('usage: bench/batch-call.ts [--at-once 2..64] [--rounds ≥ 5]');
  process.exit(2);
}

/** A request as the raw front hands a pass to the program: its host and two forwarded fields. */
const req: SandboxRequest = { method: 'GET', url: '/', headers: [['host', 'localhost'], ['user-agent', 'wrk'], ['x-forwarded-for', '127.0.0.1']], body: new Uint8Array(0) };
/** Requests per round: enough for a few batches a round at any `atOnce`. */
const PER_ROUND = 2000;

const pool = await ProgramPool.start();
await pool.load('bench/hello', readFileSync(buildExample('hello_persistent')), { mode: 'sdk', name: 'hello', lifecycle: 'persistent', concurrency: 1, maxBatch: 64, queueTimeoutMs: 60_000 });

/** One round: PER_ROUND requests, `width` of them at a time; µs per request. */
async function round(width: number): Promise<number> {
  const t = performance.now();
  for (let sent = 0; sent < PER_ROUND; sent += width) await Promise.all(Array.from({ length: width }, () => pool.call('bench/hello', req)));
  return ((performance.now() - t) * 1000) / PER_ROUND;
}

/** Bytes of objects made per request over `n` rounds, sampled every 512 bytes. */
async function bytesPerRequest(width: number, n: number): Promise<number> {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  for (let i = 0; i < n; i++) await round(width);
  const { profile } = await session.post('HeapProfiler.stopSampling');
  session.disconnect();
  interface Node { selfSize: number; children: Node[] }
  const total = (node: Node): number => node.selfSize + node.children.reduce((sum, c) => sum + total(c), 0);
  return total(profile.head as Node) / (n * PER_ROUND);
}

const median = (xs: number[]): number => xs.slice().sort((a, b) => a - b)[xs.length >> 1]!;
const rows: Array<Array<string | number>> = [];
for (const width of [1, atOnce]) {
  for (let i = 0; i < 5; i++) await round(width); // warm-up: JIT, the pool's batch bound
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) times.push(await round(width));
  const bytes = await bytesPerRequest(width, Math.max(5, rounds >> 3));
  rows.push([width === 1 ? 'one request at a time (baseline)' : `${width} at once (batches)`, median(times).toFixed(1), (bytes / 1024).toFixed(2)]);
}
const { batches } = pool.counters('bench/hello');
await pool.close();

console.log(`Persistent hello through the program pool, in-process (${machineLine()})`);
console.log(`${rounds} rounds of ${PER_ROUND} requests each way; ${batches} batches of more than one request in all`);
printTable(['requests', 'µs per request (median)', 'KB of objects per request'], rows);
