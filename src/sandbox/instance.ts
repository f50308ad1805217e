// One VM of a loaded program (program.ts), answering one request at a time: the request is
// written into guest memory, the guest runs until it answers (awaiting the host calls it makes),
// and the VM goes back to the program's snapshot — after every request for an ephemeral program;
// for a persistent one only after a failure, at its reset bounds, or when the program asks. A call
// can run in slices, giving the thread back between them, so a long guest call never holds the
// thread that owns it for more than a slice.
import { performance } from 'node:perf_hooks';
import { SandboxError } from '../vmm/errors.ts';
import { PAGE_SIZE } from '../vmm/x86/layout.ts';
import type { Machine, RunResult } from '../vmm/machine.ts';
import { CALL_LOG, CALL_WAIT, type DecodedResponse, MAX_LOG_LINE_BYTES, MAX_LOG_LINES, type Phase, readLogLine, readResponse, type RecvDirective, type RequestLayout } from './abi.ts';
import { completeHostCall, freshRandom, type HostCalls, type PendingHostCall, startHostCall, withDeadline } from './host-call.ts';
import { batchAnswered, batchCurrent, oneResponseAt, requestRoom, writeBatch, writeOne, type WrittenBatch, type WrittenOne } from './batch-abi.ts';
import { BATCH_ABI_VERSION } from './abi-layout.ts';
import { cgiEnvironment, parseCgiOutput } from './cgi.ts';
import { answerBytes, hostStepCodec, Journal, keepAnswers, REPLAYABLE_FAILURES } from './replay.ts';
import type { Program } from './program.ts';
import type { Turns } from './turns.ts';
import { CaptureStdio, RoutedStdio } from './stdio.ts';
import type { SandboxRequest, SandboxResponse } from './types.ts';

const us = (ms: number): number => Math.round(ms * 1000);

/** Adds a request's stderr lines to its log, up to MAX_LOG_LINES lines in all. */
function keepLogLines(logs: string[], lines: readonly string[]): void {
  for (const line of lines) {
    if (logs.length >= MAX_LOG_LINES) return;
    logs.push(line);
  }
}

export type { HostCalls } from './host-call.ts';

/** How `Instance.call` (and `ProgramPool.call`) runs a request: its phase, and the host services. */
export interface CallOptions {
  phase?: Phase;
  /** deliver phase: the response about to be delivered. */
  response?: { status: number; headers: ReadonlyArray<readonly [string, string]> };
  /** The host's warm-up request after a load: the program sees TE_REQUEST_WARMUP. */
  warmup?: boolean;
  /** The host asks for the state to hand the next version (TE_REQUEST_LIVE_UPDATE; ProgramPool.liveUpdateState). */
  liveUpdate?: boolean;
  host?: HostCalls;
  /**
   * Shares the thread with its other work: the guest runs a slice at a time, within the turn's
   * budget (turns.ts). Without, the call holds the thread whenever its guest runs.
   */
  turns?: Turns;
  /**
   * 'later': the instance is not reset before the call returns, so its answer goes out first; it
   * is reset by `reset()`, or at the start of its next call whatever happens. Default 'now'.
   */
  reset?: 'now' | 'later';
  /** Filled in as the call runs, whether it succeeds or fails: what it cost (CallUsage). */
  usage?: CallUsage;
  /** te_request.random for the program instead of fresh bytes (32): a replay's (replay.ts). */
  random?: Uint8Array;
}

/**
 * `o` with every field present, in one order, and `host`, `usage`, `turns` and `reset` as given:
 * one shape for the options of every call on the per-request path. A spread makes an object of a
 * new shape for each set of fields present, and V8's property reads on them then miss its inline
 * caches and go to the runtime (~8 % of a program request's CPU time before this).
 */
export function callOptions(o: CallOptions, host = o.host, usage = o.usage, turns = o.turns, reset = o.reset): CallOptions {
  return { phase: o.phase, response: o.response, warmup: o.warmup, liveUpdate: o.liveUpdate, host, turns, reset, usage, random: o.random };
}

/** The layout of a call's request (abi.ts), in one shape for every call, as `callOptions`. */
function layoutOf(o: CallOptions, abiVersion: number): RequestLayout {
  return { phase: o.phase, response: o.response, warmup: o.warmup, presnapshot: undefined, abiVersion, liveUpdate: o.liveUpdate, liveRestore: undefined };
}

