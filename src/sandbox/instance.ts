// One VM of a loaded program (program.ts), answering one request at a time: the request is
// written into guest memory, the guest runs until it answers (awaiting the host calls it makes),
// and the VM goes back to the program's snapshot. A call can run in slices, giving the thread back
// between them, so a long guest call never holds the thread that owns it for more than a slice.
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { SandboxError } from '../vmm/errors.ts';
import { pageAlignUp } from '../vmm/x86/layout.ts';
import type { Machine, RunResult } from '../vmm/machine.ts';
import { GuestFault } from '../vmm/memory/guest-memory.ts';
import { EFAULT, EIO, ENOENT, ENOSPC, ENOSYS } from '../vmm/linux/syscalls/errno.ts';
import { CALL_FETCH, CALL_KV_DELETE, CALL_KV_GET, CALL_KV_SET, CALL_LOG, CALL_WAIT, type DecodedResponse, type FetchCall, HostCallError, MAX_LOG_LINE_BYTES, MAX_LOG_LINES, type Phase, readFetch, readKv, readLogLine, readResponse, type RecvDirective, writeFetchResult, writeRequest } from './abi.ts';
import { cgiEnvironment, parseCgiOutput } from './cgi.ts';
import type { Program } from './program.ts';
import type { Turns } from './turns.ts';
import { CaptureStdio } from './stdio.ts';
import type { SandboxRequest, SandboxResponse } from './types.ts';

const us = (ms: number): number => Math.round(ms * 1000);

/**
 * The guest's RAX for a finished host call. Its result buffers were checked when the call was made
 * and the guest cannot run while it waits; should writing the result fault all the same, that is
 * the guest's -EFAULT too, never a host exception.
 */
function completeHostCall(pending: PendingHostCall, value: unknown): number {
  try {
    return pending.complete(value);
  } catch (err) {
    if (err instanceof GuestFault) return -EFAULT;
    throw err;
  }
}

/** Adds a request's stderr lines to its log, up to MAX_LOG_LINES lines in all. */
function keepLogLines(logs: string[], lines: readonly string[]): void {
  for (const line of lines) {
    if (logs.length >= MAX_LOG_LINES) return;
    logs.push(line);
  }
}

/** Per-request entropy comes from a pool refilled 4 KiB at a time: one CSPRNG call per 128 requests. */
const entropy = { pool: new Uint8Array(4096), used: 4096 };
/** Awaits `promise`, or fails with a timeout at `deadline` (a performance.now() time). */
async function withDeadline<T>(promise: Promise<T>, deadline: number, limitMs: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SandboxError('timeout', `program ran past its ${limitMs} ms time limit (waiting on a host call)`)), Math.max(0, deadline - performance.now()));
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function freshRandom(): Uint8Array {
  if (entropy.used + 32 > entropy.pool.length) {
    randomFillSync(entropy.pool);
    entropy.used = 0;
  }
  const out = entropy.pool.subarray(entropy.used, entropy.used + 32);
  entropy.used += 32;
  return out;
}

/** Host services a program may call during a request (SDK hypercalls); all optional. */
export interface HostCalls {
  fetch?(call: Omit<FetchCall, 'result'>): Promise<{ status: number; headers: Array<[string, string]>; body: Uint8Array }>;
  kvGet?(key: string): Promise<Uint8Array | undefined> | Uint8Array | undefined;
  /** Returns false when the tenant's quota would be exceeded. */
  kvSet?(key: string, value: Uint8Array): Promise<boolean> | boolean;
  kvDelete?(key: string): Promise<boolean> | boolean;
}

/** How `Instance.call` (and `ProgramPool.call`) runs a request: its phase, and the host services. */
export interface CallOptions {
  phase?: Phase;
  /** deliver phase: the response about to be delivered. */
  response?: { status: number; headers: ReadonlyArray<readonly [string, string]> };
  /** The host's warm-up request after a load: the program sees TE_REQUEST_WARMUP. */
  warmup?: boolean;
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

/** A host call the guest is waiting on: the promise, and how to turn its outcome into RAX. */
interface PendingHostCall {
  promise: Promise<unknown>;
  complete(value: unknown): number;
}

/** One VM of a program, answering one request at a time and reset to the snapshot after each. */
export class Instance {
  private pending: PendingHostCall | undefined;
  /** Where the program's te_response is (RDI of its last WAIT). */
  private responseAt = 0;
  /** Answered a request and not reset since (a call with `reset: 'later'`). */
  private dirty = false;

  constructor(private readonly program: Program, private readonly machine: Machine, private readonly name: string, private readonly env: readonly string[]) {}

