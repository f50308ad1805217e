// The program's thread table: who exists, who may run, who waits on which futex or until when,
// and in what order they run and are woken. Pure bookkeeping, as plain data a snapshot keeps: the
// scheduler (scheduler.ts) moves threads on and off the one vCPU. Order is first-come: runnable
// threads run in the order they became runnable, and a futex's waiters are woken in the order
// they began to wait, as Linux does for threads of equal priority.
import { copyThreadSignals, threadSignals } from '../linux/signals.ts';
import type { GuestThread } from '../linux/syscalls/context.ts';
import { MAX_THREADS, PID } from '../linux/syscalls/process.ts';
/** Thread ids run up to PID_MAX_LIMIT, then start again at 2, skipping those in use. */
const TID_MAX = 4_194_304;

/**
 * `running` is on the vCPU; `runnable` waits for it; `futex` waits for a wake (or `wakeAt`);
 * `sleep` waits for `wakeAt` only.
 */
export type ThreadState = 'running' | 'runnable' | 'futex' | 'sleep';

export interface Thread extends GuestThread {
  state: ThreadState;
  /** Its general registers while off the vCPU (a kvm_regs image; RIP, RSP, RFLAGS as ring 3 has them). */
  regs: Uint8Array | undefined;
  /** Its XSAVE area (x87, SSE, AVX state) while off the vCPU. */
  xsave: Uint8Array | undefined;
  /** Its FS base (the thread pointer) and GS base. */
  fsBase: bigint;
  gsBase: bigint;
  /** What its system call returns when it runs again; undefined: RAX is in `regs` (preempted). */
  result: number | undefined;
  /** What the call returns when `wakeAt` ends the wait; undefined: what its handler returned. */
  timeoutResult: number | undefined;
  /** The futex it waits on, and the bitset of its wait. */
  futexKey: number;
  bitset: number;
  /** When its wait ends by itself (a performance.now() time); Infinity for never. */
  wakeAt: number;
  /** Its place in line: when it became runnable, or began to wait on its futex. */
  seq: number;
}

/** What a snapshot keeps of the table: plain data, with waits' ends as milliseconds left. */
export interface ThreadTableState {
  threads: ReadonlyArray<Omit<Thread, 'wakeAt'> & { msLeft: number }>;
  currentTid: number;
  nextTid: number;
  seq: number;
}

function mainThread(): Thread {
  return {
    tid: PID, clearTid: 0, robustList: 0, signals: threadSignals(), state: 'running', regs: undefined, xsave: undefined, fsBase: 0n, gsBase: 0n,
    result: undefined, timeoutResult: undefined, futexKey: 0, bitset: 0, wakeAt: Infinity, seq: 0,
  };
}

/**
 * A snapshot's thread made live again, field by field (a reset runs this for every request):
 * its wait's end from `now`, its signal state copied (it changes in place).
 */
function restoredThread(t: ThreadTableState['threads'][number], now: number): Thread {
  return {
    tid: t.tid, clearTid: t.clearTid, robustList: t.robustList, signals: copyThreadSignals(t.signals), state: t.state, regs: t.regs, xsave: t.xsave,
    fsBase: t.fsBase, gsBase: t.gsBase, result: t.result, timeoutResult: t.timeoutResult, futexKey: t.futexKey, bitset: t.bitset,
    wakeAt: t.msLeft === Infinity ? Infinity : now + t.msLeft, seq: t.seq,
  };
}

export class ThreadTable {
  /** Alive threads by id. */
  private readonly threads = new Map<number, Thread>();
  current: Thread = mainThread();
  private nextTid = PID + 1;
  private seq = 0;

  constructor() {
    this.reset();
  }

  /** Back to one thread, the program's first, running: a program starting at its entry. */
  reset(): void {
    this.threads.clear();
    this.current = mainThread();
    this.threads.set(this.current.tid, this.current);
    this.nextTid = PID + 1;
    this.seq = 0;
  }

  get count(): number {
    return this.threads.size;
  }

  find(tid: number): Thread | undefined {
    return this.threads.get(tid);
  }

  /** The alive threads, in no particular order. */
  all(): IterableIterator<Thread> {
    return this.threads.values();
  }

  /** A new runnable thread with the given saved state and blocked mask; undefined at MAX_THREADS. */
  add(regs: Uint8Array, xsave: Uint8Array, fsBase: bigint, gsBase: bigint, clearTid: number, blocked: bigint): Thread | undefined {
    if (this.threads.size >= MAX_THREADS) return undefined;
    while (this.threads.has(this.nextTid)) this.advanceTid();
    const thread: Thread = {
      tid: this.nextTid, clearTid, robustList: 0, signals: threadSignals(blocked), state: 'runnable', regs, xsave, fsBase, gsBase,
      result: 0, timeoutResult: undefined, futexKey: 0, bitset: 0, wakeAt: Infinity, seq: ++this.seq,
    };
    this.advanceTid();
    this.threads.set(thread.tid, thread);
    return thread;
  }

