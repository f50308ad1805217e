// What recording a call's host answers for replay (the journal, src/vmm/linux/journal.ts) costs a
// request that succeeds: the journal's own work for one call of a program that reads the clock
// four times and 32 random bytes (reset, four clock steps, one random step), timed alone, beside
// the whole call of that program in its VM (Instance.call, reset included) — the journal's share
// of the call. Medians of `rounds` rounds of `n` calls each, in one run. Usage:
//   node --import tsx bench/replay-journal.ts [-n 3000] [--rounds 5]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Journal, Kvm, Program } from '../src/sandbox/index.ts';
import { BENCH_DIR, buildBenchGuest, machineLine, median, percentile, printTable } from './lib.ts';

const { values } = parseArgs({ options: { n: { type: 'string', short: 'n', default: '3000' }, rounds: { type: 'string', default: '5' } } });
const n = Number(values.n);
const rounds = Number(values.rounds);

const kvm = new Kvm();
const elf = readFileSync(buildBenchGuest('clock_random.c', ['-I', join(BENCH_DIR, '../guest/include')]));
const program = new Program(kvm, elf, { mode: 'sdk', name: 'clock_random' });
const instance = program.instance();
const req = { method: 'GET', url: '/', headers: [['Host', 'localhost']] as Array<[string, string]>, body: new Uint8Array(0) };

/** p50 of one call of the program, µs. */
async function callRound(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await instance.call(req);
    times.push((performance.now() - t) * 1000);
  }
  return percentile(times.sort((a, b) => a - b), 50);
}

/** The journal's work for one such call, ns (the mean over n calls: each is far below the timer's grain). */
function journalRound(): number {
  const journal = new Journal();
  const clock = new Uint8Array(16);
  const random = new Uint8Array(32);
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    journal.reset();
    for (let c = 0; c < 4; c++) {
      clock[0] = c;
      journal.clock(0, clock);
    }
    journal.random(random);
  }
  return ((performance.now() - t) * 1e6) / n;
}

for (let i = 0; i < n / 10; i++) await instance.call(req);
journalRound();
const calls: number[] = [];
const journals: number[] = [];
for (let r = 0; r < rounds; r++) {
  calls.push(await callRound());
  journals.push(journalRound());
}
instance.close();
program.close();
kvm.close();

const callUs = median(calls);
const journalNs = median(journals);
console.log(`replay journal cost per call — ${machineLine()}; ${rounds} rounds of ${n} calls, medians`);
printTable(['what', 'per call', 'share of the call'], [
  ['call of clock_random (4 clock reads, 32 random bytes), p50', `${callUs.toFixed(2)} µs`, '100 %'],
  ['journal work of that call (reset, 4 clock steps, 1 random step)', `${journalNs.toFixed(0)} ns`, `${((journalNs / 1000 / callUs) * 100).toFixed(2)} %`],
]);
