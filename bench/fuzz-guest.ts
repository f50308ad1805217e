// Guest fuzzing: test/guests/fuzz_guest.c makes random system calls and hypercalls with
// adversarial arguments, and this harness checks what the host does with them. The host must
// never throw anything but a SandboxError of an expected kind (never 'internal'), never grow
// without bound, never run past the time limit, and serve the next run or request normally.
// test/vmm/fuzz.test.ts runs it on fixed seeds; run as a script it fuzzes for a while:
//   node --import tsx bench/fuzz-guest.ts --seconds 600 [--seed N] [--mode run|sdk|both]
//        [--iterations N] [--huge-fetch-headers] [--verbose] [--echo-log]
// --verbose prints each finding in full as it comes; --echo-log prints every call the guest logs
// as it makes it (for replaying one seed: it shows the call even when the host process dies).
// A run-mode seed also replays through the CLI, its log on stderr:
//   tinyedge run --memory 64MiB --allow-read DIR --env FUZZ_DIR=DIR build/guests/glibc/fuzz_guest run SEED 150
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Kvm } from '../src/kvm/kvm.ts';
import type { Phase } from '../src/sandbox/abi.ts';
import { Program } from '../src/sandbox/program.ts';
import { type CallOptions, type HostCalls, type Instance } from '../src/sandbox/instance.ts';
import type { SandboxRequest } from '../src/sandbox/types.ts';
import { SandboxError } from '../src/vmm/errors.ts';
import { Machine } from '../src/vmm/machine.ts';
import type { Stdio } from '../src/vmm/linux/syscalls/context.ts';
import { POLLHUP, POLLOUT } from '../src/vmm/linux/syscalls/poll.ts';
import { buildGuest } from '../test/helpers/guests.ts';
import { machineLine, printTable } from './lib.ts';

/** Guest memory of every fuzzed VM; the guest is told it (FUZZ_RAM_MIB) to aim past the end. */
export const FUZZ_MEMORY_MIB = 64;
/** Time limit of a run-mode run and of an SDK request. */
export const FUZZ_TIMEOUT_MS = 300;
/** A run or request still going this long after its time limit is reported as a hang. */
export const HANG_SLACK_MS = 5_000;
/** Growth of the heap, or of ArrayBuffer memory, from the baseline that counts as unbounded. */
export const MEMORY_GROWTH_LIMIT = 64 * 1024 * 1024;
/** Log lines kept per run or request: the tail a failure report shows. */
export const LOG_TAIL = 12;
/** Bytes the in-memory KV store of the SDK host calls holds, like a tenant's quota. */
const KV_QUOTA = 64 * 1024;

/** How a fuzzed run or request may end. */
export type Outcome = 'exit' | 'response' | 'fault' | 'timeout' | 'out-of-memory' | 'bad-response';
/** The SandboxError kinds a hostile program may cause; 'internal' and 'program' are the host's. */
const EXPECTED_KINDS: readonly Outcome[] = ['fault', 'timeout', 'out-of-memory', 'bad-response'];

function expectedKind(err: unknown): Outcome | undefined {
  return err instanceof SandboxError ? EXPECTED_KINDS.find((k) => k === err.kind) : undefined;
}

export type FuzzMode = 'run' | 'sdk';
/** What the tally counts: the outcomes, and runs or requests that broke a promise. */
export type Tally = Outcome | 'finding';

/** A broken promise of the host, with what it takes to reproduce it. */
export interface Finding {
  mode: FuzzMode;
  seed: number;
  problem: string;
  stack?: string;
  /** The guest's last log lines: the last one is the call being made. */
  log: string[];
}

export interface FuzzOptions {
  /**
   * Lets the guest make te_fetch calls with 256 headers whose names and values are all one
   * 40 MiB buffer (issue 9, defect 1). Off while that kills Node with a heap OOM.
   */
  hugeFetchHeaders: boolean;
  /** Calls per run-mode run, and per SDK request. */
  runCalls: number;
  sdkOps: number;
  /** Writes each guest log line to stderr as it arrives. */
  echoLog: boolean;
}

