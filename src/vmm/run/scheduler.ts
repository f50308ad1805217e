// Guest threads on the machine's one vCPU, switched by the host as TinyKVM does it: at a call
// that blocks (a futex wait, a sleep, sched_yield, a read that would wait) and, unlike TinyKVM,
// at the end of a time slice, so a thread that spins or computes cannot keep the others off the
// CPU. Threads are concurrent, never parallel. A switch saves the general registers, RIP, RSP,
// RFLAGS, the FS and GS bases and the whole XSAVE area (x87, SSE, AVX): Linux keeps vector
// registers across a system call and compilers rely on it around inline `syscall`s, so a switch
// at a call must keep them as surely as one at a preemption. The incoming thread's FS and GS base
// are set by ring-3 code on the stub page (SWITCH_ENTRY), where setting them from the host costs
// as much as the rest of the switch on nested KVM. The slice's end is one more deadline for the
// run's one timer signal (timer.ts).
import { performance } from 'node:perf_hooks';
import { KVM_SREGS_SIZE, KVM_XSAVE_SIZE, REGS, SREGS } from '../../kvm/constants.ts';
import type { Vcpu } from '../../kvm/vcpu.ts';
import { SandboxError } from '../errors.ts';
import type { GuestThread, ThreadStart, Threads } from '../linux/syscalls/context.ts';
import { EINTR, ETIMEDOUT } from '../linux/syscalls/errno.ts';
import type { GuestMemory } from '../memory/guest-memory.ts';
import { PAGE_SIZE, STUBS_ADDR } from '../x86/layout.ts';
import { SWITCH_ENTRY, SWITCH_FS_BASE, SWITCH_GS_BASE, SWITCH_RAX, SWITCH_TARGET } from '../x86/stubs.ts';
import { type Thread, ThreadTable, type ThreadTableState } from './threads.ts';

/** How long a thread runs before another runnable thread gets the vCPU. */
export const TIME_SLICE_MS = 5;
/** A slice that ended while the vCPU was in the stub page (no place to switch) ends this much later. */
const PREEMPT_RETRY_MS = 1;
/** The length of `syscall`, to run one again. */
const SYSCALL_INSN_SIZE = 2;
/** RFLAGS for ring 0 on the way back to a switched-in thread: reserved bit 1, interrupts off. */
const RING0_RFLAGS = 0x2;

/** What the scheduler needs of the run loop. */
export interface SchedulerHost {
  /** Leaves ring 0 for ring 3 at `rip` with `rsp` and `rflags` (through the iretq frame). */
  returnToUser(rip: number, rsp: number, rflags: number): void;
  /** Ends the program with `status`. */
  exitProgram(status: number): void;
  /** The run's deadline, a performance.now() time. */
  deadline(): number;
  /** `thread` is about to go on the vCPU, with its saved state: the signals it has pending are delivered into it. */
  switchIn(thread: Thread): void;
}

/** What a handler asked for its thread: switch to another, or only re-aim the timer. */
type Request = 'block' | 'yield' | 'retry' | 'exit' | 'rearm';

const bufferOf = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

export class Scheduler implements Threads {
  readonly table = new ThreadTable();
  /** Set by a handler; the run loop calls `afterSyscall` when it is. */
  request: Request | undefined;
  /** The ring-3 RIP, RSP and RFLAGS of the system call being answered. */
  private userRip = 0;
  private userRsp = 0;
  private userRflags = 0;
  /** When the running thread's slice ends. */
  private sliceEnd = 0;
  private readonly sregs = Buffer.alloc(KVM_SREGS_SIZE);
  private readonly sleepCell = new Int32Array(new SharedArrayBuffer(4));

  constructor(private readonly vcpu: Vcpu, private readonly mem: GuestMemory, private readonly host: SchedulerHost) {}

  // --- Threads: what system calls ask ---------------------------------------------------------

  get current(): Thread {
    return this.table.current;
  }

  get count(): number {
    return this.table.count;
  }

