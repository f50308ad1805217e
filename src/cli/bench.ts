// `tinyedge bench`: calls a program's handler in-process n times and prints latency percentiles,
// split into call and reset, beside the bare ring-3 exit round trip measured in the same run.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { drainShellPool, Kvm, KvmError, measureExitFloor, Program, ProgramError, SandboxError, type SandboxRequest } from '../sandbox/index.ts';
import { EXIT_USAGE, type ProgramCliOptions } from './options.ts';
import { programOptions, readProgramFile } from './program-options.ts';

export interface BenchOptions extends ProgramCliOptions {
  n: number;
  url: string;
  method: string;
  loads: number;
  header: Array<[string, string]>;
  /** A file whose bytes are the request body, or `@-` for stdin. */
  body?: string;
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
  /** What the program answered the first request of the measured run, to check it was the right one. */
  first: { status: number; body: Buffer };
  /** How many measured requests got each status. */
  statuses: Map<number, number>;
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
  const statuses = new Map<number, number>();
  let dirtyPages = 0;
  let first: BenchReport['first'] | undefined;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = inst.handle(req);
    totalUs.push((performance.now() - t) * 1000);
    callUs.push(r.timing.callUs);
    resetUs.push(r.timing.resetUs ?? 0);
    dirtyPages = r.timing.dirtyPages ?? 0;
    first ??= { status: r.status, body: r.body };
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
  }
  inst.close();
  p.close();
  return { floorUs, loadToFirstResponseMs: median(firsts), newInstanceMs: median(instances), coldInstanceMs, callUs, resetUs, totalUs, dirtyPages, first: first!, statuses };
}

/** Body bytes shown, at most: enough to see which request the program answered. */
const PREVIEW_BYTES = 400;

/** The start of a body as one line of text, control characters and invalid UTF-8 escaped. */
function preview(body: Buffer): string {
  const text = body.subarray(0, PREVIEW_BYTES).toString('utf8').replace(/\uFFFD/g, '\\ufffd');
  // eslint-disable-next-line no-control-regex -- control characters are what this pattern is about
  const shown = text.replace(/[\0-\x1f\x7f]/g, (c) => (c === '\n' ? '\\n' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
  return body.length > PREVIEW_BYTES ? `${shown}…` : shown;
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
  console.log(`statuses: ${[...r.statuses].map(([status, count]) => `${status} × ${count}`).join(', ')}`);
  console.log(`first response: ${r.first.status}, ${r.first.body.length} bytes${r.first.body.length > 0 ? `: ${preview(r.first.body)}` : ''}`);
  console.log(`load → init → snapshot → first response: ${r.loadToFirstResponseMs.toFixed(2)} ms (median)`);
  console.log(`new instance from the snapshot: ${r.newInstanceMs.toFixed(2)} ms (median of 10, pooled VM), ${r.coldInstanceMs.toFixed(2)} ms cold (new VM)`);
}

/** The request body `--body` names: a file's bytes, or stdin's for `@-`; undefined (and said why) when unreadable. */
function readBody(source: string | undefined): Uint8Array | undefined {
  if (source === undefined) return new Uint8Array(0);
  try {
    return readFileSync(source === '@-' ? 0 : source);
  } catch (err) {
    process.stderr.write(`tinyedge: cannot read the request body from ${source === '@-' ? 'stdin' : source}: ${(err as Error).message}\n`);
    return undefined;
  }
}

/** Runs `tinyedge bench` and sets the exit status: 125 when the program cannot be loaded or run. */
export function bench(path: string, opts: BenchOptions): void {
  const body = readBody(opts.body);
  if (body === undefined) {
    process.exitCode = EXIT_USAGE;
    return;
  }
  try {
    const kvm = new Kvm();
    const elf = readProgramFile(path);
    const given = new Set(opts.header.map(([name]) => name.toLowerCase()));
    const defaults: Array<[string, string]> = [['Host', 'localhost'], ['User-Agent', 'tinyedge-bench']];
    const headers = [...defaults.filter(([name]) => !given.has(name.toLowerCase())), ...opts.header];
    const req: SandboxRequest = { method: opts.method, url: opts.url, headers, body };
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
