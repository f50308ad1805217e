// Shares one thread between the guest calls that run on it and everything else the thread does
// (its connections, timers, host calls). A guest runs at most a slice at a time; the guest time
// of one turn of the event loop is bounded by a budget of one slice, and a call that wants to run
// past it waits for a later turn, in arrival order; waiting calls run one after another while the
// turn's budget lasts. So whatever the guests do, the thread's other
// work waits at most about one slice per turn, and busy calls share the rest of the thread fairly.
import { performance } from 'node:perf_hooks';

export class Turns {
  /** Guest time spent since the budget was last renewed. */
  private usedMs = 0;
  private readonly queue: Array<() => void> = [];
  private renewal = false;

  /** `sliceMs`: the longest one run of a guest, and the guest time allowed per turn of the event loop. */
  constructor(readonly sliceMs: number) {}

  /** Resolves when the caller may run a guest slice: at once while this turn has budget left and no one is waiting. */
  take(): Promise<void> | undefined {
    if (this.usedMs < this.sliceMs && this.queue.length === 0) return undefined;
    this.renewSoon();
    return new Promise((resolve) => this.queue.push(resolve));
  }

  /**
   * Runs `run` as one slice and counts its time against this turn's budget. While budget is
   * left, the next waiting call runs in this turn too (after this one's continuation).
   */
  charge<T>(run: () => T): T {
    const t0 = performance.now();
    try {
      return run();
    } finally {
      this.usedMs += performance.now() - t0;
      if (this.usedMs < this.sliceMs) this.queue.shift()?.();
      this.renewSoon();
    }
  }

  /**
   * After the event loop's next I/O phase (an immediate runs after it), the budget is renewed and
   * the longest-waiting call runs its slice; the others wait for the turns after.
   */
  private renewSoon(): void {
    if (this.renewal) return;
    this.renewal = true;
    setImmediate(() => {
      this.renewal = false;
      this.usedMs = 0;
      const next = this.queue.shift();
      if (next) next();
      if (this.queue.length > 0) this.renewSoon();
    });
  }
}