  find(tid: number): GuestThread | undefined {
    return this.table.find(tid);
  }

  spawn(start: ThreadStart): GuestThread | undefined {
    const regs = Uint8Array.from(this.vcpu.regsBytes());
    const view = new DataView(regs.buffer);
    view.setBigUint64(REGS.rip, BigInt(this.userRip), true);
    view.setBigUint64(REGS.rsp, BigInt(start.stack !== 0 ? start.stack : this.userRsp), true);
    view.setBigUint64(REGS.rflags, BigInt(this.userRflags), true);
    this.vcpu.getSregs(this.sregs);
    const fsBase = start.tls ?? this.sregs.readBigUInt64LE(SREGS.fs);
    const thread = this.table.add(regs, this.vcpu.getXsave(Buffer.allocUnsafe(KVM_XSAVE_SIZE)), fsBase, this.sregs.readBigUInt64LE(SREGS.gs), start.clearTid, this.table.current.signals.blocked);
    if (thread) this.request ??= 'rearm';
    return thread;
  }

  exit(status: number): void {
    if (this.table.count === 1) {
      this.host.exitProgram(status);
      return;
    }
    this.table.removeCurrent();
    this.request = 'exit';
  }

  futexWait(key: number, bitset: number, wakeAt: number, timeoutResult = -ETIMEDOUT): number {
    this.table.blockOnFutex(key, bitset, wakeAt, timeoutResult);
    this.request = 'block';
    return 0;
  }

  futexWake(key: number, count: number, bitset: number): number {
    const woken = this.table.wake(key, count, bitset);
    if (woken > 0) this.request ??= 'rearm';
    return woken;
  }

  futexRequeue(from: number, to: number, wake: number, requeue: number): number {
    const moved = this.table.requeue(from, to, wake, requeue);
    if (moved > 0) this.request ??= 'rearm';
    return moved;
  }

  yield(): void {
    if (this.table.othersRunnable()) this.request = 'yield';
  }

  retryLater(): number {
    this.request = 'retry';
    return 0;
  }

  blockingWaitMs(): number {
    const left = Math.max(0, this.host.deadline() - performance.now());
    if (this.table.count === 1) return left;
    if (this.table.othersRunnable()) return 0;
    return Math.max(0, Math.min(left, this.table.earliestWake() - performance.now()));
  }

  /** The alive threads. */
  all(): IterableIterator<Thread> {
    return this.table.all();
  }

  /**
   * A signal came for `thread`, which it does not block: a futex wait (an epoll wait, a
   * sigsuspend) ends with EINTR, as a wait a signal interrupts does. Sleeps run to their end.
   */
  interrupt(thread: Thread): void {
    if (thread.state !== 'futex') return;
    thread.result = -EINTR;
    this.table.makeRunnable(thread);
    this.request ??= 'rearm';
  }

  /** The ring-3 RIP, RSP and RFLAGS of the system call being answered. */
  userState(): { rip: number; rsp: number; rflags: number } {
    return { rip: this.userRip, rsp: this.userRsp, rflags: this.userRflags };
  }

  /** The calling thread sleeps for `ms`; the call's result is what its handler returns. */
  sleep(ms: number): void {
    this.table.sleep(performance.now() + ms);
    this.request = 'block';
  }

  // --- the run loop's side ----------------------------------------------------------------------

  /** Before a system call's handler runs: where its thread is in ring 3, should it have to leave. */
  atSyscall(rip: number, rsp: number, rflags: number): void {
    this.request = undefined;
    this.userRip = rip;
    this.userRsp = rsp;
    this.userRflags = rflags;
  }

