// A tiny VM running one static Linux program: boots it (memory, page tables, descriptor tables,
// stubs, ELF, stack, long mode) and runs it, answering its system calls, until it exits, faults
// or runs out of time. No guest kernel: the host is the kernel.
import { performance } from 'node:perf_hooks';
import * as K from '../kvm/constants.ts';
import type { Kvm } from '../kvm/kvm.ts';
import type { Vcpu } from '../kvm/vcpu.ts';
import type { Vm } from '../kvm/vm.ts';
import { Arena } from './arena.ts';
import { type CpuFeatures, hostCpuFeatures, INITIAL_RFLAGS, MSR_FS_BASE, setupLongMode } from './cpu.ts';
import { loadElf, type LoadedProgram } from './elf.ts';
import { SandboxError } from './errors.ts';
import { describeException, HAS_ERROR_CODE } from './faults.ts';
import { USER_CS, USER_DS, writeDescriptorTables } from './gdt.ts';
import { computeLayout, GDT_ADDR, IST_STACK_TOP, type Layout, MiB, PAGE_SIZE, STUBS_ADDR, SYSCALL_FRAME_ADDR } from './layout.ts';
import { GuestFault, GuestMemory } from './memory.ts';
import { buildPageTables, KERNEL_RW, mapPages, STUB_RX, USER_RW } from './paging.ts';
import { EXCEPTION_VECTORS, PORT_EXCEPTION_BASE, PORT_HYPERCALL, PORT_SYSCALL } from './ports.ts';
import { buildInitialStack } from './stack.ts';
import { exceptionStub, IRETQ_RIP, OUT_IMM8_OPCODE, stubCode, SYSCALL_ENTRY } from './stubs.ts';
import type { Stdio, SyscallContext } from './syscalls/context.ts';
import { ENOSYS, EFAULT } from './syscalls/errno.ts';
import { FileTable } from './syscalls/files.ts';
import { SYSCALL_TABLE } from './syscalls/index.ts';
import { threadTimerInstance } from './timer.ts';

const { REGS } = K;

export interface MachineOptions {
  /** Guest memory in MiB (a multiple of 2). */
  memoryMiB: number;
  argv: string[];
  env: string[];
  /** Host directories whose files the program may read. */
  allowRead?: readonly string[];
  stdio: Stdio;
}

/** How a run ended when the program itself ended it. */
export interface ExitResult {
  status: number;
  /** Set when the program killed itself with a signal (abort() → SIGABRT); status is 128 + signal. */
  signal?: string;
}

/** Answers hypercalls (`out` to PORT_HYPERCALL from ring 3); returns the value for RAX. */
export type HypercallHandler = (machine: Machine) => number;

const featureCache = new WeakMap<Kvm, CpuFeatures>();
const OUT_INSN_SIZE = 2;
const GP_VECTOR = 13;

