// The tenant-program host API, as small as TinyKVM's: load a program (it boots, initialises and
// is frozen), make instances from it, and let an instance handle a request. Every instance is
// reset to the frozen state after every request, whatever the request did.
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Kvm } from '../kvm/kvm.ts';
import { SandboxError } from '../vmm/errors.ts';
import { pageAlignUp } from '../vmm/x86/layout.ts';
import { Machine, type RunResult } from '../vmm/machine.ts';
import { GuestFault } from '../vmm/memory/guest-memory.ts';
import { type ExportedSnapshot, Snapshot } from '../vmm/memory/snapshot.ts';
import { EFAULT, EIO, ENOENT, ENOSPC, ENOSYS } from '../vmm/linux/syscalls/errno.ts';
import { CALL_FETCH, CALL_KV_DELETE, CALL_KV_GET, CALL_KV_SET, CALL_LOG, CALL_WAIT, checkAbiVersion, type DecodedResponse, type FetchCall, HostCallError, MAX_LOG_LINE_BYTES, MAX_LOG_LINES, type Phase, readFetch, readKv, readLogLine, readResponse, type RecvDirective, writeFetchResult, writeRequest } from './abi.ts';
import { cgiEnvironment, parseCgiOutput } from './cgi.ts';
import { CaptureStdio } from './stdio.ts';
import { sdkTracer } from './trace.ts';
import type { Tracer } from '../vmm/run/trace.ts';
import { PROGRAM_DEFAULTS, type ProgramOptions, type SandboxRequest, type SandboxResponse } from './types.ts';

const us = (ms: number): number => Math.round(ms * 1000);

/** Costs of loading, for benchmarks and logs. */
export interface LoadTiming {
  /** VM creation, page tables, ELF, stack. */
  bootUs: number;
  /** main() up to wait_for_requests() (SDK); 0 for CGI. */
  initUs: number;
  snapshotUs: number;
}

type Limits = Required<Omit<ProgramOptions, 'env' | 'allowRead' | 'name'>>;

/** A program loaded on this thread can also be traced (a function does not cross to the VM workers). */
export interface LocalProgramOptions extends ProgramOptions {
  /** Receives a line for every system call and hypercall of its instances, and for a fault (`--trace`). */
  trace?: (line: string) => void;
}

/**
 * A loaded program as another thread of this process adopts it (`Program.export`,
 * `new Program(kvm, exported)`): its snapshot and plain data, all structured-cloneable.
 */
export interface ExportedProgram {
  readonly snapshot: ExportedSnapshot;
  readonly limits: Limits;
  readonly timing: LoadTiming;
  readonly requestRegion: number;
  readonly name: string;
  readonly env: readonly string[];
}

/**
 * A loaded program: booted, initialised up to its `wait_for_requests()` (SDK) and frozen as a
 * snapshot that every instance starts from. `close()` frees it once its instances are closed.
 */
export class Program {
  readonly snapshot: Snapshot;
  readonly limits: Limits;
  readonly timing: LoadTiming;
  /** Guest address of the region requests are written to (SDK mode). */
  readonly requestRegion: number;
  private readonly name: string;
  private readonly env: readonly string[];
  private readonly tracer?: Tracer;
  /** The machine that booted the program: it stands at the snapshot and becomes the first instance. */
  private template: Machine | undefined;

