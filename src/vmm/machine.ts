// A tiny VM running one static Linux program: boots it (memory, page tables, descriptor tables,
// stubs, ELF, stack, long mode) and runs it, answering its system calls, until it exits, faults,
// runs out of time, or yields at a hypercall (where a snapshot can be taken). No guest kernel:
// the host is the kernel.
import { performance } from 'node:perf_hooks';
import * as K from '../kvm/constants.ts';
import type { Kvm } from '../kvm/kvm.ts';
import type { Vcpu } from '../kvm/vcpu.ts';
import type { Vm } from '../kvm/vm.ts';
import { Arena } from './memory/arena.ts';
import { enterLongMode, INITIAL_RFLAGS, MSR_FS_BASE } from './x86/cpu.ts';
import { acquireShell, cpuFeatures, destroyShell, releaseShell, type Shell } from './memory/shell.ts';
import { loadElf, type LoadedProgram } from './linux/elf.ts';
import { SandboxError } from './errors.ts';
import { describeException, HAS_ERROR_CODE } from './x86/faults.ts';
import { USER_CS, USER_DS, writeDescriptorTables } from './x86/gdt.ts';
import { computeLayout, GDT_ADDR, IST_STACK_TOP, type Layout, MiB, PAGE_SIZE, STUBS_ADDR, SYSCALL_FRAME_ADDR } from './x86/layout.ts';
import { GuestFault, GuestMemory } from './memory/guest-memory.ts';
import { buildPageTables, KERNEL_RW, mapPages, STUB_RX, USER_RW } from './x86/paging.ts';
import { EXCEPTION_VECTORS, PORT_EXCEPTION_BASE, PORT_HYPERCALL, PORT_SYSCALL } from './x86/ports.ts';
import type { DirtyLog } from './memory/dirty-log.ts';
import type { Snapshot } from './memory/snapshot.ts';
import { buildInitialStack } from './linux/stack.ts';
import { exceptionStub, IRETQ_RIP, OUT_IMM8_OPCODE, SCRUB_ENTRY, SCRUB_TARGET, stubCode, SYSCALL_ENTRY } from './x86/stubs.ts';
import type { ArgKind, Stdio, SyscallContext } from './linux/syscalls/context.ts';
import { EFAULT, ENOSYS, hostFsErrno } from './linux/syscalls/errno.ts';
import { FileTable } from './linux/syscalls/files.ts';
import { SYSCALL_TABLE } from './linux/syscalls/index.ts';
import { type ThreadTimer, threadTimerInstance } from './run/timer.ts';

const { REGS } = K;

export interface MachineOptions {
  /** Guest memory in MiB (a multiple of 2). */
  memoryMiB: number;
  argv: string[];
  env: string[];
  /** Host directories whose files the program may read. */
  allowRead?: readonly string[];
  stdio: Stdio;
  /** Track dirtied pages so the machine can be snapshotted and reset (request VMs). */
  resettable?: boolean;
}

/** How a run ended: the program exited (or killed itself), or it yielded at a hypercall. */
export type RunResult =
  | { kind: 'exit'; status: number; signal?: string }
  | { kind: 'yield'; call: number };

/** Answers hypercalls (`out` to PORT_HYPERCALL); returns the value for RAX, or calls `yield()`. */
export type HypercallHandler = (machine: Machine, call: number) => number;

/** A door call waiting for its answer: where the `out` was, and how to get back to ring 3. */
export interface PendingCall {
  rip: number;
  /** Set when the `out` arrived through #GP: the interrupted ring-3 RSP and RFLAGS. */
  trap?: { rsp: number; rflags: number };
}

const OUT_INSN_SIZE = 2;
const GP_VECTOR = 13;
/** The registers that carry system-call arguments on x86-64, in order. */
const SYSCALL_ARG_REGS = [REGS.rdi, REGS.rsi, REGS.rdx, REGS.r10, REGS.r8, REGS.r9] as const;

/** Argument `i` of a system call, read as its kind says (0 past the arguments the call takes). */
function syscallArg(vcpu: Vcpu, kinds: readonly ArgKind[], i: number): number {
  const reg = SYSCALL_ARG_REGS[i]!;
  switch (kinds[i]) {
    case 'int': return vcpu.reg32s(reg);
    case 'uint': return vcpu.reg32(reg);
    case 'long': return keepPageAlignment(vcpu.regSigned(reg), vcpu.reg32(reg));
    case 'ulong': return keepPageAlignment(vcpu.reg(reg), vcpu.reg32(reg));
    default: return 0;
  }
}

