// The tenant-program host API, as small as TinyKVM's: load a program (it boots, initialises and
// is frozen), make instances from it, and let an instance handle a request. Every instance is
// reset to the frozen state after every request, whatever the request did.
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Kvm } from '../kvm/kvm.ts';
import { SandboxError } from '../vmm/errors.ts';
import { pageAlignUp } from '../vmm/layout.ts';
import { Machine } from '../vmm/machine.ts';
import { Snapshot } from '../vmm/snapshot.ts';
import { ENOSYS } from '../vmm/syscalls/errno.ts';
import { CALL_LOG, CALL_WAIT, readLogLine, readResponse, writeRequest } from './abi.ts';
import { cgiEnvironment, parseCgiOutput } from './cgi.ts';
import { CaptureStdio } from './stdio.ts';
import { PROGRAM_DEFAULTS, type ProgramOptions, type SandboxRequest, type SandboxResponse } from './types.ts';

const MAX_LOG_LINES = 100;
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

export class Program {
  readonly snapshot: Snapshot;
  readonly limits: Limits;
  readonly timing: LoadTiming;
  /** Guest address of the region requests are written to (SDK mode). */
  readonly requestRegion: number;
  private readonly name: string;
  private readonly env: readonly string[];
  /** The machine that booted the program: it stands at the snapshot and becomes the first instance. */
  private template: Machine | undefined;

  /** Boots and initialises `elf`, then freezes it. Throws SandboxError when that fails. */
  constructor(private readonly kvm: Kvm, elf: Buffer, options: ProgramOptions) {
    this.limits = {
      mode: options.mode,
      memoryMiB: options.memoryMiB ?? PROGRAM_DEFAULTS.memoryMiB,
      timeoutMs: options.timeoutMs ?? PROGRAM_DEFAULTS.timeoutMs,
      initTimeoutMs: options.initTimeoutMs ?? PROGRAM_DEFAULTS.initTimeoutMs,
      maxResponseBytes: options.maxResponseBytes ?? PROGRAM_DEFAULTS.maxResponseBytes,
      maxRequestBytes: options.maxRequestBytes ?? PROGRAM_DEFAULTS.maxRequestBytes,
    };
    this.name = options.name ?? 'program';
    this.env = options.env ?? [];
    const t0 = performance.now();
    const logs = new CaptureStdio(0);
    const machine = Machine.boot(kvm, elf, { memoryMiB: this.limits.memoryMiB, argv: [this.name], env: [...this.env], allowRead: options.allowRead, stdio: logs, resettable: true });
    try {
      const t1 = performance.now();
      let region = 0;
      if (this.limits.mode === 'sdk') {
        machine.hypercall = (m, call) => {
          if (call === CALL_WAIT) m.yield();
          return call === CALL_LOG ? 0 : -ENOSYS;
        };
        const result = machine.run(this.limits.initTimeoutMs);
        if (result.kind === 'exit') {
          const said = logs.text().trim().split('\n').slice(-3).join(' | ');
          throw new SandboxError('program', `program exited with status ${result.status} before calling wait_for_requests()${said ? `: ${said}` : ''}`);
        }
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

  /** A new instance: the machine that booted the program for the first call, then fresh VMs. */
  instance(): Instance {
    const template = this.template;
    this.template = undefined;
    const machine = template ?? Machine.fromSnapshot(this.kvm, this.snapshot, new CaptureStdio(0));
    return new Instance(this, machine, this.name, this.env);
  }

  close(): void {
    this.template?.close();
    this.template = undefined;
    this.snapshot.close();
  }
}

/** Per-request entropy comes from a pool refilled 4 KiB at a time: one CSPRNG call per 128 requests. */
const entropy = { pool: new Uint8Array(4096), used: 4096 };
function freshRandom(): Uint8Array {
  if (entropy.used + 32 > entropy.pool.length) {
    randomFillSync(entropy.pool);
    entropy.used = 0;
  }
  const out = entropy.pool.subarray(entropy.used, entropy.used + 32);
  entropy.used += 32;
  return out;
}

export class Instance {
  constructor(private readonly program: Program, private readonly machine: Machine, private readonly name: string, private readonly env: readonly string[]) {}

  /**
   * Runs one request and returns the response, or throws a SandboxError (timeout, fault,
   * out-of-memory, bad-response). Either way the instance is reset and ready for the next one.
   */
  handle(req: SandboxRequest): SandboxResponse {
    const { limits } = this.program;
    const logs: string[] = [];
    const t0 = performance.now();
    let failed = false;
    try {
      const result = limits.mode === 'sdk' ? this.callSdk(req, logs) : this.callCgi(req, logs);
      const t1 = performance.now();
      const dirtyPages = this.reset(false);
      return { ...result, logs, timing: { callUs: us(t1 - t0), resetUs: us(performance.now() - t1), dirtyPages } };
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      if (failed) this.reset(true);
    }
  }

  private callSdk(req: SandboxRequest, logs: string[]): Omit<SandboxResponse, 'logs' | 'timing'> {
    const { limits, requestRegion } = this.program;
    const m = this.machine;
    const stdio = new CaptureStdio(64 * 1024);
    m.stdio = stdio;
    const addr = writeRequest(m.mem, requestRegion, pageAlignUp(limits.maxRequestBytes), req, freshRandom());
    let response = 0;
    m.hypercall = (mm, call) => {
      if (call === CALL_LOG) {
        if (logs.length < MAX_LOG_LINES) logs.push(readLogLine(mm.mem, mm.vcpu.reg(40), mm.vcpu.reg(32)));
        return 0;
      }
      if (call === CALL_WAIT) {
        response = mm.vcpu.reg(40);
        mm.yield();
        return 0;
      }
      return -ENOSYS;
    };
    m.resume(addr);
    const result = m.run(limits.timeoutMs);
    logs.push(...stdio.lines());
    if (result.kind === 'exit') throw new SandboxError('fault', `program exited with status ${result.status} during a request`);
    const decoded = readResponse(m.mem, response, limits.maxResponseBytes);
    return decoded;
  }

  private callCgi(req: SandboxRequest, logs: string[]): Omit<SandboxResponse, 'logs' | 'timing'> {
    const { limits } = this.program;
    const m = this.machine;
    const stdio = new CaptureStdio(limits.maxResponseBytes + 64 * 1024, req.body);
    m.stdio = stdio;
    m.startAtEntry([this.name], cgiEnvironment(req, `/${this.name}`, this.env));
    const result = m.run(limits.timeoutMs);
    logs.push(...stdio.lines());
    if (result.kind !== 'exit') throw new SandboxError('bad-response', 'CGI program made an SDK call');
    if (stdio.overflowed) throw new SandboxError('bad-response', `response exceeds the limit of ${limits.maxResponseBytes} bytes`);
    const out = stdio.stdout();
    if (result.status !== 0 && out.length === 0) {
      throw new SandboxError('fault', `CGI program exited with status ${result.status}${result.signal ? ` (${result.signal})` : ''} without output`);
    }
    const parsed = parseCgiOutput(out);
    return { ...parsed, cache: { tags: [], uncacheable: false } };
  }

  /** Back to the snapshot. After a failure the vCPU may stand anywhere, so sregs go back too. */
  private reset(afterFailure: boolean): number {
    const m = this.machine;
    if (afterFailure) m.vcpu.setSregs(this.program.snapshot.sregs);
    return m.restoreFrom(this.program.snapshot);
  }

  close(): void {
    this.machine.close();
  }
}