  /** Adopts a program loaded on another thread: maps its snapshot; no guest code runs. */
  constructor(kvm: Kvm, exported: ExportedProgram);
  /** Boots and initialises `elf`, then freezes it. Throws SandboxError when that fails. */
  // Last, so that ConstructorParameters<typeof Program> names this form.
  constructor(kvm: Kvm, elf: Buffer, options: LocalProgramOptions);
  constructor(private readonly kvm: Kvm, source: Buffer | ExportedProgram, bootOptions?: LocalProgramOptions) {
    if (!Buffer.isBuffer(source)) {
      this.snapshot = new Snapshot(source.snapshot);
      this.limits = source.limits;
      this.timing = source.timing;
      this.requestRegion = source.requestRegion;
      this.name = source.name;
      this.env = source.env;
      return;
    }
    const elf = source;
    // The booting overload: an ELF always comes with its options.
    const options = bootOptions as LocalProgramOptions;
    this.limits = {
      mode: options.mode,
      memoryMiB: options.memoryMiB ?? PROGRAM_DEFAULTS.memoryMiB,
      timeoutMs: options.timeoutMs ?? PROGRAM_DEFAULTS.timeoutMs,
      initTimeoutMs: options.initTimeoutMs ?? PROGRAM_DEFAULTS.initTimeoutMs,
      maxResponseBytes: options.maxResponseBytes ?? PROGRAM_DEFAULTS.maxResponseBytes,
      maxRequestBytes: options.maxRequestBytes ?? PROGRAM_DEFAULTS.maxRequestBytes,
      executableMemory: options.executableMemory ?? PROGRAM_DEFAULTS.executableMemory,
    };
    this.name = options.name ?? 'program';
    this.env = options.env ?? [];
    const t0 = performance.now();
    const logs = new CaptureStdio(0, undefined, true);
    const machine = Machine.boot(kvm, elf, { memoryMiB: this.limits.memoryMiB, argv: [this.name], env: [...this.env], allowRead: options.allowRead, stdio: logs, resettable: true, executableMemory: this.limits.executableMemory });
    if (options.trace) machine.trace = this.tracer = sdkTracer(options.trace);
    try {
      const t1 = performance.now();
      let region = 0;
      if (this.limits.mode === 'sdk') {
        let abiVersion = 0;
        machine.hypercall = (m, call) => {
          if (call === CALL_WAIT) {
            abiVersion = m.vcpu.reg('rsi');
            m.yield();
          }
          return call === CALL_LOG ? 0 : -ENOSYS;
        };
        const result = machine.run(this.limits.initTimeoutMs);
        if (result.kind === 'exit') {
          const said = logs.text().trim().split('\n').slice(-3).join(' | ');
          throw new SandboxError('program', `program exited with status ${result.status} before calling wait_for_requests()${said ? `: ${said}` : ''}`);
        }
        checkAbiVersion(abiVersion);
        region = machine.arena.allocate(pageAlignUp(this.limits.maxRequestBytes));
        if (region < 0) throw new SandboxError('out-of-memory', `no room for a ${this.limits.maxRequestBytes}-byte request buffer in ${this.limits.memoryMiB} MiB of guest memory`);
      }
      const t2 = performance.now();
      this.snapshot = new Snapshot(machine);
      this.requestRegion = region;
      this.timing = { bootUs: us(t1 - t0), initUs: us(t2 - t1), snapshotUs: us(performance.now() - t2) };
      this.template = machine;
    } catch (err) {
      machine.close();
      throw err;
    }
  }

  /**
   * What another thread needs to adopt this program. Its memfd stays this program's: keep this
   * one open until every adopter has its own (adopting duplicates it).
   */
  export(): ExportedProgram {
    return { snapshot: this.snapshot.export(), limits: this.limits, timing: this.timing, requestRegion: this.requestRegion, name: this.name, env: this.env };
  }

  /** A new instance: the machine that booted the program for the first call, then fresh VMs. */
  instance(): Instance {
    const template = this.template;
    this.template = undefined;
    const machine = template ?? Machine.fromSnapshot(this.kvm, this.snapshot, new CaptureStdio(0));
    machine.trace = this.tracer;
    return new Instance(this, machine, this.name, this.env);
  }

  /** Frees the snapshot (and the booting VM if no instance took it); close the instances first. */
  close(): void {
    this.template?.close();
    this.template = undefined;
    this.snapshot.close();
  }
}

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

/** How `Instance.call` (and `VmWorkers.call`) runs a request: its phase, and the host services. */
export interface CallOptions {
  phase?: Phase;
  /** deliver phase: the response about to be delivered. */
  response?: { status: number; headers: ReadonlyArray<readonly [string, string]> };
  /** The host's warm-up request after a load: the program sees TE_REQUEST_WARMUP. */
  warmup?: boolean;
  host?: HostCalls;
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