  private advanceTid(): void {
    this.nextTid = this.nextTid >= TID_MAX ? PID + 1 : this.nextTid + 1;
  }

  /** Removes the calling thread, which has exited. */
  removeCurrent(): void {
    this.threads.delete(this.current.tid);
  }

  /** Puts `thread` at the end of the line to run. */
  makeRunnable(thread: Thread): void {
    thread.state = 'runnable';
    thread.wakeAt = Infinity;
    thread.seq = ++this.seq;
  }

  /** The calling thread waits on futex `key` (or until `wakeAt`, when its call returns `timeoutResult`). */
  blockOnFutex(key: number, bitset: number, wakeAt: number, timeoutResult: number): void {
    const t = this.current;
    t.state = 'futex';
    t.futexKey = key;
    t.bitset = bitset;
    t.wakeAt = wakeAt;
    t.timeoutResult = timeoutResult;
    t.seq = ++this.seq;
  }

  /** The calling thread sleeps until `wakeAt`; its call returns what its handler did. */
  sleep(wakeAt: number): void {
    const t = this.current;
    t.state = 'sleep';
    t.wakeAt = wakeAt;
    t.timeoutResult = undefined;
  }

  /** Makes runnable every thread whose wait has ended by `now`; their calls return their timeout result. */
  wakeExpired(now: number): void {
    for (const t of this.threads.values()) {
      if ((t.state === 'futex' || t.state === 'sleep') && t.wakeAt <= now) {
        t.result = t.timeoutResult ?? t.result;
        this.makeRunnable(t);
      }
    }
  }

  /** The earliest time a waiting thread's wait ends by itself (Infinity if none does). */
  earliestWake(): number {
    let at = Infinity;
    for (const t of this.threads.values()) {
      if ((t.state === 'futex' || t.state === 'sleep') && t.wakeAt < at) at = t.wakeAt;
    }
    return at;
  }

  /** The runnable thread first in line, the caller included if it is runnable; undefined if none. */
  nextRunnable(): Thread | undefined {
    let next: Thread | undefined;
    for (const t of this.threads.values()) {
      if (t.state === 'runnable' && (!next || t.seq < next.seq)) next = t;
    }
    return next;
  }

  /** True when a thread other than the caller could run now. */
  othersRunnable(): boolean {
    for (const t of this.threads.values()) if (t.state === 'runnable' && t !== this.current) return true;
    return false;
  }

  /** The waiters on futex `key`, in the order they began to wait. */
  private waiters(key: number): Thread[] {
    const list: Thread[] = [];
    for (const t of this.threads.values()) if (t.state === 'futex' && t.futexKey === key) list.push(t);
    return list.sort((a, b) => a.seq - b.seq);
  }

  /** Wakes up to `count` waiters on `key` whose bitset meets `bitset`; their waits return 0. */
  wake(key: number, count: number, bitset: number): number {
    let woken = 0;
    for (const t of this.waiters(key)) {
      if (woken >= count) break;
      if ((t.bitset & bitset) === 0) continue;
      t.result = 0;
      this.makeRunnable(t);
      woken++;
    }
    return woken;
  }

  /**
   * futex_requeue's loop: of the waiters on `from`, the first `wake` are woken and up to
   * `requeue` more move to the end of `to`'s line, whatever their bitsets.
   */
  requeue(from: number, to: number, wake: number, requeue: number): number {
    let count = 0;
    for (const t of this.waiters(from)) {
      if (count - wake >= requeue) break;
      if (++count <= wake) {
        t.result = 0;
        this.makeRunnable(t);
      } else {
        t.futexKey = to;
        t.seq = ++this.seq;
      }
    }
    return count;
  }

  // --- snapshots ------------------------------------------------------------------------------

  /**
   * The table as plain data. Saved registers and XSAVE areas are shared, not copied: the
   * scheduler never writes one in place (a thread leaving the vCPU gets new ones). Signal state
   * changes in place, so it is copied.
   */
  save(now: number): ThreadTableState {
    const threads = [...this.threads.values()].map(({ wakeAt, ...t }) => ({ ...t, signals: copyThreadSignals(t.signals), msLeft: wakeAt === Infinity ? Infinity : Math.max(0, wakeAt - now) }));
    return { threads, currentTid: this.current.tid, nextTid: this.nextTid, seq: this.seq };
  }

  /** Back to `state`; waits that had time left get it again from `now`. */
  restore(state: ThreadTableState, now: number): void {
    this.threads.clear();
    for (const t of state.threads) this.threads.set(t.tid, restoredThread(t, now));
    this.current = this.threads.get(state.currentTid)!;
    this.nextTid = state.nextTid;
    this.seq = state.seq;
  }
}
