// The machine's run loop, kept apart from boot and restore as TinyKVM keeps `vcpu_run` apart:
// enter the guest, take each exit and answer it — a system call (linux/syscalls), a hypercall
// (the handler the sandbox installs), a CPU exception (a fault report) — until the program exits,
// yields at a hypercall, faults, or runs past its deadline. It holds what a run carries from exit
// to exit and from run to run: the door call left pending, the deadline, the program's CPU time,
// and the program's threads (scheduler.ts), switched at the calls that block and at the timer,
// and its signals (delivery.ts), delivered on each return to ring 3.
import { performance } from 'node:perf_hooks';
import { type RegName, REGS, SREGS } from '../../kvm/constants.ts';
import type { Vcpu, VcpuExit } from '../../kvm/vcpu.ts';
import { SandboxError } from '../errors.ts';
import type { Machine } from '../machine.ts';
import type { ArgKind } from '../linux/syscalls/context.ts';
import { EFAULT, ENOSYS, hostFsErrno } from '../linux/syscalls/errno.ts';
import { SYSCALL_TABLE } from '../linux/syscalls/index.ts';
import type { SignalTableState } from '../linux/signals.ts';
import { GuestFault, type GuestMemory } from '../memory/guest-memory.ts';
import { describeException, HAS_ERROR_CODE } from '../x86/faults.ts';
import { USER_CS, USER_DS } from '../x86/gdt.ts';
import { IST_STACK_TOP, type Layout, MiB, PAGE_SIZE, SYSCALL_FRAME_ADDR } from '../x86/layout.ts';
import { EXCEPTION_VECTORS, PORT_EXCEPTION_BASE, PORT_HYPERCALL, PORT_SYSCALL } from '../x86/ports.ts';
import { symbolize } from '../linux/symbols.ts';
import { exceptionStub, IRETQ_RIP, OUT_IMM8_OPCODE, SCRUB_ENTRY, SCRUB_TARGET, SWITCH_ENTRY, SWITCH_RAX, SYSCALL_ENTRY } from '../x86/stubs.ts';
import { SignalDelivery } from './delivery.ts';
import { Scheduler } from './scheduler.ts';
import type { ThreadTableState } from './threads.ts';
import { type ThreadTimer, threadTimerInstance } from './timer.ts';

/**
 * How a run ended: the program exited (or killed itself), yielded at a hypercall, or was still
 * running at the end of its slice (the next run continues it).
 */
export type RunResult =
  | { kind: 'exit'; status: number; signal?: string }
  | { kind: 'yield'; call: number }
  | { kind: 'preempted' };

/** A door call waiting for its answer: where the `out` was, and how to get back to ring 3. */
export interface PendingCall {
  rip: number;
  /** Set when the `out` arrived through #GP: the interrupted ring-3 RSP and RFLAGS. */
  trap?: { rsp: number; rflags: number };
}

/** What a snapshot keeps of the run state. */
export interface RunState {
  pending: PendingCall | undefined;
  cpuMs: number;
  threads: ThreadTableState;
  signals: SignalTableState;
}

const OUT_INSN_SIZE = 2;
/** The timer is never aimed closer than this: a check that is due now is one this soon. */
const MIN_TIMER_MS = 0.5;
const GP_VECTOR = 13;
const PF_VECTOR = 14;
/** Page-fault error code bits: the access was a write, came from ring 3, hit a reserved bit, was an instruction fetch. */
const PF_WRITE = 0x2, PF_USER = 0x4, PF_RSVD = 0x8, PF_FETCH = 0x10;
/** The registers that carry system-call arguments on x86-64, in order. */
const SYSCALL_ARG_REGS: readonly RegName[] = ['rdi', 'rsi', 'rdx', 'r10', 'r8', 'r9'];

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

