// What a system-call handler may use: guest memory, its address space and arena, open files, the
// standard streams, the program's threads, and the few vCPU actions a call can need. Handlers
// return a result or -errno.
import type { AddressSpace } from '../../memory/address-space.ts';
import type { Arena } from '../../memory/arena.ts';
import type { Layout } from '../../x86/layout.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import type { Journal } from '../journal.ts';
import type { SigAction, SigInfo, ThreadSignals } from '../signals.ts';
import type { EventTable } from './events.ts';
import type { FileTable } from './files.ts';

export type StdioFd = 0 | 1 | 2;

/** Where the guest's fds 0, 1 and 2 lead. `write`/`read` return a byte count or -errno. */
export interface Stdio {
  /**
   * Writes stdout or stderr, waiting at most `waitMs` for room: then it returns what it wrote so
   * far, or -EINTR if nothing (the deadline has come).
   */
  write(fd: 1 | 2, data: Uint8Array, waitMs: number): number;
  /** Reads stdin, waiting at most `waitMs` for data (then returning -EINTR: the deadline has come). */
  read(into: Uint8Array, waitMs: number): number;
  /**
   * poll(2) of the streams: for each entry, its readiness as POLL* bits (those of `events`, plus
   * POLLNVAL for a stream that is closed), waiting at most `waitMs` until one reports something.
   * Streams whose readiness cannot change while the guest waits answer at once.
   */
  poll(entries: ReadonlyArray<{ fd: StdioFd; events: number }>, waitMs: number): number[];
}

export interface SyscallContext {
  readonly mem: GuestMemory;
  readonly layout: Layout;
  readonly arena: Arena;
  readonly space: AddressSpace;
  /** The program may map executable memory beyond its own segments. */
  readonly executableMemory: boolean;
  readonly files: FileTable;
  /** Pipes, eventfds and epoll instances, in the same fd numbers as `files`. */
  readonly events: EventTable;
  readonly stdio: Stdio;
  /** Ends the program with `status` (exit_group) or by a signal (status 128 + signal). */
  exit(status: number, signal?: string): void;
  setFsBase(value: bigint): void;
  getFsBase(): bigint;
  /** Blocks for up to `ms` milliseconds, never past the program's deadline. */
  sleep(ms: number): void;
  /** Milliseconds left before the program's deadline. */
  remainingMs(): number;
  /** Records that a memory request failed, so a later crash can be explained as out of memory. */
  noteOutOfMemory(): void;
  /** The program's own CPU time in nanoseconds: what its CPU clocks read. */
  cpuTimeNs(): number;
  /** The program's threads, and the scheduling actions a call can take for the calling one. */
  readonly threads: Threads;
  /** Where the clock reads and random bytes the guest gets are recorded, or replayed from (journal.ts). */
  readonly journal: Journal | undefined;
  /** The program's signal actions, and sending and returning from signals. */
  readonly signals: Signals;
}

/** A thread as the thread system calls see it. */
export interface GuestThread {
  readonly tid: number;
  /** CLONE_CHILD_CLEARTID / set_tid_address: zeroed and woken when the thread exits (0: none). */
  clearTid: number;
  /** set_robust_list: the head of the thread's robust-futex list (0: none). */
  robustList: number;
  /** Its blocked mask, alternate stack and pending signals. */
  signals: ThreadSignals;
}

/** How clone and clone3 start a thread, past their checks. */
export interface ThreadStart {
  /** Its stack pointer; 0 starts it on the caller's. */
  stack: number;
  /** Its FS base (CLONE_SETTLS); undefined shares the caller's. */
  tls: bigint | undefined;
  clearTid: number;
}

/**
 * The program's threads. A call that blocks the caller (`futexWait`, `yield`, `retryLater`,
 * `exit`) only records it: the run loop switches threads once the handler has returned, and the
 * caller's result is what the handler returned (or the wait's own result, for a futex wait).
 */
export interface Threads {
  /** The calling thread. */
  readonly current: GuestThread;
  /** Threads alive, the caller included. */
  readonly count: number;
  find(tid: number): GuestThread | undefined;
  /** A new runnable thread, a copy of the caller returning 0 from its clone; undefined at the limit. */
  spawn(start: ThreadStart): GuestThread | undefined;
  /** Ends the calling thread (exit); the last one to end ends the program, with its own status. */
  exit(status: number): void;
  /**
   * Blocks the caller on futex `key` until a wake matching `bitset`, or until `wakeAt` (a
   * performance.now() time; Infinity for none), when the call returns `timeoutResult`
   * (-ETIMEDOUT unless given). Negative keys are the host's own (epoll instances wait on them).
   */
  futexWait(key: number, bitset: number, wakeAt: number, timeoutResult?: number): number;
  /** Wakes up to `count` waiters on `key` whose bitset shares a bit with `bitset`; returns how many. */
  futexWake(key: number, count: number, bitset: number): number;
  /** Wakes up to `wake` waiters on `from` and moves up to `requeue` more to `to`; returns both counts' sum. */
  futexRequeue(from: number, to: number, wake: number, requeue: number): number;
  /** Lets the other runnable threads run before the caller goes on (sched_yield). */
  yield(): void;
  /** Runs the call again once the other threads have had the CPU: for a call that would block on the host. */
  retryLater(): number;
  /** How long a call may block on the host before another thread needs the CPU (ms). */
  blockingWaitMs(): number;
}

/**
 * Signals (run/delivery.ts): the actions all threads share, sending (delivery happens when the
 * receiving thread next returns to ring 3), and the calls that need the caller's ring-3 state.
 */
export interface Signals {
  action(sig: number): SigAction;
  /** rt_sigaction's change: one that ignores the signal drops it wherever it is pending. */
  setAction(sig: number, act: SigAction): void;
  /**
   * Sends a signal to thread `tid` (tkill, tgkill) or to the program (kill, `tid` undefined): it
   * is dropped, ends the program, or waits for its handler, interrupting a futex wait of the
   * thread that will take it. Returns 0 or -errno (EAGAIN past the real-time queue's limit).
   */
  send(tid: number | undefined, info: SigInfo): number;
  /** The signals pending for the caller, its own and the program's (rt_sigpending). */
  pending(): bigint;
  /** The caller's ring-3 stack pointer (sigaltstack refuses changes while it is on the alternate stack). */
  stackPointer(): bigint;
  /** rt_sigsuspend: `mask` until a signal comes; returns what the call returns. */
  suspend(mask: bigint): number;
  /** rt_sigreturn: back to the frame at the caller's stack; returns the restored RAX (the call's result). */
  sigreturn(): number;
}

/**
 * How the dispatcher reads an argument register, after the type the kernel declares for it
 * (SYSCALL_DEFINE): `int` the low 32 bits sign-extended (int, pid_t, clockid_t), `uint` the low
 * 32 bits (unsigned int, fds), `long` all 64 bits signed (long, off_t, loff_t), `ulong` all 64
 * bits unsigned (pointers, size_t, unsigned long). 64-bit values arrive as Numbers, exact while
 * their magnitude is below 2^53. Larger ones, beyond every address, length and offset the host
 * accepts, are rounded by less than a page but keep what the kernel's checks on them look at:
 * their sign, their magnitude, and whether they are a multiple of the page size.
 */
export type ArgKind = 'int' | 'uint' | 'long' | 'ulong';

export type SyscallHandler = (ctx: SyscallContext, a: number, b: number, c: number, d: number, e: number, f: number) => number;
