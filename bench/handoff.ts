// What a guest call costs through the program pool (on this thread, in slices, reset after the
// answer) beside the same request on a bare instance, and what handing it to another thread and
// back would add (a MessagePort echo, an Atomics round trip: the hop the pool no longer makes),
// all in one run (µs).
//   node --import tsx bench/handoff.ts [-n 3000]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { Kvm } from '../src/kvm/kvm.ts';
import { Program } from '../src/sandbox/program.ts';
import type { SandboxRequest } from '../src/sandbox/types.ts';
import { ProgramPool } from '../src/sandbox/program-pool.ts';
import { buildExample } from '../guest/build.ts';
import { machineLine, percentile, printTable } from './lib.ts';

const { values } = parseArgs({ options: { n: { type: 'string', short: 'n', default: '3000' } } });
const n = Number(values.n);
const elf = readFileSync(buildExample('hello'));
const req: SandboxRequest = { method: 'GET', url: '/', headers: [['Host', 'localhost']], body: new Uint8Array(0) };

async function timeEach(f: () => unknown): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n / 10; i++) await f();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await f();
    out.push((performance.now() - t) * 1000);
  }
  return out.sort((a, b) => a - b);
}

const kvm = new Kvm();
const program = new Program(kvm, elf, { mode: 'sdk', name: 'hello' });
const inst = program.instance();
const inProcess = await timeEach(() => inst.handle(req));
inst.close();
program.close();

const echo = new Worker("require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m));", { eval: true });
const echoRtt = await timeEach(() => new Promise((r) => { echo.once('message', r); echo.postMessage({ type: 'call', req }); }));
await echo.terminate();

// The alternative channel: a shared cell and Atomics. The worker sleeps in Atomics.wait (a
// futex); the HTTP thread, which must not block, waits with Atomics.waitAsync.
const cell = new Int32Array(new SharedArrayBuffer(8));
const atomicsWorker = new Worker(`
  const { workerData } = require('node:worker_threads');
  const cell = workerData;
  for (;;) {
    Atomics.wait(cell, 0, 0);
    if (Atomics.load(cell, 0) === 2) break;
    Atomics.store(cell, 0, 0);
    Atomics.store(cell, 1, 1);
    Atomics.notify(cell, 1);
  }`, { eval: true, workerData: cell });
const atomicsRtt = await timeEach(async () => {
  Atomics.store(cell, 1, 0);
  Atomics.store(cell, 0, 1);
  Atomics.notify(cell, 0);
  const w = Atomics.waitAsync(cell, 1, 0);
  if (w.async) await w.value;
});
Atomics.store(cell, 0, 2);
Atomics.notify(cell, 0);
await atomicsWorker.terminate();

const pool = await ProgramPool.start();
await pool.load('bench/hello', elf, { mode: 'sdk', name: 'hello', concurrency: 1, queueTimeoutMs: 1000 });
// Sequential calls on one instance: each waits for the previous one's reset, as a lone client would.
const viaPool = await timeEach(() => pool.call('bench/hello', req));
await pool.close();
kvm.close();

console.log(`handoff benchmark — ${machineLine()}; ${n} sequential requests, hello program`);
const row = (name: string, xs: number[]): Array<string | number> => [name, percentile(xs, 50), percentile(xs, 90), percentile(xs, 99)];
printTable(['path', 'p50 µs', 'p90 µs', 'p99 µs'], [
  row('in-process instance.handle (no handoff)', inProcess),
  row('MessagePort echo to a worker (handoff alone)', echoRtt),
  row('Atomics.notify / waitAsync round trip (handoff alone)', atomicsRtt),
  row('program pool: call on this thread, reset after', viaPool),
]);