export class RunLoop {
  private readonly vcpu: Vcpu;
  private readonly mem: GuestMemory;
  private readonly layout: Layout;
  private exitResult: RunResult | undefined;
  private yielded = false;
  /** The door call the guest is stopped in, answered by `resume()`. */
  private pending: PendingCall | undefined;
  private outOfMemory = false;
  /** Wall time the vCPU spent running guest code (inside KVM_RUN): the program's CPU time. */
  private cpuMs = 0;
  /**
   * The next return to ring 3 is the first since a boot or reset: it nulls DS and ES and sets FS
   * and GS base on the way (the scrub and switch code on the stub page).
   */
  private scrubSegments = true;
  /** SWITCH_RAX must get the vCPU's RAX before the next entry (the scrub goes through the switch code). */
  private raxToSwitchSlot = false;
  private deadline = Infinity;
  /** When the current run gives the thread back, though the program is not done (`run`'s slice). */
  private sliceEnd = Infinity;
  private timer: ThreadTimer | undefined;
  /** The timer is aimed at a check the threads need, before the deadline: not worth keeping after the run. */
  private timerForThreads = false;
  /** The program's threads, and which of them is on the vCPU. */
  readonly threads: Scheduler;
  /** The program's signal actions and their delivery. */
  readonly signals: SignalDelivery;
  private readonly sleepCell = new Int32Array(new SharedArrayBuffer(4));
  /** Set when KVM failed on this VM: its shell is destroyed, not reused. */
  broken = false;
  /** Returns from KVM_RUN since the machine was made (VM exits, the timer's included): what batching saves. */
  exits = 0;
  /** Of those, the timer's interrupts (a slice's end, a thread switch, a deadline). */
  timerExits = 0;

  /** The loop of `machine`, whose system calls and hypercalls it answers. */
  constructor(private readonly machine: Machine) {
    this.vcpu = machine.vcpu;
    this.mem = machine.mem;
    this.layout = machine.layout;
    this.threads = new Scheduler(this.vcpu, this.mem, {
      returnToUser: (rip, rsp, rflags) => this.returnToUser(rip, rsp, rflags),
      exitProgram: (status) => this.exit(status),
      deadline: () => this.deadline,
      switchIn: (thread) => this.signals.switchIn(thread),
    });
    this.signals = new SignalDelivery(machine.vm.kvm, this.vcpu, this.mem, () => machine.space, this.threads, {
      exit: (status, signal) => this.exit(status, signal),
      trace: () => machine.trace,
    });
  }

  /**
   * Runs the program for at most `timeoutMs` of wall-clock time, until it exits or yields, or
   * until `sliceMs` have passed: then it returns 'preempted' and the next run continues the
   * program where it stopped. Throws a SandboxError for a fault, a timeout, or anything else that
   * is not the program's doing.
   */
  run(timeoutMs: number, sliceMs = Infinity): RunResult {
    const timer = threadTimerInstance();
    this.timer = timer;
    const now = performance.now();
    this.deadline = now + timeoutMs;
    this.sliceEnd = now + sliceMs;
    this.exitResult = undefined;
    this.armTimer();
    try {
      return this.loop(timeoutMs);
    } finally {
      // A threads' check left armed would interrupt whatever the host thread does next (an ioctl
      // that fails with EINTR, such as KVM_CREATE_VM), long before the next run needs a timer.
      // The run's slice end is kept, like the deadline: the thread's next run, often within the
      // slice, reuses it without a system call (`ensure`), and `settle` stops it when idle.
      if (this.timerForThreads) timer.disarm();
      timer.settle();
    }
  }

  /** Aims the timer at the deadline, or sooner: the run's slice, or a check the threads need (their slice's end, a wait's). */
  private armTimer(): void {
    const threadsCheck = this.threads.nextCheck();
    const check = Math.min(threadsCheck, this.sliceEnd);
    this.timerForThreads = threadsCheck <= this.sliceEnd && threadsCheck < this.deadline;
    this.timer!.ensure(Math.min(this.deadline, Math.max(check, performance.now() + MIN_TIMER_MS)));
  }