/**
 * What one call cost the host, added to as the call runs (a failed call counts too). `runUs` is
 * the time the thread spent in the run loop for it: `guestUs` inside KVM_RUN, the rest handling
 * its exits. `dirtyPages` is known once the instance is reset: at once after a failure, or by
 * the pool after the answer went out. The pool calls `settled` once the usage is complete,
 * whatever happened to the call (also when it never got an instance).
 */
export interface CallUsage {
  guestUs: number;
  runUs: number;
  exits: number;
  dirtyPages: number;
  settled?: () => void;
}

/** A program's answer; for the `recv` phase, also what it decided about the request. */
export type CallResult = SandboxResponse & { recv?: RecvDirective };

/** A program's answer as decoded, before the host adds its logs and timing. */
type Answer = Omit<CallResult, 'logs' | 'timing'> & { resetAfter?: boolean };

/** The caller's view of an answer: its fields, named one by one (no copies of the decoded object). */
function callResult(a: Answer, logs: string[], timing: SandboxResponse['timing']): CallResult {
  const r: CallResult = { status: a.status, headers: a.headers, body: a.body, cache: a.cache, logs, timing };
  if (a.recv !== undefined) r.recv = a.recv;
  return r;
}

/** One request of a batch (`Instance.callBatch`): the request and how it is called. */
export interface BatchItem {
  req: SandboxRequest;
  options: CallOptions;
}

/**
 * What became of one request of a batch: answered, failed (alone: a fault, a timeout, a bad
 * response), or `again` — not answered in this batch (after another's failure, a reset the
 * program asked for, or no room), to be run on another call.
 */
export type BatchOutcome = { kind: 'answered'; result: CallResult } | { kind: 'failed'; error: unknown } | { kind: 'again' };

/** One VM of a program, answering one request at a time and reset to the snapshot as its lifecycle says. */
export class Instance {
  private pending: PendingHostCall | undefined;
  /** RDI of the program's last WAIT: its te_response (version 1) or the batch it answered. */
  private responseAt = 0;
  /** The lone request the program is answering, as laid out for its version. */
  private written: WrittenOne = { at: 0 };
  /** A reset is due: answered a request and not reset since (a call with `reset: 'later'`). */
  private dirty = false;
  /** Requests answered since the last reset (a persistent instance counts them toward its bound). */
  private served = 0;
  /** Set by the pool when a call failed in the host, not in the program: the VM is dropped. */
  broken = false;
  /** Runs of the guest a slice ended (`preemptions`). */
  private slicesEnded = 0;
  /**
   * What the host answers the guest during a call (clocks, random bytes, host calls), kept for a
   * failure's bundle (replay.ts); reset per call. A replay swaps in one that answers instead.
   */
  private journal = new Journal();
  /** The running call's te_request.random, copied: the host's entropy pool is reused. */
  private readonly random = new Uint8Array(32);
  /** The journal step of the host call in `pending` (-1: none kept). */
  private pendingStep = -1;

  constructor(private readonly program: Program, private readonly machine: Machine, private readonly name: string, private readonly env: readonly string[]) {
    machine.journal = this.journal;
  }

  /** Answers this instance's calls from `journal` (a replay's) instead of recording them. */
  replayFrom(journal: Journal): void {
    this.journal = journal;
    this.machine.journal = journal;
  }

  /**
   * Runs one request synchronously (host calls answer -ENOSYS) and returns the response, or
   * throws a SandboxError (timeout, fault, out-of-memory, bad-response). Either way the instance
   * is reset and ready for the next one.
   */
  handle(req: SandboxRequest): SandboxResponse {
    this.reset();
    this.journal.reset();
    const t0 = performance.now();
    const logs: string[] = [];
    const deadline = t0 + this.program.limits.timeoutMs;
    try {
      if (this.program.limits.mode === 'cgi') {
        const stdio = this.startCgi(req);
        return this.done(this.finishCgi(this.runUntil(deadline, Infinity), stdio, logs), logs, t0, 'now');
      }
      const stdio = this.startSdk(req, logs, {});
      return this.done(this.decodeSdk(this.runUntil(deadline, Infinity), stdio, logs, 'generate'), logs, t0, 'now');
    } catch (err) {
      this.resetNow();
      throw err;
    }
  }