  /**
   * After a handler that made a request, with its `result`: puts the caller back in ring 3, or
   * switches to the next thread in line (sleeping on the host while every thread waits). Returns
   * false when the deadline came first, the vCPU left where it was.
   */
  afterSyscall(result: number): boolean {
    const request = this.request;
    this.request = undefined;
    const caller = this.table.current;
    if (request === 'rearm') {
      this.resumeCaller(this.userRip, result);
      return true;
    }
    let rip = this.userRip;
    if (request === 'retry') {
      // As for ERESTARTSYS: back onto the `syscall` instruction, RAX still the call's number.
      rip -= SYSCALL_INSN_SIZE;
      caller.result = undefined;
      this.table.makeRunnable(caller);
    } else {
      caller.result = result;
      if (request === 'yield') this.table.makeRunnable(caller);
    }
    const next = this.pick();
    if (!next) return false;
    if (next === caller) {
      this.resumeCaller(rip, caller.result);
      caller.state = 'running';
      caller.result = undefined;
      this.sliceEnd = performance.now() + TIME_SLICE_MS;
    } else {
      if (request !== 'exit') this.save(caller, rip, this.userRsp, this.userRflags);
      this.load(next, true);
    }
    return true;
  }

  /**
   * At a timer exit with more than one thread: wakes the waits that have ended and, if the
   * running thread's slice is over and another can run, switches to it. A slice that ends while
   * the vCPU is in the stub page (ring 0, or the ring-3 scrub code) is put off a little: there is
   * no ring-3 place to save yet.
   */
  preempt(now: number): void {
    this.table.wakeExpired(now);
    if (now < this.sliceEnd || !this.table.othersRunnable()) return;
    const rip = this.vcpu.reg('rip');
    if (rip >= STUBS_ADDR && rip < STUBS_ADDR + PAGE_SIZE) {
      this.sliceEnd = now + PREEMPT_RETRY_MS;
      return;
    }
    const caller = this.table.current;
    caller.result = undefined;
    this.table.makeRunnable(caller);
    this.save(caller, rip, this.vcpu.reg('rsp'), this.vcpu.reg('rflags'));
    this.load(this.table.nextRunnable()!, false);
  }

  /** When the timer must next interrupt the guest for the threads' sake (Infinity: never). */
  nextCheck(): number {
    if (this.table.count === 1) return Infinity;
    if (this.table.othersRunnable()) return this.sliceEnd;
    const wake = this.table.earliestWake();
    return wake === Infinity ? Infinity : Math.max(wake, this.sliceEnd);
  }

  /**
   * What a snapshot keeps of the threads. The running thread's FS and GS base are read from the
   * vCPU first: the program may have changed them itself (wrfsbase), and the first entry after a
   * restore sets them from this record (`enterThrough`).
   */
  saveState(): ThreadTableState {
    this.vcpu.getSregs(this.sregs);
    this.table.current.fsBase = this.sregs.readBigUInt64LE(SREGS.fs);
    this.table.current.gsBase = this.sregs.readBigUInt64LE(SREGS.gs);
    return this.table.save(performance.now());
  }

  /** Back to a snapshot's threads; the vCPU holds the current one's state already. */
  restoreState(state: ThreadTableState): void {
    this.table.restore(state, performance.now());
    this.request = undefined;
    this.sliceEnd = performance.now() + TIME_SLICE_MS;
  }

  /** One thread again, at a program's entry. */
  reset(): void {
    this.table.reset();
    this.request = undefined;
  }

  // --- switching --------------------------------------------------------------------------------

  /** Takes `thread` off the vCPU: its registers with ring 3's RIP, RSP and RFLAGS, XSAVE area, FS and GS base. */
  private save(thread: Thread, rip: number, rsp: number, rflags: number): void {
    // Into new arrays, never over old ones: a snapshot may share a thread's saved state.
    const regs = Uint8Array.from(this.vcpu.regsBytes());
    const view = new DataView(regs.buffer);
    view.setBigUint64(REGS.rip, BigInt(rip), true);
    view.setBigUint64(REGS.rsp, BigInt(rsp), true);
    view.setBigUint64(REGS.rflags, BigInt(rflags), true);
    thread.regs = regs;
    thread.xsave = this.vcpu.getXsave(Buffer.allocUnsafe(KVM_XSAVE_SIZE));
    this.vcpu.getSregs(this.sregs);
    thread.fsBase = this.sregs.readBigUInt64LE(SREGS.fs);
    thread.gsBase = this.sregs.readBigUInt64LE(SREGS.gs);
  }