  constructor(private readonly program: Program, private readonly machine: Machine, private readonly name: string, private readonly env: readonly string[]) {}

  /**
   * Runs one request synchronously (host calls answer -ENOSYS) and returns the response, or
   * throws a SandboxError (timeout, fault, out-of-memory, bad-response). Either way the instance
   * is reset and ready for the next one.
   */
  handle(req: SandboxRequest): SandboxResponse {
    const t0 = performance.now();
    const logs: string[] = [];
    try {
      const result = this.program.limits.mode === 'sdk' ? this.finishSdk(this.startSdk(req, logs, {}), logs, t0 + this.program.limits.timeoutMs, 'generate') : this.callCgi(req, logs);
      return this.done(result, logs, t0);
    } catch (err) {
      this.reset();
      throw err;
    }
  }

  /**
   * Runs one request, awaiting the host calls the program makes (sub-requests, key-value store);
   * other instances on this thread run meanwhile. Same failures and reset as `handle`.
   */
  async call(req: SandboxRequest, options: CallOptions = {}): Promise<CallResult> {
    const t0 = performance.now();
    const logs: string[] = [];
    const { limits } = this.program;
    const deadline = t0 + limits.timeoutMs;
    try {
      if (limits.mode === 'cgi') return this.done(this.callCgi(req, logs), logs, t0);
      const phase = options.phase ?? 'generate';
      const stdio = this.startSdk(req, logs, options);
      for (;;) {
        const result = this.runUntil(deadline);
        const pending = this.pending;
        if (result.kind === 'yield' && pending) {
          this.pending = undefined;
          const value = await withDeadline(pending.promise, deadline, limits.timeoutMs);
          this.machine.resume(completeHostCall(pending, value));
          continue;
        }
        return this.done(this.decodeSdk(result, stdio, logs, phase), logs, t0);
      }
    } catch (err) {
      this.pending = undefined;
      this.reset();
      throw err;
    }
  }

  private done<T extends Omit<SandboxResponse, 'logs' | 'timing'>>(result: T, logs: string[], t0: number): T & Pick<SandboxResponse, 'logs' | 'timing'> {
    const t1 = performance.now();
    const dirtyPages = this.reset();
    return { ...result, logs, timing: { callUs: us(t1 - t0), resetUs: us(performance.now() - t1), dirtyPages } };
  }

  /** Runs the guest until `deadline`; a timeout names the program's limit, not what was left of it. */
  private runUntil(deadline: number): RunResult {
    const limit = this.program.limits.timeoutMs;
    const left = deadline - performance.now();
    try {
      if (left <= 0) throw new SandboxError('timeout', '');
      return this.machine.run(left);
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

  private finishSdk(stdio: CaptureStdio, logs: string[], deadline: number, phase: Phase): DecodedResponse {
    return this.decodeSdk(this.runUntil(deadline), stdio, logs, phase);
  }

  private decodeSdk(result: RunResult, stdio: CaptureStdio, logs: string[], phase: Phase): DecodedResponse {
    keepLogLines(logs, stdio.lines());
    if (result.kind === 'exit') throw new SandboxError('fault', `program exited with status ${result.status} during a request`);
    return readResponse(this.machine.mem, this.responseAt, this.program.limits.maxResponseBytes, phase);
  }

  private callCgi(req: SandboxRequest, logs: string[]): Omit<SandboxResponse, 'logs' | 'timing'> {
    const { limits } = this.program;
    const m = this.machine;
    const stdio = new CaptureStdio(limits.maxResponseBytes + 64 * 1024, req.body);
    m.stdio = stdio;
    m.startAtEntry([this.name], cgiEnvironment(req, `/${this.name}`, this.env));
    const result = m.run(limits.timeoutMs);
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
  private reset(): number {
    return this.machine.restoreFrom(this.program.snapshot);
  }

  /** Frees this instance's VM. */
  close(): void {
    this.machine.close();
  }
}

