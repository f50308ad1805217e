// `tinyedge bench`: calls a program's handler in-process n times and prints latency percentiles,
// split into call and reset, beside the bare ring-3 exit round trip measured in the same run.
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { drainShellPool, Kvm, KvmError, measureExitFloor, Program, ProgramError, SandboxError, type SandboxRequest } from '../sandbox/index.ts';
import type { ProgramCliOptions } from './options.ts';
import { programOptions, readProgramFile } from './program-options.ts';

export interface BenchOptions extends ProgramCliOptions {
  n: number;
  url: string;
  method: string;
  loads: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const median = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 50);

interface BenchReport {
  floorUs: number;
  loadToFirstResponseMs: number;
  newInstanceMs: number;
  coldInstanceMs: number;
  callUs: number[];
  resetUs: number[];
  totalUs: number[];
  dirtyPages: number;
}

/** Runs the measurements; `n` handler calls after a warm-up of n/10. */
function runBench(kvm: Kvm, elf: Buffer, opts: ReturnType<typeof programOptions>, req: SandboxRequest, n: number, loads: number): BenchReport {
  const floorUs = median(measureExitFloor(kvm, 5, 5000));

  const firsts: number[] = [];
  let program: Program | undefined;
  for (let i = 0; i < loads; i++) {
    const t = performance.now();
    const p = new Program(kvm, elf, opts);
    const inst = p.instance();
    inst.handle(req);
    firsts.push(performance.now() - t);
    inst.close();
    if (i < loads - 1) p.close();
    else program = p;
  }
  const p = program!;
  // Cold: no pooled VM to reuse (KVM_CREATE_VM, vCPU setup, a new mapping).
  drainShellPool();
  const coldStart = performance.now();
  p.instance().close();
  const coldInstanceMs = performance.now() - coldStart;
  const instances: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    const inst = p.instance();
    instances.push(performance.now() - t);
    inst.close();
  }

  const inst = p.instance();
  for (let i = 0; i < Math.max(100, n / 10); i++) inst.handle(req);
  const callUs: number[] = [];
  const resetUs: number[] = [];
  const totalUs: number[] = [];
  let dirtyPages = 0;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = inst.handle(req);
    totalUs.push((performance.now() - t) * 1000);
    callUs.push(r.timing.callUs);
    resetUs.push(r.timing.resetUs);
    dirtyPages = r.timing.dirtyPages;
  }
  inst.close();
  p.close();
  return { floorUs, loadToFirstResponseMs: median(firsts), newInstanceMs: median(instances), coldInstanceMs, callUs, resetUs, totalUs, dirtyPages };
}

function printReport(path: string, r: BenchReport, n: number): void {
  const row = (name: string, xs: number[]): string => {
    const s = [...xs].sort((a, b) => a - b);
    const [p50, p90, p99] = [50, 90, 99].map((q) => percentile(s, q));
    return `${name.padEnd(26)}${p50!.toFixed(1).padStart(9)}${p90!.toFixed(1).padStart(9)}${p99!.toFixed(1).padStart(9)}${(p50! / r.floorUs).toFixed(2).padStart(10)}`;
  };
  const cpu = cpus();
  console.log(`tinyedge bench ${path}: ${n} requests on one instance — ${cpu[0]?.model ?? 'CPU'}, ${cpu.length} cores`);
  console.log(`${''.padEnd(26)}${'p50 µs'.padStart(9)}${'p90 µs'.padStart(9)}${'p99 µs'.padStart(9)}${'p50/floor'.padStart(10)}`);
  console.log(`${'bare ring-3 exit (floor)'.padEnd(26)}${r.floorUs.toFixed(1).padStart(9)}`);
  console.log(row('call', r.callUs));
  console.log(row('reset', r.resetUs));
  console.log(row('call + reset (wall)', r.totalUs));
  console.log(`dirty pages per request: ${r.dirtyPages}`);
  console.log(`load → init → snapshot → first response: ${r.loadToFirstResponseMs.toFixed(2)} ms (median)`);
  console.log(`new instance from the snapshot: ${r.newInstanceMs.toFixed(2)} ms (median of 10, pooled VM), ${r.coldInstanceMs.toFixed(2)} ms cold (new VM)`);
}

/** Runs `tinyedge bench` and sets the exit status: 125 when the program cannot be loaded or run. */
export function bench(path: string, opts: BenchOptions): void {
  try {
    const kvm = new Kvm();
    const elf = readProgramFile(path);
    const req: SandboxRequest = { method: opts.method, url: opts.url, headers: [['Host', 'localhost'], ['User-Agent', 'tinyedge-bench']], body: new Uint8Array(0) };
    printReport(path, runBench(kvm, elf, programOptions(path, opts), req, opts.n, opts.loads), opts.n);
    kvm.close();
  } catch (err) {
    if (err instanceof SandboxError || err instanceof ProgramError || err instanceof KvmError) {
      process.stderr.write(`tinyedge: ${err.message}\n`);
      process.exitCode = 125;
      return;
    }
    throw err;
  }
}