  private loop(timeoutMs: number): RunResult {
    const vcpu = this.vcpu;
    for (;;) {
      this.mem.flush();
      if (this.raxToSwitchSlot) {
        this.raxToSwitchSlot = false;
        this.mem.bytes.set(vcpu.regsBytes().subarray(REGS.rax, REGS.rax + 8), SWITCH_RAX);
      }
      const entered = performance.now();
      const exit = vcpu.enter();
      this.cpuMs += performance.now() - entered;
      this.exits++;
      if (exit === 'io') {
        const port = vcpu.ioPort();
        const vector = port - PORT_EXCEPTION_BASE;
        if (vector >= 0 && vector < EXCEPTION_VECTORS && fromStub(vcpu.reg('rip'), exceptionStub(vector))) {
          if (vector === PF_VECTOR ? !this.pageFault() : vector !== GP_VECTOR || !this.trappedOut()) this.fault(vector);
        } else {
          this.out(port, { rip: vcpu.reg('rip') });
        }
        if (this.exitResult) return this.exitResult;
        if (this.yielded) {
          this.yielded = false;
          return { kind: 'yield', call: vcpu.reg32('rax') };
        }
      } else if (exit === 'intr') {
        this.timerExits++;
        // The timer: a slice's end, a wait's end, or a timer armed for an earlier, shorter run.
        const now = performance.now();
        if (this.threads.count > 1) this.threads.preempt(now);
        // A thread switched in may have had a signal pending whose default action ends the program.
        if (this.exitResult) return this.exitResult;
        if (now < this.deadline) this.armTimer();
      } else {
        throw this.unexpectedExit(exit);
      }
      const now = performance.now();
      if (now >= this.deadline) throw new SandboxError('timeout', `program ran past its ${timeoutMs} ms time limit`);
      if (now >= this.sliceEnd) return { kind: 'preempted' };
    }
  }

  /**
   * A page fault from ring 3 on a page the program mapped but never touched: the address space
   * backs it, and the program goes on at the faulting instruction. False for any other fault.
   */
  private pageFault(): boolean {
    const frame = this.vcpu.reg('rsp');
    if (frame + 6 * 8 > IST_STACK_TOP) return false;
    const code = this.mem.u64Raw(frame);
    if ((code & PF_USER) === 0 || (code & PF_RSVD) !== 0) return false;
    const address = Number(this.vcpu.getSregs().readBigUInt64LE(SREGS.cr2));
    const access = (code & PF_FETCH) !== 0 ? 'exec' : (code & PF_WRITE) !== 0 ? 'write' : 'read';
    if (!this.machine.space.faultIn(Math.floor(address / PAGE_SIZE) * PAGE_SIZE, access)) return false;
    this.returnToUser(this.mem.u64Raw(frame + 8), this.mem.u64Raw(frame + 32), this.mem.u64Raw(frame + 24));
    return true;
  }

  /**
   * A fault that is not the host's to resolve: the program's handler for its signal runs, or the
   * program ends (by the fault, or by a signal pending with it).
   */
  private fault(vector: number): void {
    const cr2 = vector === PF_VECTOR ? Number(this.vcpu.getSregs().readBigUInt64LE(SREGS.cr2)) : 0;
    // Out of memory is no signal: the program ends as out of memory, as the kernel's OOM kill ends it.
    const jump = this.outOfMemory || this.machine.space.outOfMemory ? undefined : this.signals.onFault(vector, cr2);
    if (this.exitResult) return;
    if (!jump) throw this.exception(vector);
    this.returnToUser(jump.rip, jump.rsp, jump.rflags);
  }

  /**
   * A #GP whose faulting instruction is `out imm8, al` is a door that this KVM did not let exit
   * directly (IOPL 0 in ring 3): handle it as that `out`. Returns false for any other #GP.
   */
  private trappedOut(): boolean {
    const frame = this.vcpu.reg('rsp');
    if (frame + 6 * 8 > IST_STACK_TOP) return false;
    const rip = this.mem.u64Raw(frame + 8);
    let insn: Uint8Array;
    try {
      insn = this.mem.code(rip, 2);
    } catch (err) {
      if (err instanceof GuestFault) return false;
      throw err;
    }
    if (insn[0] !== OUT_IMM8_OPCODE) return false;
    this.out(insn[1]!, { rip, trap: { rsp: this.mem.u64Raw(frame + 32), rflags: this.mem.u64Raw(frame + 24) } });
    return true;
  }