  /**
   * Runs one request, awaiting the host calls the program makes (sub-requests, key-value store)
   * and, with `turns`, giving the thread back between slices; other instances on this thread
   * run meanwhile. Same failures as `handle`; after a failure the instance is reset at once.
   */
  async call(req: SandboxRequest, options: CallOptions = {}): Promise<CallResult> {
    this.reset();
    this.journal.reset();
    const t0 = performance.now();
    const logs: string[] = [];
    const { limits } = this.program;
    const deadline = t0 + limits.timeoutMs;
    const turns = options.turns;
    try {
      const stdio = limits.mode === 'cgi' ? this.startCgi(req) : this.startSdk(req, logs, options);
      for (;;) {
        let result: RunResult;
        if (turns) {
          const wait = turns.take();
          if (wait) await wait;
          result = turns.charge(() => this.runMeasured(deadline, turns.sliceMs, options.usage));
        } else {
          result = this.runMeasured(deadline, Infinity, options.usage);
        }
        if (result.kind === 'preempted') {
          this.slicesEnded++;
          continue;
        }
        const pending = this.pending;
        if (result.kind === 'yield' && pending) {
          this.pending = undefined;
          const step = this.pendingStep;
          const value = await withDeadline(pending.promise, deadline, limits.timeoutMs);
          this.journal.hostAnswer(step, value, answerBytes(value));
          this.machine.resume(completeHostCall(pending, value));
          continue;
        }
        const answer = limits.mode === 'cgi' ? this.finishCgi(result, stdio, logs) : this.decodeSdk(result, stdio, logs, options.phase ?? 'generate');
        return this.done(answer, logs, t0, options.reset ?? 'now');
      }
    } catch (err) {
      this.pending = undefined;
      this.keepAnswers(err, limits.mode === 'sdk');
      const pages = this.resetNow();
      if (options.usage) options.usage.dirtyPages += pages;
      throw err;
    }
  }

  /** After a failure the program caused: what the host answered it, kept with the error (replay.ts). */
  private keepAnswers(err: unknown, sdk: boolean): void {
    if (!(err instanceof SandboxError) || !REPLAYABLE_FAILURES.has(err.kind) || this.journal.mode !== 'record') return;
    const answers = this.journal.export(hostStepCodec);
    keepAnswers(err, sdk ? { random: Buffer.from(this.random).toString('base64'), ...answers } : answers);
  }

  /** `runUntil`, adding its time, guest time and exits to `usage`. */
  private runMeasured(deadline: number, sliceMs: number, usage: CallUsage | undefined): RunResult {
    if (!usage) return this.runUntil(deadline, sliceMs);
    const t0 = performance.now();
    const cpu0 = this.machine.cpuTimeNs();
    const exits0 = this.machine.exits;
    try {
      return this.runUntil(deadline, sliceMs);
    } finally {
      usage.runUs += (performance.now() - t0) * 1000;
      usage.guestUs += (this.machine.cpuTimeNs() - cpu0) / 1000;
      usage.exits += this.machine.exits - exits0;
    }
  }