  /**
   * Runs one request synchronously (host calls answer -ENOSYS) and returns the response, or
   * throws a SandboxError (timeout, fault, out-of-memory, bad-response). Either way the instance
   * is reset and ready for the next one.
   */
  handle(req: SandboxRequest): SandboxResponse {
    this.reset();
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
        if (result.kind === 'preempted') continue;
        const pending = this.pending;
        if (result.kind === 'yield' && pending) {
          this.pending = undefined;
          const value = await withDeadline(pending.promise, deadline, limits.timeoutMs);
          this.machine.resume(completeHostCall(pending, value));
          continue;
        }
        const answer = limits.mode === 'cgi' ? this.finishCgi(result, stdio, logs) : this.decodeSdk(result, stdio, logs, options.phase ?? 'generate');
        return this.done(answer, logs, t0, options.reset ?? 'now');
      }
    } catch (err) {
      this.pending = undefined;
      const pages = this.resetNow();
      if (options.usage) options.usage.dirtyPages += pages;
      throw err;
    }
  }

  /** `runUntil`, adding its time, guest time and exits to `usage`. */
  private runMeasured(deadline: number, sliceMs: number, usage: CallUsage | undefined): RunResult {
    if (!usage) return this.runUntil(deadline, sliceMs);
    const t0 = performance.now();
    const cpu0 = this.machine.cpuTimeNs();
    const exits0 = this.machine.exitCount();
    try {
      return this.runUntil(deadline, sliceMs);
    } finally {
      usage.runUs += (performance.now() - t0) * 1000;
      usage.guestUs += (this.machine.cpuTimeNs() - cpu0) / 1000;
      usage.exits += this.machine.exitCount() - exits0;
    }
  }

  /**
   * Back to the snapshot if the last call left the instance as it answered (`reset: 'later'`);
   * the pages it had dirtied (0 when there was nothing to do).
   */
  reset(): number {
    return this.dirty ? this.resetNow() : 0;
  }

  private done<T extends Omit<SandboxResponse, 'logs' | 'timing'>>(result: T, logs: string[], t0: number, reset: 'now' | 'later'): T & Pick<SandboxResponse, 'logs' | 'timing'> {
    const t1 = performance.now();
    if (reset === 'later') {
      this.dirty = true;
      return { ...result, logs, timing: { callUs: us(t1 - t0) } };
    }
    const dirtyPages = this.resetNow();
    return { ...result, logs, timing: { callUs: us(t1 - t0), resetUs: us(performance.now() - t1), dirtyPages } };
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
    const addr = writeRequest(m.mem, requestRegion, pageAlignUp(limits.maxRequestBytes), req, freshRandom(), options);
    const host = options.host;
    m.hypercall = (mm, call) => {
      const arg = mm.vcpu.reg('rdi');
      switch (call) {
        case CALL_WAIT:
          this.responseAt = arg;
          mm.yield();
          return 0;
        case CALL_LOG:
          // A dropped line's pointer is still checked: the result must not depend on how many came before.
          if (logs.length < MAX_LOG_LINES) logs.push(readLogLine(mm.mem, arg, mm.vcpu.reg('rsi')));
          else mm.mem.check(arg, Math.min(mm.vcpu.reg('rsi'), MAX_LOG_LINE_BYTES));
          return 0;
        default:
          return this.hostCall(mm, call, arg, host);
      }
    };
    m.resume(addr);
    return stdio;
  }

  /** Starts a host call: answers at once when impossible, else leaves it pending and yields. */
  private hostCall(m: Machine, call: number, arg: number, host: HostCalls | undefined): number {
    try {
      let pending: PendingHostCall | undefined;
      if (call === CALL_FETCH && host?.fetch) {
        const { result, ...request } = readFetch(m.mem, arg);
        pending = {
          promise: host.fetch(request),
          complete: (r) => {
            if (r instanceof Error) return -EIO;
            const res = r as Awaited<ReturnType<NonNullable<HostCalls['fetch']>>>;
            writeFetchResult(m.mem, result, res.body, res.headers);
            return res.status;
          },
        };
      } else if (call === CALL_KV_GET && host?.kvGet) {
        const kv = readKv(m.mem, arg, 'get');
        pending = {
          promise: Promise.resolve(host.kvGet(kv.key)),
          complete: (v) => {
            if (v instanceof Error) return -EIO;
            if (v === undefined) return -ENOENT;
            const value = v as Uint8Array;
            const n = Math.min(value.length, kv.valueLen);
            if (n > 0) m.mem.writable(kv.valueAt, n).set(value.subarray(0, n));
            return value.length;
          },
        };
      } else if (call === CALL_KV_SET && host?.kvSet) {
        const kv = readKv(m.mem, arg, 'set');
        const value = kv.valueLen === 0 ? new Uint8Array(0) : Uint8Array.from(m.mem.user(kv.valueAt, kv.valueLen));
        pending = { promise: Promise.resolve(host.kvSet(kv.key, value)), complete: (ok) => (ok === true ? 0 : ok instanceof Error ? -EIO : -ENOSPC) };
      } else if (call === CALL_KV_DELETE && host?.kvDelete) {
        const kv = readKv(m.mem, arg, 'key');
        pending = { promise: Promise.resolve(host.kvDelete(kv.key)), complete: (ok) => (ok === true ? 0 : ok instanceof Error ? -EIO : -ENOENT) };
      }
      if (!pending) return -ENOSYS;
      // A rejected host call reaches the guest as -EIO, never as a host exception.
      pending.promise = pending.promise.catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
      this.pending = pending;
      m.yield();
      return 0;
    } catch (err) {
      if (err instanceof GuestFault) return -EFAULT;
      if (err instanceof HostCallError) return -err.errno;
      throw err;
    }
  }

  private decodeSdk(result: RunResult, stdio: CaptureStdio, logs: string[], phase: Phase): DecodedResponse {
    keepLogLines(logs, stdio.lines());
    if (result.kind === 'exit') throw new SandboxError('fault', `program exited with status ${result.status} during a request`);
    return readResponse(this.machine.mem, this.responseAt, this.program.limits.maxResponseBytes, phase);
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
    return this.machine.restoreFrom(this.program.snapshot);
  }

  /** Frees this instance's VM. */
  close(): void {
    this.machine.close();
  }
}