  /** Handles an `out` to `port`: a system call, or a hypercall that is answered now or later. */
  private out(port: number, call: PendingCall): void {
    const v = this.vcpu;
    if (port === PORT_SYSCALL && fromStub(call.rip, SYSCALL_ENTRY)) {
      // `syscall` left the return address in RCX and the caller's RFLAGS in R11.
      const rsp = call.trap ? call.trap.rsp : v.reg('rsp');
      this.threads.atSyscall(v.reg('rcx'), rsp, v.reg('r11'));
      const trace = this.machine.trace;
      trace?.enter(v);
      const result = this.syscall();
      trace?.syscall(this.mem, result, this.exitResult);
      if (this.exitResult) return;
      if (this.threads.request !== undefined) {
        // The call blocked, yielded or ended its thread, or woke another: the scheduler goes on.
        if (this.threads.afterSyscall(result)) this.armTimer();
        return;
      }
      // A signal to deliver, or a frame rt_sigreturn restored, changes where ring 3 goes on.
      const jump = this.signals.onReturn(v.reg('rcx'), rsp, v.reg('r11'), result);
      if (this.exitResult) return;
      if (jump) {
        this.returnToUser(jump.rip, jump.rsp, jump.rflags);
        return;
      }
      this.returnToUser(v.reg('rcx'), rsp, v.reg('r11'));
      v.setReg('rax', result);
    } else if (port === PORT_HYPERCALL) {
      this.pending = call;
      const trace = this.machine.trace;
      trace?.enter(v);
      let result: number;
      try {
        result = this.machine.hypercall(this.machine, v.reg32('rax'));
      } catch (err) {
        // A bad pointer in a hypercall fails the call inside the guest, never the host.
        if (!(err instanceof GuestFault)) throw err;
        result = -EFAULT;
      }
      trace?.hypercall(this.mem, result, this.yielded);
      if (!this.yielded && !this.exitResult) this.answer(result);
    } else {
      throw new SandboxError('fault', `program wrote to I/O port 0x${port.toString(16)} (rip 0x${call.rip.toString(16)})`);
    }
  }

  /** Answers the system call in the registers; returns the value for RAX. */
  private syscall(): number {
    const v = this.vcpu;
    // The kernel takes the number from EAX (an int): the upper half of RAX does not count.
    const call = SYSCALL_TABLE[v.reg32('rax')];
    if (!call) return -ENOSYS;
    const { args } = call;
    try {
      return call.handler(this.machine, syscallArg(v, args, 0), syscallArg(v, args, 1), syscallArg(v, args, 2), syscallArg(v, args, 3), syscallArg(v, args, 4), syscallArg(v, args, 5));
    } catch (err) {
      if (err instanceof GuestFault) return -EFAULT;
      // A host file-system error on the guest's behalf is the errno the kernel would answer.
      const errno = hostFsErrno(err);
      if (errno !== undefined) return -errno;
      throw err;
    }
  }

  // --- what hypercall and system-call handlers ask of the run ----------------------------------

  /** Stop the run after this hypercall, leaving it pending. */
  yield(): void {
    this.yielded = true;
  }

  /** Answers the pending hypercall with `value`; the next `run()` continues after it. */
  resume(value: number): void {
    // RAX still holds the number of the call the guest waits in (a snapshot keeps it too).
    this.machine.trace?.resumed(this.vcpu.reg32('rax'), value);
    this.answer(value);
  }

  private answer(value: number): void {
    const call = this.pending;
    if (!call) throw new Error('no hypercall is pending');
    this.pending = undefined;
    if (call.trap) this.returnToUser(call.rip + OUT_INSN_SIZE, call.trap.rsp, call.trap.rflags);
    else {
      // A direct return: KVM loads the segments of a reset from the sync regs (Machine.restoreFrom).
      this.scrubSegments = false;
      this.vcpu.setReg('rip', call.rip + OUT_INSN_SIZE);
    }
    this.vcpu.setReg('rax', value);
  }

  exit(status: number, signal?: string): void {
    this.exitResult = signal ? { kind: 'exit', status, signal } : { kind: 'exit', status };
  }