export const DEFAULT_OPTIONS: FuzzOptions = { hugeFetchHeaders: false, runCalls: 150, sdkOps: 40, echoLog: false };

let gcFunction: (() => void) | undefined;
/** A full collection, so heap figures compare what is live and not what is garbage. */
function collectGarbage(): void {
  if (!gcFunction) {
    setFlagsFromString('--expose-gc');
    gcFunction = runInNewContext('gc') as () => void;
  }
  gcFunction();
}

const te = new TextDecoder();
const PHASES: readonly Phase[] = ['generate', 'recv', 'deliver'];
const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'fuzz']], body: new Uint8Array(0) });

/** The last LOG_TAIL "FZ ..." lines. */
class LogTail {
  lines: string[] = [];
  constructor(private readonly echo: boolean) {}
  add(bytes: Uint8Array): void {
    if (bytes.length < 3 || bytes[0] !== 0x46 || bytes[1] !== 0x5a || bytes[2] !== 0x20) return;
    const line = te.decode(bytes.subarray(0, 1024)).replace(/\n$/, '');
    if (this.echo) process.stderr.write(`${line}\n`);
    this.lines.push(line);
    if (this.lines.length > LOG_TAIL) this.lines.shift();
  }
}

/** fds 0–2 of a run-mode VM: empty stdin, stdout kept only for the "ok" check, FZ lines of stderr. */
class FuzzStdio implements Stdio {
  readonly log: LogTail;
  stdout = '';
  constructor(echo = false) {
    this.log = new LogTail(echo);
  }
  write(fd: 1 | 2, data: Uint8Array): number {
    if (fd === 2) this.log.add(data);
    else if (this.stdout.length < 64) this.stdout += te.decode(data.subarray(0, 64));
    return data.length;
  }
  read(): number {
    return 0;
  }
  /** As CaptureStdio: stdin at its end (hung up), stdout and stderr with room. */
  poll(entries: ReadonlyArray<{ fd: 0 | 1 | 2; events: number }>): number[] {
    return entries.map((e) => e.events & (e.fd === 0 ? POLLHUP : POLLOUT));
  }
}

export class GuestFuzzer {
  readonly outcomes = { run: new Map<Tally, number>(), sdk: new Map<Tally, number>() };
  readonly iterations = { run: 0, sdk: 0 };
  readonly findings: Finding[] = [];
  maxHeapUsed = 0;
  maxArrayBuffers = 0;
  private baseline: { heapUsed: number; arrayBuffers: number } | undefined;
  private readonly elf: Buffer;
  private readonly dir: string;
  private readonly env: string[];
  private program: Program | undefined;
  private instance: Instance | undefined;
  private readonly sdkLog: LogTail;
  private readonly store = new Map<string, Uint8Array>();
  private storeBytes = 0;
  private readonly host: HostCalls;

  constructor(private readonly kvm: Kvm, private readonly options: FuzzOptions = DEFAULT_OPTIONS) {
    this.elf = readFileSync(buildGuest('fuzz_guest'));
    // A readable directory with a file the guest opens as fd 3, so file calls reach real files.
    this.dir = mkdtempSync(join(tmpdir(), 'tinyedge-fuzz-'));
    writeFileSync(join(this.dir, 'data.txt'), 'fuzz data\n'.repeat(800));
    this.env = [`FUZZ_DIR=${this.dir}`, `FUZZ_RAM_MIB=${FUZZ_MEMORY_MIB}`];
    this.sdkLog = new LogTail(options.echoLog);
    this.host = {
      fetch: async (call) => ({ status: 200, headers: [['content-type', 'text/plain'], ['x-fuzz', String(call.headers.length)]], body: Buffer.from(`fetched ${call.url.slice(0, 40)}`) }),
      kvGet: (key) => this.store.get(key),
      kvSet: (key, value) => {
        if (key === 'fz-log') {
          this.sdkLog.add(value);
          return true;
        }
        const old = this.store.get(key)?.length ?? 0;
        if (this.storeBytes - old + value.length > KV_QUOTA) return false;
        this.store.set(key, value);
        this.storeBytes += value.length - old;
        return true;
      },
      kvDelete: (key) => {
        const old = this.store.get(key);
        if (!old) return false;
        this.storeBytes -= old.length;
        return this.store.delete(key);
      },
    };
  }