  /** The calling thread goes on: back to ring 3 at `rip`, with `result` in RAX if defined. */
  private resumeCaller(rip: number, result: number | undefined): void {
    this.host.returnToUser(rip, this.userRsp, this.userRflags);
    if (result !== undefined) this.vcpu.setReg('rax', result);
  }

  /**
   * The thread to run next, once one can: wakes ended waits, and sleeps on the host until the
   * earliest one ends while none can run. Undefined when the deadline comes first. Every thread
   * waiting with nothing to end its wait is a deadlock: nothing in the program can wake them.
   */
  private pick(): Thread | undefined {
    for (;;) {
      const now = performance.now();
      this.table.wakeExpired(now);
      const next = this.table.nextRunnable();
      if (next) return next;
      if (now >= this.host.deadline()) return undefined;
      const wake = this.table.earliestWake();
      if (wake === Infinity) {
        const n = this.table.count;
        throw new SandboxError('fault', n === 1
          ? 'deadlock: the program\'s only thread waits on a futex with no timeout, and nothing can wake it'
          : `deadlock: all ${n} threads wait on futexes with no timeout, and none can wake another`);
      }
      Atomics.wait(this.sleepCell, 0, 0, Math.min(wake, this.host.deadline()) - now);
    }
  }

  /**
   * Aims the switch code at `rip` with `thread`'s FS and GS base; SWITCH_RAX is the caller's to
   * fill. Also the way into the program after a boot or a reset (through the scrub code): on
   * nested KVM (PVM) the FS and GS base a vCPU's previous program left in the host thread would
   * otherwise outlive KVM_SET_SREGS, as DS and ES do.
   */
  setSwitchSlots(thread: Thread, rip: number): void {
    const view = this.mem.view;
    view.setBigUint64(SWITCH_FS_BASE, thread.fsBase, true);
    view.setBigUint64(SWITCH_GS_BASE, thread.gsBase, true);
    view.setBigUint64(SWITCH_TARGET, BigInt(rip), true);
    this.mem.markDirty(SWITCH_FS_BASE, 32);
  }

  /**
   * Puts `next` on the vCPU: its registers and XSAVE area, and, through the switch code on the
   * stub page, its FS and GS base and RAX. From ring 0 (a system-call exit) it goes back to ring 3
   * through the iretq frame; from ring 3 (a preemption) its RSP and RFLAGS are loaded as they are.
   */
  private load(next: Thread, fromRing0: boolean): void {
    this.host.switchIn(next);
    const { vcpu, mem } = this;
    const regs = next.regs!;
    const view = new DataView(regs.buffer, regs.byteOffset, regs.byteLength);
    vcpu.regsBytes().set(regs);
    vcpu.markRegsDirty();
    vcpu.setXsave(bufferOf(next.xsave!));
    this.setSwitchSlots(next, Number(view.getBigUint64(REGS.rip, true)));
    mem.view.setBigUint64(SWITCH_RAX, next.result !== undefined ? BigInt.asUintN(64, BigInt(next.result)) : view.getBigUint64(REGS.rax, true), true);
    if (fromRing0) {
      vcpu.setReg('rflags', RING0_RFLAGS);
      this.host.returnToUser(SWITCH_ENTRY, Number(view.getBigUint64(REGS.rsp, true)), Number(view.getBigUint64(REGS.rflags, true)));
    } else {
      vcpu.setReg('rip', SWITCH_ENTRY);
    }
    next.state = 'running';
    next.regs = undefined;
    next.xsave = undefined;
    next.result = undefined;
    this.table.current = next;
    this.sliceEnd = performance.now() + TIME_SLICE_MS;
  }
}