  sleep(ms: number): void {
    if (this.threads.count > 1) {
      this.threads.sleep(ms);
      return;
    }
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

  // --- starting, saving and restoring ---------------------------------------------------------

  /** The first return to ring 3 since a boot: to `rip` with stack `rsp`, through the scrub code. */
  start(rip: number, rsp: number, rflags: number): void {
    this.scrubSegments = true;
    this.threads.reset();
    this.signals.reset();
    this.returnToUser(rip, rsp, rflags);
  }

  /** What a snapshot records of the run. */
  save(): RunState {
    return { pending: this.pending && { ...this.pending }, cpuMs: this.cpuMs, threads: this.threads.saveState(), signals: this.signals.save() };
  }

  /** Back to `state`, as after a reset: the next return to ring 3 scrubs the segments again. */
  restore(state: RunState): void {
    this.scrubSegments = true;
    this.cpuMs = state.cpuMs;
    this.pending = state.pending && { ...state.pending };
    this.raxToSwitchSlot = false;
    this.threads.restoreState(state.threads);
    this.signals.restore(state.signals);
    this.exitResult = undefined;
    this.yielded = false;
    this.outOfMemory = false;
  }

  /** Writes the iretq frame (RIP, CS, RFLAGS, RSP, SS) and continues at the stubs' `iretq` (ring 0). */
  private returnToUser(rip: number, rsp: number, rflags: number): void {
    const view = this.mem.view;
    if (this.scrubSegments) {
      // Enter ring 3 at the scrub code, which goes on through the switch code (already aimed, for
      // a thread switched in) to `rip`.
      if (rip !== SWITCH_ENTRY) {
        this.threads.setSwitchSlots(this.threads.current, rip);
        this.raxToSwitchSlot = true;
      }
      view.setBigUint64(SCRUB_TARGET, BigInt(SWITCH_ENTRY), true);
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
    this.vcpu.setReg('rsp', SYSCALL_FRAME_ADDR);
    this.vcpu.setReg('rip', IRETQ_RIP);
  }

  // --- failures -------------------------------------------------------------------------------

  private exception(vector: number): SandboxError {
    const frame = this.vcpu.reg('rsp');
    const withCode = HAS_ERROR_CODE.has(vector);
    const read = (i: number): number => (frame + i * 8 + 8 <= IST_STACK_TOP ? this.mem.u64Raw(frame + i * 8) : 0);
    const sregs = this.vcpu.getSregs();
    const rip = read(withCode ? 1 : 0);
    const symbols = this.machine.program.symbols;
    const info = {
      vector,
      errorCode: withCode ? read(0) : 0,
      rip,
      address: Number(sregs.readBigUInt64LE(SREGS.cr2)),
      symbol: symbolize(symbols, rip),
    };
    const message = describeException(info, this.layout, this.machine.space.vmas.find(info.address)?.prot === 0);
    this.machine.trace?.fault(this.mem, symbols, message, rip, this.vcpu.reg('rbp'));
    if (this.outOfMemory || this.machine.space.outOfMemory) return new SandboxError('out-of-memory', `out of guest memory (${this.layout.memorySize / MiB} MiB): ${message}`);
    return new SandboxError('fault', message);
  }

  private unexpectedExit(exit: VcpuExit): SandboxError {
    const rip = `rip 0x${this.vcpu.reg('rip').toString(16)}`;
    switch (exit) {
      case 'shutdown': return new SandboxError('fault', `guest CPU shut down (triple fault, ${rip})`);
      case 'hlt': return new SandboxError('fault', `guest halted (${rip})`);
      case 'mmio': return new SandboxError('fault', `access outside guest memory (${rip})`);
      case 'fail-entry': this.broken = true; return new SandboxError('internal', `KVM could not enter the guest (reason 0x${this.vcpu.failEntryReason().toString(16)})`);
      case 'internal-error': this.broken = true; return new SandboxError('internal', `KVM internal error ${this.vcpu.internalSuberror()} (${rip})`);
      default: this.broken = true; return new SandboxError('internal', `unexpected KVM exit ${this.vcpu.exitReason()} (${rip})`);
    }
  }
}