  /** Boots the fuzz guest in run mode with `seed`, then checks a known run on the next VM. */
  runSeed(seed: number): void {
    this.iterations.run++;
    const stdio = new FuzzStdio(this.options.echoLog);
    const started = performance.now();
    try {
      const m = Machine.boot(this.kvm, this.elf, { memoryMiB: FUZZ_MEMORY_MIB, argv: ['fuzz_guest', 'run', String(seed), String(this.options.runCalls)], env: this.env, allowRead: [this.dir], stdio });
      try {
        m.run(FUZZ_TIMEOUT_MS);
        this.count('run', 'exit');
      } finally {
        m.close();
      }
    } catch (err) {
      this.failed('run', seed, err, stdio.log.lines);
    }
    this.checkHang('run', seed, started, stdio.log.lines);
    this.checkNextRun(seed, stdio.log.lines);
    this.sampleMemory();
  }

  /**
   * Sends /fuzz with `seed` to the SDK program (in the phase the seed picks, so that recv and
   * deliver responses are decoded too), then /ok, which must answer "ok".
   */
  async sdkSeed(seed: number): Promise<void> {
    this.iterations.sdk++;
    const inst = this.sdkInstance();
    this.sdkLog.lines = [];
    const started = performance.now();
    const huge = this.options.hugeFetchHeaders ? '&huge=1' : '';
    const phase = PHASES[seed % PHASES.length]!;
    const options: CallOptions = { host: this.host, phase, response: phase === 'deliver' ? { status: 200, headers: [['content-type', 'text/plain']] } : undefined };
    try {
      await inst.call(get(`/fuzz?seed=${seed}&ops=${this.options.sdkOps}${huge}`), options);
      this.count('sdk', 'response');
    } catch (err) {
      this.failed('sdk', seed, err, this.sdkLog.lines);
    }
    const log = [...this.sdkLog.lines];
    this.checkHang('sdk', seed, started, log);
    try {
      const ok = await inst.call(get('/ok'), { host: this.host });
      if (ok.status !== 200 || ok.body.toString() !== 'ok') this.report('sdk', seed, `the next request got ${ok.status} ${JSON.stringify(ok.body.toString().slice(0, 100))}, not 200 "ok"`, log);
    } catch (err) {
      this.report('sdk', seed, `the next request failed: ${describe(err)}`, log, stackOf(err));
      // Carry on with a fresh instance, so one broken VM does not hide later findings.
      this.instance?.close();
      this.instance = undefined;
    }
    this.sampleMemory();
  }

  /** Takes the memory baseline (after a warm-up: the program, its snapshot and pooled VMs exist). */
  markBaseline(): void {
    collectGarbage();
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    this.baseline = { heapUsed, arrayBuffers };
  }

  /** Live heap and ArrayBuffer bytes gained since `markBaseline()` (undefined without one). */
  growth(): { heapUsed: number; arrayBuffers: number } | undefined {
    if (!this.baseline) return undefined;
    collectGarbage();
    const now = process.memoryUsage();
    return { heapUsed: now.heapUsed - this.baseline.heapUsed, arrayBuffers: now.arrayBuffers - this.baseline.arrayBuffers };
  }