/**
 * A 64-bit register, rounded to the Number `v`, made to keep its page alignment. Every multiple of
 * PAGE_SIZE below 2^64 is exactly a Number, so a register that is not one (its low 32 bits are
 * `low`) must not round to one: a huge misaligned offset stays EINVAL. Numbers there are at most
 * 2048 apart, so half a page away (toward zero from 2^64, which has no room above) is one.
 */
function keepPageAlignment(v: number, low: number): number {
  if (low % PAGE_SIZE === 0 || v % PAGE_SIZE !== 0) return v;
  return v === 2 ** 64 ? v - PAGE_SIZE / 2 : v + Math.sign(v) * (PAGE_SIZE / 2);
}

/**
 * True when an `out` exit came from the ring-0 stub at `stub` and not from ring-3 code using the
 * same port. KVM reports RIP at the `out`; nested KVMs that emulate ring 0 may report it past it.
 */
function fromStub(rip: number, stub: number): boolean {
  return rip === stub || rip === stub + OUT_INSN_SIZE;
}

export class Machine implements SyscallContext {
  readonly vm: Vm;
  readonly vcpu: Vcpu;
  readonly mem: GuestMemory;
  readonly layout: Layout;
  readonly arena: Arena;
  readonly files: FileTable;
  readonly program: LoadedProgram;
  stdio: Stdio;
  hypercall: HypercallHandler = () => -ENOSYS;
  readonly dirtyLog: DirtyLog | undefined;
  private readonly shell: Shell;
  /** Set when KVM failed on this VM: its shell is destroyed, not reused. */
  private broken = false;
  private exitResult: RunResult | undefined;
  private yielded = false;
  /** The door call the guest is stopped in, answered by `resume()`. */
  pending: PendingCall | undefined;
  private outOfMemory = false;
  private fsBase = 0n;
  /** Wall time the vCPU spent running guest code (inside KVM_RUN): the program's CPU time. */
  private cpuMs = 0;
  /** The next return to ring 3 is the first since a boot or reset: it nulls DS and ES on the way. */
  private scrubSegments = true;
  private deadline = Infinity;
  private readonly sleepCell = new Int32Array(new SharedArrayBuffer(4));

  /** Boots `elf` in a new VM; the vCPU stands at the program's entry point. */
  static boot(kvm: Kvm, elf: Buffer, options: MachineOptions): Machine {
    const memoryMiB = options.memoryMiB;
    if (!Number.isInteger(memoryMiB) || memoryMiB < 4 || memoryMiB % 2 !== 0) {
      throw new SandboxError('program', `guest memory must be an even number of MiB, at least 4 (got ${memoryMiB})`);
    }
    const layout = computeLayout(memoryMiB * MiB);
    const shell = acquireShell(kvm, layout.memorySize, options.resettable ?? false);
    return new Machine(shell, layout, true, options, (m) => m.writeGuest(elf), (m) => {
      enterLongMode(m.vcpu, cpuFeatures(kvm));
      m.startAtEntry(options.argv, options.env);
    });
  }

  /** A new VM whose memory is a copy-on-write view of `snapshot`, stopped where it was taken. */
  static fromSnapshot(kvm: Kvm, snapshot: Snapshot, stdio: Stdio): Machine {
    const shell = acquireShell(kvm, snapshot.layout.memorySize, true, snapshot.memfd);
    const options: MachineOptions = { memoryMiB: snapshot.layout.memorySize / MiB, argv: [], env: [], allowRead: snapshot.allowRead, stdio, resettable: true };
    return new Machine(shell, snapshot.layout, false, options, (m) => {
      m.mem.userStart = snapshot.userStart;
      m.mem.userEnd = snapshot.userEnd;
      return snapshot.program;
    }, (m) => {
      m.vcpu.setSregs(snapshot.sregs);
      m.restoreFrom(snapshot, true);
    });
  }