  /**
   * Runs `items` in one entry into the guest (ABI version 2's batched WAIT): the program answers
   * them one after another, each in its own response slot, and comes back once. Each request has
   * the program's time limit from when its handler starts (`te_batch.current`); host calls work
   * as in `call`. A request that faults or times out fails alone: the ones answered before it
   * stand, the instance is reset, and those after it come back `again`. Only a persistent program
   * of ABI version 2 takes batches (an ephemeral one is reset between any two requests, which
   * takes an exit); any other, or a lone item, runs the first item through `call` (the rest:
   * `again`). A batch never takes more requests than `resetAfterRequests` leaves.
   */
  async callBatch(items: readonly BatchItem[], turns?: Turns, reset: 'now' | 'later' = 'now'): Promise<BatchOutcome[]> {
    const again = (from: number): BatchOutcome[] => items.slice(from).map((): BatchOutcome => ({ kind: 'again' }));
    const { limits, requestRegion, abiVersion } = this.program;
    this.reset();
    // A batch's answers are not kept for replays (its requests share one run), only bounded.
    this.journal.reset();
    const room = limits.resetAfterRequests - this.served;
    if (items.length === 1 || room <= 1 || abiVersion < BATCH_ABI_VERSION || limits.lifecycle !== 'persistent') {
      return [await this.callOne(items[0]!, turns, reset), ...again(1)];
    }
    const t0 = performance.now();
    const m = this.machine;
    let batch: WrittenBatch;
    try {
      batch = writeBatch(m.mem, requestRoom(requestRegion, limits.maxRequestBytes), items.slice(0, room).map((i) => ({ req: i.req, random: freshRandom(), layout: layoutOf(i.options, abiVersion) })));
    } catch (error) {
      return [{ kind: 'failed', error }, ...again(1)];
    }
    const logs: string[][] = items.slice(0, batch.count).map(() => []);
    const stdios = logs.map(() => new CaptureStdio(0, undefined, true));
    let current = 0;
    const index = (): number => (current = batchCurrent(m.mem, batch, current));
    m.stdio = new RoutedStdio(stdios, index);
    this.armHypercalls(() => logs[index()]!, () => items[index()]!.options.host);
    m.resume(batch.at);
    // The running request's limit starts when the host first sees its handler has begun: at the
    // latest a check after it did (a slice, or a tenth of the limit without slices). However the
    // program moves `current`, the batch ends by `cap`.
    const checkMs = Math.min(turns?.sliceMs ?? Infinity, Math.max(1, limits.timeoutMs / 10));
    let timed = 0;
    let deadline = t0 + limits.timeoutMs;
    // The batch's run is one program's: its cost goes to the first request's usage.
    const usage = items[0]!.options.usage;
    const cap = t0 + (batch.count + 1) * (limits.timeoutMs + checkMs);
    const moved = (): void => {
      if (index() === timed) return;
      timed = current;
      deadline = performance.now() + limits.timeoutMs;
    };
    try {
      for (;;) {
        moved();
        const left = deadline - performance.now();
        if (left <= 0) throw new SandboxError('timeout', `program ran past its ${limits.timeoutMs} ms time limit`);
        let result: RunResult;
        if (turns) {
          const wait = turns.take();
          if (wait) await wait;
          result = turns.charge(() => this.runMeasured(cap, Math.min(checkMs, deadline - performance.now()), usage));
        } else {
          result = this.runMeasured(cap, Math.min(checkMs, left), usage);
        }
        if (result.kind === 'preempted') {
          this.slicesEnded++;
          continue;
        }
        const pending = this.pending;
        if (result.kind === 'yield' && pending) {
          this.pending = undefined;
          moved();
          m.resume(completeHostCall(pending, await withDeadline(pending.promise, deadline, limits.timeoutMs)));
          continue;
        }
        if (result.kind === 'exit') throw new SandboxError('fault', `program exited with status ${result.status} during a request`);
        break;
      }
    } catch (error) {
      this.pending = undefined;
      const failed = index();
      const outcomes = [...this.batchAnswers(batch, items, logs, stdios, failed, t0).outcomes, { kind: 'failed', error } as const, ...again(failed + 1)];
      this.resetNow();
      return outcomes;
    }
    const answered = this.responseAt === batch.at ? batchAnswered(m.mem, batch) : undefined;
    if (answered === undefined) {
      const failed = index();
      const error = new SandboxError('bad-response', this.responseAt === batch.at ? 'program ended a batch without saying which requests it answered' : `program answered a batch it was not given (WAIT with 0x${this.responseAt.toString(16)})`);
      const outcomes = [...this.batchAnswers(batch, items, logs, stdios, failed, t0).outcomes, { kind: 'failed', error } as const, ...again(failed + 1)];
      this.resetNow();
      return outcomes;
    }
    const { outcomes, resetAfter, bad } = this.batchAnswers(batch, items, logs, stdios, answered, t0);
    // A bad response resets as any failure does; otherwise the lifecycle decides, as after one request.
    if (bad) this.resetNow();
    else this.settle(answered, resetAfter, reset);
    return [...outcomes, ...again(answered)];
  }

