// Wall-clock limits for guests: a POSIX timer per thread that signals that very thread
// (SIGEV_THREAD_ID), so a KVM_RUN in progress returns EINTR. The signal needs a real handler:
// ignored it would not interrupt. A Node listener on the main thread installs libuv's handler,
// which serves every thread. The signal is SIGURG, as Go's preemption uses it: nothing in Node
// reacts to it (SIGUSR1 starts the inspector, and Node 24 writes a diagnostic report on SIGUSR2),
// and its default action is to be ignored, so one that lands while the process exits is harmless.
import { performance } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';
import { check, gettid, timerCreate, timerDelete, timerSettime } from '../../kvm/libc.ts';

const CLOCK_MONOTONIC = 1;
const SIGEV_THREAD_ID = 4;
const TIMEOUT_SIGNAL = 'SIGURG';
const SIGURG = 23;
/** After the deadline the timer fires again at this period, in case a signal landed between runs. */
const REFIRE_MS = 5;
/** A timer left armed between runs is stopped after the thread has been idle this long. */
const IDLE_DISARM_MS = 20;

let handlerInstalled = false;

/** Installs the no-op listener that makes the timer signal interrupt instead of kill. Main thread only. */
export function installTimeoutSignalHandler(): void {
  if (handlerInstalled) return;
  if (!isMainThread) throw new Error('the timeout signal handler must be installed on the main thread');
  process.on(TIMEOUT_SIGNAL, () => {});
  handlerInstalled = true;
}

function timespec(buf: Buffer, at: number, ms: number): void {
  buf.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), at);
  buf.writeBigInt64LE(BigInt(Math.round((ms % 1000) * 1e6)), at + 8);
}

/** A per-thread interval timer aimed at the calling thread. */
export class ThreadTimer {
  private readonly id: bigint;
  private readonly spec = Buffer.alloc(32);
  /** performance.now() at which the armed timer fires; 0 when disarmed. */
  private firesAt = 0;

  constructor() {
    if (isMainThread) installTimeoutSignalHandler();
    const sev = Buffer.alloc(64);
    sev.writeInt32LE(SIGURG, 8);
    sev.writeInt32LE(SIGEV_THREAD_ID, 12);
    sev.writeInt32LE(gettid(), 16);
    const out = Buffer.alloc(8);
    check('timer_create', timerCreate(CLOCK_MONOTONIC, sev, out));
    this.id = out.readBigUInt64LE(0);
  }

  /**
   * Makes sure a signal arrives by `deadline` (a performance.now() time). A timer already due
   * before it is kept: when it fires early, the run loop calls this again. So back-to-back short
   * runs arm the timer once per time limit, not once per run (each arming is a system call).
   */
  ensure(deadline: number): void {
    const now = performance.now();
    if (this.firesAt > now && this.firesAt <= deadline) return;
    this.arm(deadline - now);
    this.firesAt = deadline;
  }

  /**
   * After a run. A timer that already fired would keep re-firing: stop it now. One still pending
   * is left armed for the next run, and stopped once the thread has been idle a moment, so an idle
   * thread is not woken by signals for nothing.
   */
  settle(): void {
    if (this.firesAt === 0) return;
    if (this.firesAt <= performance.now()) {
      this.disarm();
      return;
    }
    this.lastRunEnd = performance.now();
    if (!this.idleCheck) {
      this.idleCheck = setTimeout(() => {
        this.idleCheck = undefined;
        if (performance.now() - this.lastRunEnd >= IDLE_DISARM_MS * 0.9) this.disarm();
        else this.settle();
      }, IDLE_DISARM_MS);
      this.idleCheck.unref();
    }
  }

  disarm(): void {
    if (this.firesAt === 0) return;
    this.spec.fill(0);
    check('timer_settime', timerSettime(this.id, 0, this.spec, null));
    this.firesAt = 0;
  }

  /** Stops and deletes the timer: a kernel timer outlives the thread that made it otherwise. */
  close(): void {
    this.disarm();
    check('timer_delete', timerDelete(this.id));
  }

  private lastRunEnd = 0;
  private idleCheck: ReturnType<typeof setTimeout> | undefined;

  /** Fires after `ms`, then every few milliseconds until re-armed or settled. */
  private arm(ms: number): void {
    timespec(this.spec, 0, REFIRE_MS);
    timespec(this.spec, 16, Math.max(ms, 0.001));
    check('timer_settime', timerSettime(this.id, 0, this.spec, null));
  }
}

let threadTimer: ThreadTimer | undefined;
/** The calling thread's timer (module state is per thread in Node); deleted when the thread exits. */
export function threadTimerInstance(): ThreadTimer {
  if (!threadTimer) {
    const timer = new ThreadTimer();
    process.once('exit', () => timer.close());
    threadTimer = timer;
  }
  return threadTimer;
}
