// The tenant-program host API, as small as TinyKVM's: load a program (it boots, initialises and
// is frozen), make instances from it (instance.ts), and let an instance handle a request. Every
// instance is reset to the frozen state after every request, whatever the request did.
import { performance } from 'node:perf_hooks';
import type { Kvm } from '../kvm/kvm.ts';
import { SandboxError } from '../vmm/errors.ts';
import { requestRegionBytes, requestRoom } from './batch-abi.ts';
import { Machine } from '../vmm/machine.ts';
import { type ExportedSnapshot, Snapshot } from '../vmm/memory/snapshot.ts';
import { ENOSYS } from '../vmm/linux/syscalls/errno.ts';
import { CALL_LOG, CALL_WAIT, checkAbiVersion } from './abi.ts';
import { Instance } from './instance.ts';
import { CaptureStdio } from './stdio.ts';
import { sdkTracer } from './trace.ts';
import { checkWarmup, liveRestore, warmUp } from './warmup.ts';
import type { Tracer } from '../vmm/run/trace.ts';
import { PROGRAM_DEFAULTS, type ProgramOptions } from './types.ts';

const us = (ms: number): number => Math.round(ms * 1000);

/** Costs of loading, for benchmarks and logs. */
export interface LoadTiming {
  /** VM creation, page tables, ELF, stack. */
  bootUs: number;
  /** main() up to wait_for_requests(), and the warm-up requests before the snapshot (SDK); 0 for CGI. */
  initUs: number;
  snapshotUs: number;
}

type Limits = Required<Omit<ProgramOptions, 'env' | 'allowRead' | 'name' | 'warmup' | 'liveRestore'>>;

/** A lifecycle the program cannot have, or a reset bound that is no bound, is refused before it boots. */
function checkLifecycle(limits: Limits): void {
  if (limits.lifecycle !== 'ephemeral' && limits.lifecycle !== 'persistent') throw new SandboxError('program', `unknown lifecycle ${String(limits.lifecycle)}: expected ephemeral or persistent`);
  if (limits.lifecycle === 'persistent' && limits.mode !== 'sdk') throw new SandboxError('program', 'a persistent lifecycle needs an SDK program: a CGI program starts afresh for every request');
  const { resetAfterRequests: n, resetAboveDirtyBytes: bytes } = limits;
  if (n !== Infinity && (!Number.isSafeInteger(n) || n < 1)) throw new SandboxError('program', `resetAfterRequests must be a positive integer, got ${n}`);
  if (bytes !== Infinity && (!Number.isFinite(bytes) || bytes <= 0)) throw new SandboxError('program', `resetAboveDirtyBytes must be a positive size, got ${bytes}`);
}

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
  readonly abiVersion: number;
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
  /** The SDK ABI version the program declared at its first WAIT (1 for CGI: none). */
  readonly abiVersion: number;
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
      this.abiVersion = source.abiVersion;
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
      lifecycle: options.lifecycle ?? PROGRAM_DEFAULTS.lifecycle,
      resetAfterRequests: options.resetAfterRequests ?? PROGRAM_DEFAULTS.resetAfterRequests,
      resetAboveDirtyBytes: options.resetAboveDirtyBytes ?? PROGRAM_DEFAULTS.resetAboveDirtyBytes,
    };
    checkLifecycle(this.limits);
    checkWarmup(options.warmup);
    if (options.warmup && this.limits.mode !== 'sdk') throw new SandboxError('program', 'a warm-up before the snapshot needs an SDK program: a CGI program starts afresh for every request');
    this.name = options.name ?? 'program';
    this.env = options.env ?? [];
    const t0 = performance.now();
    const logs = new CaptureStdio(0, undefined, true);
    const machine = Machine.boot(kvm, elf, { memoryMiB: this.limits.memoryMiB, argv: [this.name], env: [...this.env], allowRead: options.allowRead, stdio: logs, resettable: true, executableMemory: this.limits.executableMemory });
    if (options.trace) machine.trace = this.tracer = sdkTracer(options.trace);
    try {
      const t1 = performance.now();
      let region = 0;
      let version = 1;
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
        version = checkAbiVersion(abiVersion);
        region = machine.arena.allocate(requestRegionBytes(this.limits.maxRequestBytes));
        if (region < 0) throw new SandboxError('out-of-memory', `no room for a ${this.limits.maxRequestBytes}-byte request buffer in ${this.limits.memoryMiB} MiB of guest memory`);
        const { timeoutMs, maxResponseBytes, maxRequestBytes, initTimeoutMs } = this.limits;
        const target = { machine, room: requestRoom(region, maxRequestBytes), abiVersion: version, timeoutMs, maxResponseBytes, deadline: t1 + initTimeoutMs, logs };
        // The previous version's state first, so that the warm-up warms what instances will hold.
        if (options.liveRestore && this.limits.lifecycle === 'persistent') liveRestore(target, options.liveRestore);
        if (options.warmup) warmUp(target, options.warmup);
      }
      const t2 = performance.now();
      this.snapshot = new Snapshot(machine);
      this.requestRegion = region;
      this.abiVersion = version;
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
    return { snapshot: this.snapshot.export(), limits: this.limits, timing: this.timing, requestRegion: this.requestRegion, abiVersion: this.abiVersion, name: this.name, env: this.env };
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