  /**
   * One request as `call` runs it, its outcome as `callBatch` gives it (a failure is an outcome,
   * never a throw): what a batch of one is, without a batch's bookkeeping.
   */
  callOne(item: BatchItem, turns?: Turns, reset: 'now' | 'later' = 'now'): Promise<BatchOutcome> {
    const { req, options } = item;
    return this.call(req, callOptions(options, options.host, options.usage, turns, reset)).then(
      (result): BatchOutcome => ({ kind: 'answered', result }),
      (error: unknown): BatchOutcome => ({ kind: 'failed', error }),
    );
  }

  /** The answers in the first `count` slots of `batch`, each decoded alone: one that is bad fails alone. */
  private batchAnswers(batch: WrittenBatch, items: readonly BatchItem[], logs: string[][], stdios: CaptureStdio[], count: number, t0: number): { outcomes: BatchOutcome[]; resetAfter: boolean; bad: boolean } {
    const callUs = us(performance.now() - t0);
    const outcomes: BatchOutcome[] = [];
    let resetAfter = false;
    let bad = false;
    for (let i = 0; i < count; i++) {
      keepLogLines(logs[i]!, stdios[i]!.lines());
      try {
        const answer = readResponse(this.machine.mem, batch.slots[i]!, this.program.limits.maxResponseBytes, items[i]!.options.phase ?? 'generate');
        resetAfter ||= answer.resetAfter;
        outcomes.push({ kind: 'answered', result: callResult(answer, logs[i]!, { callUs }) });
      } catch (error) {
        bad = true;
        outcomes.push({ kind: 'failed', error });
      }
    }
    return { outcomes, resetAfter, bad };
  }

  /**
   * Back to the snapshot if the last call left the instance as it answered (`reset: 'later'`);
   * the pages it had dirtied (0 when there was nothing to do).
   */
  reset(): number {
    return this.dirty ? this.resetNow() : 0;
  }

  /** Whether `reset()` has work to do: the last call left the instance to be reset later. */
  get resetPending(): boolean {
    return this.dirty;
  }

  /**
   * Runs of this instance's guest that a slice ended with the guest still running, since it was
   * made: the guest's own time, whatever the host did between its runs (host calls, collections).
   */
  get preemptions(): number {
    return this.slicesEnded;
  }

  /** VM exits of this instance since it was made, and of them the timer's interrupts. */
  get exits(): { all: number; timer: number } {
    return { all: this.machine.exits, timer: this.machine.timerExits };
  }

  /**
   * After an answer: the instance is reset (now, or `later` by `reset()`) when its lifecycle says
   * so — always for an ephemeral program; for a persistent one only at a bound it reached or when
   * the program asked (`resetAfter`, te_reset_after()). A failure resets at once, elsewhere.
   */
  private done(answer: Answer, logs: string[], t0: number, reset: 'now' | 'later'): CallResult {
    const t1 = performance.now();
    const callUs = us(t1 - t0);
    const dirtyPages = this.settle(1, answer.resetAfter === true, reset);
    return callResult(answer, logs, dirtyPages === undefined ? { callUs } : { callUs, resetUs: us(performance.now() - t1), dirtyPages });
  }

  /** Counts `answers` toward the lifecycle's bound and resets if it is due: the pages restored when that was now. */
  private settle(answers: number, asked: boolean, reset: 'now' | 'later'): number | undefined {
    this.served += answers;
    if (!this.resetDue(asked)) return undefined;
    if (reset === 'now') return this.resetNow();
    this.dirty = true;
    return undefined;
  }

  /** Whether the lifecycle calls for a reset now that a request has been answered. */
  private resetDue(asked: boolean): boolean {
    const { lifecycle, resetAfterRequests, resetAboveDirtyBytes } = this.program.limits;
    if (lifecycle === 'ephemeral' || asked || this.served >= resetAfterRequests) return true;
    return resetAboveDirtyBytes !== Infinity && this.machine.dirtyPages() * PAGE_SIZE > resetAboveDirtyBytes;
  }

  /** Runs the guest until `deadline` or for one slice; a timeout names the program's limit, not what was left of it. */
  private runUntil(deadline: number, sliceMs: number): RunResult {
    const limit = this.program.limits.timeoutMs;
    const left = deadline - performance.now();
    try {
      if (left <= 0) throw new SandboxError('timeout', '');
      return this.machine.run(left, sliceMs);
    } catch (err) {
      if (err instanceof SandboxError && err.kind === 'timeout') throw new SandboxError('timeout', `program ran past its ${limit} ms time limit`);
      throw err;
    }
  }

