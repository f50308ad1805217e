// VMM costs on this machine, in one run: the floor (a bare ring-3 exit round trip), one emulated
// system call, and a complete hello-world run (load -> exit). Prints medians in microseconds.
//   node --import tsx bench/vmm.ts [--rounds 9]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Kvm } from '../src/kvm/kvm.ts';
import { Machine } from '../src/vmm/machine.ts';
import type { Stdio } from '../src/vmm/linux/syscalls/context.ts';
import { measureExitFloor } from '../src/sandbox/floor.ts';
import { buildBenchGuest, machineLine, median, printTable } from './lib.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '9' } } });
const rounds = Number(values.rounds);
const discard: Stdio = { write: (_fd, d) => d.length, read: () => 0, poll: (entries) => entries.map(() => 0) };

const kvm = new Kvm();

/** The loop guests make this many exits before they exit themselves. */
const LOOP_EXITS = 10_000;

/** Runs a loop guest `rounds` times; returns µs per exit of each round (boot excluded). */
function perExit(elf: Buffer): number[] {
  const results: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const m = Machine.boot(kvm, elf, { memoryMiB: 16, argv: ['bench'], env: [], stdio: discard });
    const t = performance.now();
    m.run(60_000);
    results.push(((performance.now() - t) * 1000) / LOOP_EXITS);
    m.close();
  }
  return results;
}

const syscallLoop = readFileSync(buildBenchGuest('syscall_loop.S'));
const hello = readFileSync(buildBenchGuest('hello.c'));

const floor = median(measureExitFloor(kvm, rounds, LOOP_EXITS));
const syscall = median(perExit(syscallLoop));
const runs: number[] = [];
for (let i = 0; i < rounds * 4; i++) {
  const t = performance.now();
  const m = Machine.boot(kvm, hello, { memoryMiB: 64, argv: ['hello'], env: [], stdio: discard });
  m.run(10_000);
  m.close();
  runs.push((performance.now() - t) * 1000);
}
const helloRun = median(runs);

console.log(`tinyedge VMM benchmark — ${machineLine()}; medians of ${rounds} rounds`);
printTable(['what', 'µs', '× floor'], [
  ['bare ring-3 exit round trip (floor)', floor, 1],
  ['one emulated system call (getppid)', syscall, syscall / floor],
  ['hello world: load → run → exit (64 MiB guest)', helloRun, helloRun / floor],
]);
kvm.close();