  /**
   * Runs in `shell` (from the pool). `load` puts the program in memory and says where it is;
   * `start` sets the vCPU going.
   */
  private constructor(shell: Shell, layout: Layout, anonymous: boolean, options: MachineOptions, load: (m: Machine) => LoadedProgram, start: (m: Machine) => void) {
    this.shell = shell;
    this.vm = shell.vm;
    this.vcpu = shell.vcpu;
    this.dirtyLog = shell.dirtyLog;
    this.layout = layout;
    this.mem = new GuestMemory(shell.mapping, anonymous, 0, 0);
    this.stdio = options.stdio;
    this.files = new FileTable(options.allowRead ?? []);
    try {
      this.program = load(this);
      this.arena = new Arena(this.program.end, layout.arenaEnd);
      start(this);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private writeGuest(elf: Buffer): LoadedProgram {
    const { mem, layout } = this;
    buildPageTables(mem, layout);
    writeDescriptorTables(mem);
    mem.bytes.set(stubCode(), STUBS_ADDR);
    mem.markDirty(STUBS_ADDR, PAGE_SIZE);
    mapPages(mem, layout, GDT_ADDR, STUBS_ADDR - GDT_ADDR, KERNEL_RW);
    mapPages(mem, layout, STUBS_ADDR, PAGE_SIZE, STUB_RX);
    mapPages(mem, layout, STUBS_ADDR + PAGE_SIZE, IST_STACK_TOP - STUBS_ADDR - PAGE_SIZE, KERNEL_RW);
    const program = loadElf(elf, mem, layout);
    mapPages(mem, layout, program.end, layout.arenaEnd - program.end, USER_RW);
    mapPages(mem, layout, layout.stackBottom, layout.stackTop - layout.stackBottom, USER_RW);
    mem.userStart = program.start;
    mem.userEnd = layout.stackTop;
    return program;
  }

  /** Points the vCPU at the program's entry with a fresh initial stack (argv, env, auxv). */
  startAtEntry(argv: string[], env: string[]): void {
    const program = this.program;
    const sp = buildInitialStack(this.mem, this.layout.stackTop, program, { argv, env, hwcap: cpuFeatures(this.vm.kvm).hwcap });
    this.vcpu.regsBytes().fill(0);
    this.vcpu.setReg(REGS.rflags, 0x2);
    this.scrubSegments = true;
    this.returnToUser(program.entry, sp, INITIAL_RFLAGS);
  }

  // --- SyscallContext -------------------------------------------------------------------------

  exit(status: number, signal?: string): void {
    this.exitResult = signal ? { kind: 'exit', status, signal } : { kind: 'exit', status };
  }

  setFsBase(value: bigint): void {
    this.vcpu.setMsrs([{ index: MSR_FS_BASE, value }]);
    this.fsBase = value;
  }

  getFsBase(): bigint {
    return this.fsBase;
  }

  sleep(ms: number): void {
    const left = Math.min(ms, this.deadline - performance.now());
    if (left > 0) Atomics.wait(this.sleepCell, 0, 0, left);
  }

  remainingMs(): number {
    return Math.max(0, this.deadline - performance.now());
  }

  noteOutOfMemory(): void {
    this.outOfMemory = true;
  }

  cpuTimeNs(): number {
    return Math.round(this.cpuMs * 1e6);
  }

  // --- running --------------------------------------------------------------------------------

  /** Called by a hypercall handler: stop the run after this call, leaving it pending. */
  yield(): void {
    this.yielded = true;
  }

  /**
   * Runs the program for at most `timeoutMs` of wall-clock time, until it exits or yields.
   * Throws a SandboxError for a fault, a timeout, or anything else that is not the program's doing.
   */
  run(timeoutMs: number): RunResult {
    const timer = threadTimerInstance();
    this.deadline = performance.now() + timeoutMs;
    this.exitResult = undefined;
    timer.ensure(this.deadline);
    try {
      return this.loop(timeoutMs, timer);
    } finally {
      timer.settle();
    }
  }

  private loop(timeoutMs: number, timer: ThreadTimer): RunResult {
    const vcpu = this.vcpu;
    for (;;) {
      const entered = performance.now();
      const reason = vcpu.enter();
      this.cpuMs += performance.now() - entered;
      if (reason === K.KVM_EXIT_IO) {
        const port = vcpu.ioPort();
        const vector = port - PORT_EXCEPTION_BASE;
        if (vector >= 0 && vector < EXCEPTION_VECTORS && fromStub(vcpu.reg(REGS.rip), exceptionStub(vector))) {
          if (vector !== GP_VECTOR || !this.trappedOut()) throw this.exception(vector);
        } else {
          this.out(port, { rip: vcpu.reg(REGS.rip) });
        }
        if (this.exitResult) return this.exitResult;
        if (this.yielded) {
          this.yielded = false;
          return { kind: 'yield', call: vcpu.reg32(REGS.rax) };
        }
      } else if (reason === K.KVM_EXIT_INTR) {
        // A timer armed for an earlier, shorter run fired: aim it at this run's deadline.
        if (performance.now() < this.deadline) timer.ensure(this.deadline);
      } else {
        throw this.unexpectedExit(reason);
      }
      if (performance.now() >= this.deadline) {
        throw new SandboxError('timeout', `program ran past its ${timeoutMs} ms time limit`);
      }
    }
  }

  /**
   * A #GP whose faulting instruction is `out imm8, al` is a door that this KVM did not let exit
   * directly (IOPL 0 in ring 3): handle it as that `out`. Returns false for any other #GP.
   */
  private trappedOut(): boolean {
    const frame = this.vcpu.reg(REGS.rsp);
    if (frame + 6 * 8 > IST_STACK_TOP) return false;
    const rip = this.mem.u64Raw(frame + 8);
    if (rip + 2 > this.layout.memorySize || this.mem.bytes[rip] !== OUT_IMM8_OPCODE) return false;
    this.out(this.mem.bytes[rip + 1]!, { rip, trap: { rsp: this.mem.u64Raw(frame + 32), rflags: this.mem.u64Raw(frame + 24) } });
    return true;
  }

  /** Handles an `out` to `port`: a system call, or a hypercall that is answered now or later. */
  private out(port: number, call: PendingCall): void {
    const v = this.vcpu;
    if (port === PORT_SYSCALL && fromStub(call.rip, SYSCALL_ENTRY)) {
      const result = this.syscall();
      if (this.exitResult) return;
      // `syscall` left the return address in RCX and the caller's RFLAGS in R11.
      this.returnToUser(v.reg(REGS.rcx), call.trap ? call.trap.rsp : v.reg(REGS.rsp), v.reg(REGS.r11));
      v.setReg(REGS.rax, result);
    } else if (port === PORT_HYPERCALL) {
      this.pending = call;
      let result: number;
      try {
        result = this.hypercall(this, v.reg32(REGS.rax));
      } catch (err) {
        // A bad pointer in a hypercall fails the call inside the guest, never the host.
        if (!(err instanceof GuestFault)) throw err;
        result = -EFAULT;
      }
      if (!this.yielded && !this.exitResult) this.resume(result);
    } else {
      throw new SandboxError('fault', `program wrote to I/O port 0x${port.toString(16)} (rip 0x${call.rip.toString(16)})`);
    }
  }

  /** Answers the pending hypercall with `value`; the next `run()` continues after it. */
  resume(value: number): void {
    const call = this.pending;
    if (!call) throw new Error('no hypercall is pending');
    this.pending = undefined;
    if (call.trap) this.returnToUser(call.rip + OUT_INSN_SIZE, call.trap.rsp, call.trap.rflags);
    else {
      // A direct return: KVM loads the segments of a reset from the sync regs (restoreFrom).
      this.scrubSegments = false;
      this.vcpu.setReg(REGS.rip, call.rip + OUT_INSN_SIZE);
    }
    this.vcpu.setReg(REGS.rax, value);
  }

  /** Answers the system call in the registers; returns the value for RAX. */
  private syscall(): number {
    const v = this.vcpu;
    // The kernel takes the number from EAX (an int): the upper half of RAX does not count.
    const call = SYSCALL_TABLE[v.reg32(REGS.rax)];
    if (!call) return -ENOSYS;
    const { args } = call;
    try {
      return call.handler(this, syscallArg(v, args, 0), syscallArg(v, args, 1), syscallArg(v, args, 2), syscallArg(v, args, 3), syscallArg(v, args, 4), syscallArg(v, args, 5));
    } catch (err) {
      if (err instanceof GuestFault) return -EFAULT;
      // A host file-system error on the guest's behalf is the errno the kernel would answer.
      const errno = hostFsErrno(err);
      if (errno !== undefined) return -errno;
      throw err;
    }
  }

  /** Writes the iretq frame (RIP, CS, RFLAGS, RSP, SS) and continues at the stubs' `iretq` (ring 0). */
  private returnToUser(rip: number, rsp: number, rflags: number): void {
    const view = this.mem.view;
    if (this.scrubSegments) {
      // Enter ring 3 at the scrub code, which goes on to `rip`.
      view.setBigUint64(SCRUB_TARGET, BigInt(rip), true);
      this.mem.markDirty(SCRUB_TARGET, 8);
      rip = SCRUB_ENTRY;
      this.scrubSegments = false;
    }
    view.setBigUint64(SYSCALL_FRAME_ADDR, BigInt(rip), true);
    view.setBigUint64(SYSCALL_FRAME_ADDR + 8, BigInt(USER_CS), true);
    view.setBigUint64(SYSCALL_FRAME_ADDR + 16, BigInt(rflags), true);
    view.setBigUint64(SYSCALL_FRAME_ADDR + 24, BigInt(rsp), true);
    view.setBigUint64(SYSCALL_FRAME_ADDR + 32, BigInt(USER_DS), true);
    this.mem.markDirty(SYSCALL_FRAME_ADDR, 40);
    this.vcpu.setReg(REGS.rsp, SYSCALL_FRAME_ADDR);
    this.vcpu.setReg(REGS.rip, IRETQ_RIP);
  }

  // --- snapshot and reset ---------------------------------------------------------------------

  /** The host-side state a snapshot records besides memory and vCPU registers. */
  hostState(): { arena: ReturnType<Arena['save']>; files: ReturnType<FileTable['save']>; fsBase: bigint; pending: PendingCall | undefined; cpuMs: number } {
    return { arena: this.arena.save(), files: this.files.save(), fsBase: this.fsBase, pending: this.pending && { ...this.pending }, cpuMs: this.cpuMs };
  }

  /**
   * Puts the machine back to `snapshot`: every page dirtied since (by the guest or the host), the
   * registers, FPU/AVX state, FS base, and the host-side state; returns the pages copied back.
   * `fresh` is for a new VM whose memory already is the snapshot.
   */
  restoreFrom(snapshot: Snapshot, fresh = false): number {
    const pages = fresh ? 0 : this.dirtyLog!.restorePages(this.mem, snapshot);
    this.vcpu.regsBytes().set(snapshot.regs);
    this.vcpu.markRegsDirty();
    this.vcpu.setXsave(snapshot.xsave);
    // Segments go back whole, with their FS and GS bases: a request may have changed them without
    // the host seeing it (wrfsbase, wrgsbase, loading a selector), and after a failure the vCPU may
    // stand in ring 0. A new VM got them from KVM_SET_SREGS already.
    if (!fresh) this.vcpu.setSregsOnEntry(snapshot.sregs);
    this.scrubSegments = true;
    this.fsBase = snapshot.host.fsBase;
    this.cpuMs = snapshot.host.cpuMs;
    this.arena.restore(snapshot.host.arena);
    this.files.restore(snapshot.host.files);
    this.pending = snapshot.host.pending && { ...snapshot.host.pending };
    this.exitResult = undefined;
    this.yielded = false;
    this.outOfMemory = false;
    return pages;
  }

  // --- failures -------------------------------------------------------------------------------

  private exception(vector: number): SandboxError {
    const frame = this.vcpu.reg(REGS.rsp);
    const withCode = HAS_ERROR_CODE.has(vector);
    const read = (i: number): number => (frame + i * 8 + 8 <= IST_STACK_TOP ? this.mem.u64Raw(frame + i * 8) : 0);
    const sregs = this.vcpu.getSregs();
    const info = {
      vector,
      errorCode: withCode ? read(0) : 0,
      rip: read(withCode ? 1 : 0),
      address: Number(sregs.readBigUInt64LE(K.SREGS.cr2)),
    };
    const message = describeException(info, this.layout);
    if (this.outOfMemory) return new SandboxError('out-of-memory', `out of guest memory (${this.layout.memorySize / MiB} MiB): ${message}`);
    return new SandboxError('fault', message);
  }

  private unexpectedExit(reason: number): SandboxError {
    const rip = `rip 0x${this.vcpu.reg(REGS.rip).toString(16)}`;
    switch (reason) {
      case K.KVM_EXIT_SHUTDOWN: return new SandboxError('fault', `guest CPU shut down (triple fault, ${rip})`);
      case K.KVM_EXIT_HLT: return new SandboxError('fault', `guest halted (${rip})`);
      case K.KVM_EXIT_MMIO: return new SandboxError('fault', `access outside guest memory (${rip})`);
      case K.KVM_EXIT_FAIL_ENTRY: this.broken = true; return new SandboxError('internal', `KVM could not enter the guest (reason 0x${this.vcpu.failEntryReason().toString(16)})`);
      case K.KVM_EXIT_INTERNAL_ERROR: this.broken = true; return new SandboxError('internal', `KVM internal error ${this.vcpu.internalSuberror()} (${rip})`);
      default: this.broken = true; return new SandboxError('internal', `unexpected KVM exit ${reason} (${rip})`);
    }
  }

  /** Ends the machine; its shell goes back to the pool unless KVM itself failed on it. */
  close(): void {
    this.files.closeAll();
    if (this.broken) destroyShell(this.shell);
    else releaseShell(this.shell);
  }
}