  /** Writes the request into the guest and arms the hypercalls; the guest resumes at its WAIT. */
  private startSdk(req: SandboxRequest, logs: string[], options: CallOptions): CaptureStdio {
    const { limits, requestRegion } = this.program;
    const m = this.machine;
    const stdio = new CaptureStdio(0, undefined, true);
    m.stdio = stdio;
    const { abiVersion } = this.program;
    const random = options.random ?? freshRandom();
    this.random.set(random);
    this.written = writeOne(m.mem, requestRoom(requestRegion, limits.maxRequestBytes), { req, random, layout: layoutOf(options, abiVersion) }, abiVersion);
    this.armHypercalls(() => logs, () => options.host);
    m.resume(this.written.at);
    return stdio;
  }

  /** Answers the program's hypercalls: LOG into `logs()`, host calls through `host()` (the running request's). */
  private armHypercalls(logs: () => string[], host: () => HostCalls | undefined): void {
    this.machine.hypercall = (mm, call) => {
      const arg = mm.vcpu.reg('rdi');
      switch (call) {
        case CALL_WAIT:
          this.responseAt = arg;
          mm.yield();
          return 0;
        case CALL_LOG: {
          // A dropped line's pointer is still checked: the result must not depend on how many came before.
          const lines = logs();
          if (lines.length < MAX_LOG_LINES) lines.push(readLogLine(mm.mem, arg, mm.vcpu.reg('rsi')));
          else mm.mem.check(arg, Math.min(mm.vcpu.reg('rsi'), MAX_LOG_LINE_BYTES));
          return 0;
        }
        default:
          return this.startHostCall(mm, call, arg, host());
      }
    };
  }

  /** Starts a host call, keeping what the call must await. */
  private startHostCall(m: Machine, call: number, arg: number, host: HostCalls | undefined): number {
    const { rax, pending } = startHostCall(m, call, arg, host);
    if (pending) {
      this.pending = pending;
      this.pendingStep = this.journal.mode === 'record' ? this.journal.hostStart(pending.call, pending.what) : -1;
    }
    return rax;
  }

  private decodeSdk(result: RunResult, stdio: CaptureStdio, logs: string[], phase: Phase): DecodedResponse {
    keepLogLines(logs, stdio.lines());
    if (result.kind === 'exit') throw new SandboxError('fault', `program exited with status ${result.status} during a request`);
    return readResponse(this.machine.mem, oneResponseAt(this.machine.mem, this.written, this.responseAt), this.program.limits.maxResponseBytes, phase);
  }

  /** Starts a CGI request: the program from its entry point, the request in its environment and stdin. */
  private startCgi(req: SandboxRequest): CaptureStdio {
    const m = this.machine;
    const stdio = new CaptureStdio(this.program.limits.maxResponseBytes + 64 * 1024, req.body);
    m.stdio = stdio;
    m.startAtEntry([this.name], cgiEnvironment(req, `/${this.name}`, this.env));
    return stdio;
  }

  /** A CGI program's answer: what it wrote to stdout once it exited. */
  private finishCgi(result: RunResult, stdio: CaptureStdio, logs: string[]): Omit<SandboxResponse, 'logs' | 'timing'> {
    const { limits } = this.program;
    keepLogLines(logs, stdio.lines());
    if (result.kind !== 'exit') throw new SandboxError('bad-response', 'CGI program made an SDK call');
    if (stdio.overflowed) throw new SandboxError('bad-response', `response exceeds the limit of ${limits.maxResponseBytes} bytes`);
    const out = stdio.stdout();
    if (result.status !== 0 && out.length === 0) {
      throw new SandboxError('fault', `CGI program exited with status ${result.status}${result.signal ? ` (${result.signal})` : ''} without output`);
    }
    const parsed = parseCgiOutput(out);
    return { ...parsed, cache: { tags: [], uncacheable: false } };
  }

  /** Back to the snapshot: memory, registers and segments, wherever a failure left the vCPU. */
  private resetNow(): number {
    this.dirty = false;
    this.served = 0;
    return this.machine.restoreFrom(this.program.snapshot);
  }

  /** Frees this instance's VM. */
  close(): void {
    this.machine.close();
  }
}