/**
 * True when an `out` exit came from the ring-0 stub at `stub` and not from ring-3 code using the
 * same port (IOPL 3 lets ring 3 reach every port). KVM reports RIP at the `out`; nested KVMs that
 * emulate ring-0 code may report it already past the instruction.
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
  readonly stdio: Stdio;
  readonly program: LoadedProgram;
  hypercall: HypercallHandler = () => -ENOSYS;
  private exitResult: ExitResult | undefined;
  private outOfMemory = false;
  private fsBase = 0n;
  private deadline = Infinity;
  private readonly sleepCell = new Int32Array(new SharedArrayBuffer(4));

  constructor(kvm: Kvm, elf: Buffer, options: MachineOptions) {
    const memoryMiB = options.memoryMiB;
    if (!Number.isInteger(memoryMiB) || memoryMiB < 4 || memoryMiB % 2 !== 0) {
      throw new SandboxError('program', `guest memory must be an even number of MiB, at least 4 (got ${memoryMiB})`);
    }
    this.layout = computeLayout(memoryMiB * MiB);
    this.stdio = options.stdio;
    this.files = new FileTable(options.allowRead ?? []);
    this.mem = new GuestMemory(this.layout.memorySize, 0, 0);
    this.vm = kvm.createVm();
    try {
      this.vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, size: this.layout.memorySize, userspaceAddr: this.mem.hostAddress });
      this.vcpu = this.vm.createVcpu(0);
      this.program = this.writeGuest(elf);
      this.arena = new Arena(this.program.end, this.layout.arenaEnd);
      let features = featureCache.get(kvm);
      if (!features) featureCache.set(kvm, (features = hostCpuFeatures(kvm)));
      setupLongMode(kvm, this.vcpu, features);
      const sp = buildInitialStack(this.mem, this.layout.stackTop, this.program, { argv: options.argv, env: options.env, hwcap: features.hwcap });
      this.vcpu.regsBytes().fill(0);
      this.returnToUser(this.program.entry, sp, INITIAL_RFLAGS);
      this.vcpu.setReg(REGS.rip, IRETQ_RIP);
      this.vcpu.setReg(REGS.rflags, 0x2);
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

  // --- SyscallContext -------------------------------------------------------------------------

  exit(status: number, signal?: string): void {
    this.exitResult = signal ? { status, signal } : { status };
  }

  setFsBase(value: bigint): void {
    this.fsBase = value;
    this.vcpu.setMsrs([{ index: MSR_FS_BASE, value }]);
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

  // --- running --------------------------------------------------------------------------------

  /**
   * Runs the program until it exits, for at most `timeoutMs` of wall-clock time. Throws a
   * SandboxError for a fault, a timeout or anything else that is not the program's own exit.
   */
  run(timeoutMs: number): ExitResult {
    const timer = threadTimerInstance();
    this.deadline = performance.now() + timeoutMs;
    timer.arm(timeoutMs);
    try {
      return this.loop(timeoutMs);
    } finally {
      timer.disarm();
    }
  }

  private loop(timeoutMs: number): ExitResult {
    const vcpu = this.vcpu;
    for (;;) {
      const reason = vcpu.enter();
      if (reason === K.KVM_EXIT_IO) {
        const port = vcpu.ioPort();
        const vector = port - PORT_EXCEPTION_BASE;
        if (vector >= 0 && vector < EXCEPTION_VECTORS && fromStub(vcpu.reg(REGS.rip), exceptionStub(vector))) {
          if (vector !== GP_VECTOR || !this.trappedOut()) throw this.exception(vector);
        } else {
          this.out(port, vcpu.reg(REGS.rip), undefined);
        }
        if (this.exitResult) return this.exitResult;
      } else if (reason !== K.KVM_EXIT_INTR) {
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
    this.out(this.mem.bytes[rip + 1]!, rip, { rsp: this.mem.u64Raw(frame + 32), rflags: this.mem.u64Raw(frame + 24) });
    return true;
  }

  /**
   * Handles an `out` at `rip` to `port`. `trap` holds the interrupted ring-3 RSP and RFLAGS when
   * the `out` arrived through #GP; then the host must also return to ring 3 itself.
   */
  private out(port: number, rip: number, trap: { rsp: number; rflags: number } | undefined): void {
    const v = this.vcpu;
    if (port === PORT_SYSCALL && fromStub(rip, SYSCALL_ENTRY)) {
      const result = this.syscall();
      if (this.exitResult) return;
      // `syscall` left the return address in RCX and the caller's RFLAGS in R11.
      this.returnToUser(v.reg(REGS.rcx), trap ? trap.rsp : v.reg(REGS.rsp), v.reg(REGS.r11));
      v.setReg(REGS.rax, result);
    } else if (port === PORT_HYPERCALL) {
      const result = this.hypercall(this);
      if (this.exitResult) return;
      if (trap) this.returnToUser(rip + 2, trap.rsp, trap.rflags);
      v.setReg(REGS.rax, result);
    } else {
      throw new SandboxError('fault', `program wrote to I/O port 0x${port.toString(16)} (rip 0x${rip.toString(16)})`);
    }
  }

  /** Answers the system call in the registers; returns the value for RAX. */
  private syscall(): number {
    const v = this.vcpu;
    const nr = v.reg(REGS.rax);
    const handler = nr < SYSCALL_TABLE.length ? SYSCALL_TABLE[nr] : undefined;
    if (!handler) return -ENOSYS;
    try {
      return handler(this, v.reg(REGS.rdi), v.reg(REGS.rsi), v.reg(REGS.rdx), v.reg(REGS.r10), v.reg(REGS.r8), v.reg(REGS.r9));
    } catch (err) {
      if (err instanceof GuestFault) return -EFAULT;
      throw err;
    }
  }

  /** Writes the iretq frame (RIP, CS, RFLAGS, RSP, SS) the stubs' `iretq` pops, and points RSP at it. */
  private returnToUser(rip: number, rsp: number, rflags: number): void {
    const view = this.mem.view;
    view.setBigUint64(SYSCALL_FRAME_ADDR, BigInt(rip), true);
    view.setBigUint64(SYSCALL_FRAME_ADDR + 8, BigInt(USER_CS), true);
    view.setBigUint64(SYSCALL_FRAME_ADDR + 16, BigInt(rflags), true);
    view.setBigUint64(SYSCALL_FRAME_ADDR + 24, BigInt(rsp), true);
    view.setBigUint64(SYSCALL_FRAME_ADDR + 32, BigInt(USER_DS), true);
    this.vcpu.setReg(REGS.rsp, SYSCALL_FRAME_ADDR);
  }

  private exception(vector: number): SandboxError {
    const frame = this.vcpu.reg(REGS.rsp);
    const withCode = HAS_ERROR_CODE.has(vector);
    const read = (i: number): number => (frame + i * 8 + 8 <= IST_STACK_TOP ? this.mem.view.getUint32(frame + i * 8, true) + this.mem.view.getUint32(frame + i * 8 + 4, true) * 0x1_0000_0000 : 0);
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
      case K.KVM_EXIT_FAIL_ENTRY: return new SandboxError('internal', `KVM could not enter the guest (reason 0x${this.vcpu.failEntryReason().toString(16)})`);
      case K.KVM_EXIT_INTERNAL_ERROR: return new SandboxError('internal', `KVM internal error ${this.vcpu.internalSuberror()} (${rip})`);
      default: return new SandboxError('internal', `unexpected KVM exit ${reason} (${rip})`);
    }
  }

  close(): void {
    this.files.closeAll();
    this.vcpu?.close();
    this.vm.close();
    this.mem.free();
  }
}