  close(): void {
    this.instance?.close();
    this.program?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private sdkInstance(): Instance {
    this.program ??= new Program(this.kvm, this.elf, { mode: 'sdk', name: 'fuzz_guest', memoryMiB: FUZZ_MEMORY_MIB, timeoutMs: FUZZ_TIMEOUT_MS, env: this.env, allowRead: [this.dir] });
    this.instance ??= this.program.instance();
    return this.instance;
  }

  private checkNextRun(seed: number, log: string[]): void {
    const stdio = new FuzzStdio();
    try {
      const m = Machine.boot(this.kvm, this.elf, { memoryMiB: FUZZ_MEMORY_MIB, argv: ['fuzz_guest', 'ok'], env: [], stdio });
      try {
        const r = m.run(FUZZ_TIMEOUT_MS * 10);
        if (r.kind !== 'exit' || r.status !== 0 || stdio.stdout !== 'ok\n') this.report('run', seed, `the next run ended ${JSON.stringify(r)} with ${JSON.stringify(stdio.stdout)}, not status 0 and "ok"`, log);
      } finally {
        m.close();
      }
    } catch (err) {
      this.report('run', seed, `the next run failed: ${describe(err)}`, log, stackOf(err));
    }
  }

  private failed(mode: FuzzMode, seed: number, err: unknown, log: string[]): void {
    const kind = expectedKind(err);
    if (kind) this.count(mode, kind);
    else this.report(mode, seed, describe(err), log, stackOf(err));
  }

  private checkHang(mode: FuzzMode, seed: number, started: number, log: string[]): void {
    const ms = performance.now() - started;
    if (ms > FUZZ_TIMEOUT_MS + HANG_SLACK_MS) this.report(mode, seed, `took ${Math.round(ms)} ms with a ${FUZZ_TIMEOUT_MS} ms limit`, log);
  }

  private count(mode: FuzzMode, outcome: Tally): void {
    const m = this.outcomes[mode];
    m.set(outcome, (m.get(outcome) ?? 0) + 1);
  }

  private report(mode: FuzzMode, seed: number, problem: string, log: string[], stack?: string): void {
    this.count(mode, 'finding');
    this.findings.push({ mode, seed, problem, stack, log: [...log] });
  }

  private sampleMemory(): void {
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    this.maxHeapUsed = Math.max(this.maxHeapUsed, heapUsed);
    this.maxArrayBuffers = Math.max(this.maxArrayBuffers, arrayBuffers);
  }
}

function describe(err: unknown): string {
  if (err instanceof SandboxError) return `SandboxError '${err.kind}': ${err.message}`;
  if (err instanceof Error) return `host exception ${err.name}: ${err.message}`;
  return `host exception (not an Error): ${String(err)}`;
}

function stackOf(err: unknown): string | undefined {
  return err instanceof Error && !(err instanceof SandboxError && err.kind !== 'internal') ? err.stack : undefined;
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** One finding per problem (numbers blurred) and top of the stack, whichever mode found it. */
export function distinctFindings(findings: readonly Finding[]): Finding[] {
  const seen = new Map<string, Finding>();
  for (const f of findings) {
    const top = f.stack?.split('\n').slice(1, 6).join('|') ?? '';
    const key = `${f.problem.replace(/0x[0-9a-f]+|[\d_]+n?/gi, 'N')}|${top}`;
    if (!seen.has(key)) seen.set(key, f);
  }
  return [...seen.values()];
}

/** A finding as a report: the problem, how to replay it, the stack, the guest's last calls. */
export function formatFinding(f: Finding): string {
  const replay = `node --import tsx bench/fuzz-guest.ts --mode ${f.mode} --seed ${f.seed} --iterations 1 --verbose --echo-log`;
  const stack = f.stack ? `\n  stack:\n    ${f.stack.split('\n').slice(0, 8).join('\n    ')}` : '';
  const log = f.log.length ? `\n  last calls:\n    ${f.log.join('\n    ')}` : '';
  return `[${f.mode} seed ${f.seed}] ${f.problem}\n  replay: ${replay}${stack}${log}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '600' },
      seed: { type: 'string' },
      iterations: { type: 'string' },
      mode: { type: 'string', default: 'both' },
      'huge-fetch-headers': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      'echo-log': { type: 'boolean', default: false },
    },
  });
  const seconds = Number(values.seconds);
  const iterations = values.iterations === undefined ? Infinity : Number(values.iterations);
  const first = values.seed === undefined ? Math.floor(Math.random() * 1e9) : Number(values.seed);
  const modes: FuzzMode[] = values.mode === 'both' ? ['run', 'sdk'] : [values.mode as FuzzMode];
  if (!Number.isFinite(seconds) || !Number.isInteger(first) || modes.some((m) => m !== 'run' && m !== 'sdk')) {
    throw new Error('usage: fuzz-guest.ts [--seconds N] [--seed N] [--iterations N] [--mode run|sdk|both] [--huge-fetch-headers] [--verbose] [--echo-log]');
  }
  const kvm = new Kvm();
  const fuzzer = new GuestFuzzer(kvm, { ...DEFAULT_OPTIONS, hugeFetchHeaders: values['huge-fetch-headers'], echoLog: values['echo-log'] });
  console.log(`guest fuzzing — ${machineLine()}; seeds from ${first}, ${seconds} s, modes ${modes.join('+')}${values['huge-fetch-headers'] ? ', 256 x 40 MiB fetch headers on' : ''}`);
  const started = performance.now();
  const until = started + seconds * 1000;
  let reported = 0;
  let lastProgress = started;
  for (let i = 0; i < iterations && performance.now() < until; i++) {
    const seed = first + i;
    for (const mode of modes) {
      if (values['echo-log']) process.stderr.write(`${mode} seed ${seed}\n`);
      if (mode === 'run') fuzzer.runSeed(seed);
      else await fuzzer.sdkSeed(seed);
    }
    if (i === 20) fuzzer.markBaseline();
    for (; reported < fuzzer.findings.length; reported++) {
      const f = fuzzer.findings[reported]!;
      console.log(values.verbose ? formatFinding(f) : `[${f.mode} seed ${f.seed}] ${f.problem}`);
    }
    if (performance.now() - lastProgress > 30_000) {
      lastProgress = performance.now();
      console.log(`… ${Math.round((lastProgress - started) / 1000)} s: ${fuzzer.iterations.run} runs, ${fuzzer.iterations.sdk} requests, ${fuzzer.findings.length} findings`);
    }
  }
  const growth = fuzzer.growth();
  const kinds: Tally[] = ['exit', 'response', 'fault', 'timeout', 'out-of-memory', 'bad-response', 'finding'];
  console.log();
  printTable(['mode', 'iterations', ...kinds], modes.map((m) => [m, String(fuzzer.iterations[m]), ...kinds.map((k) => String(fuzzer.outcomes[m].get(k) ?? 0))]));
  console.log();
  const unbounded = growth !== undefined && (growth.heapUsed > MEMORY_GROWTH_LIMIT || growth.arrayBuffers > MEMORY_GROWTH_LIMIT);
  const grew = (bytes: number | undefined): string => (bytes === undefined ? '- (too short for a baseline)' : `${mib(bytes)}${bytes > MEMORY_GROWTH_LIMIT ? ' (UNBOUNDED)' : ''}`);
  printTable(['memory', 'max', 'growth after GC'], [
    ['heap used', mib(fuzzer.maxHeapUsed), grew(growth?.heapUsed)],
    ['array buffers', mib(fuzzer.maxArrayBuffers), grew(growth?.arrayBuffers)],
  ]);
  const distinct = distinctFindings(fuzzer.findings);
  console.log(`\n${fuzzer.findings.length} findings, ${distinct.length} distinct`);
  for (const f of distinct) console.log(`\n${formatFinding(f)}`);
  fuzzer.close();
  kvm.close();
  if (distinct.length > 0 || unbounded) process.exitCode = 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
