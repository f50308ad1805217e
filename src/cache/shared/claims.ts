// Coalescing across threads: the claim table of the shared store. The first thread to claim a key
// fetches it; the others wait (Atomics.waitAsync on the claim's wake counter, so their event loops
// keep running) until the claimer releases the key or the claim's deadline passes, whichever comes
// first. The deadline is what keeps a claimer that died from blocking the key forever: an expired
// claim is taken over by the next thread that asks.
//
// Claims hold no key bytes, only two independent 32-bit hashes of namespace + key: two keys
// colliding on both (about 1 in 2^64) only make one wait for the other's fetch, then claim again.
import { C_DEADLINE, C_HASH, C_HASH2, C_NS, C_STATE, C_WAKE, EMPTY, G_CLAIMS, G_LOCK, G_NS_MAX, HELD, TOMB, claimOffset } from './layout.ts';
import { lock, unlock } from './lock.ts';

/** How long a claim lasts, and how long a waiter waits at most. */
export interface ClaimOptions {
  /** The claim's deadline, from now: past it another thread may take it over. Default 10 s. */
  ttlMs?: number;
  /** A waiter's own limit; its promise resolves then even if the claim still holds. */
  timeoutMs?: number;
}

const DEFAULT_TTL_MS = 10_000;

/** The claim table in a store's control buffer, as one thread sees it. */
export class Claims {
  private readonly ctl: Int32Array;
  private readonly f64: Float64Array;
  private readonly count: number;
  private readonly namespaces: number;

  constructor(ctl: Int32Array, f64: Float64Array) {
    this.ctl = ctl;
    this.f64 = f64;
    this.count = ctl[G_CLAIMS]!;
    this.namespaces = ctl[G_NS_MAX]!;
  }

  /**
   * `true` when the caller now holds the claim and should fetch; otherwise a promise that resolves
   * when the holder releases it, its deadline passes or `timeoutMs` elapses (then look up again,
   * and claim again if there is still nothing). With the table full every caller fetches.
   */
  claim(ns: number, hash: number, hash2: number, options: ClaimOptions = {}): true | Promise<void> {
    const now = Date.now();
    let wake: number;
    let index: number;
    let waitMs: number;
    lock(this.ctl, G_LOCK);
    try {
      let free = -1;
      let found = -1;
      for (let i = 0, slot = hash & (this.count - 1); i < this.count; i++, slot = (slot + 1) & (this.count - 1)) {
        const w = this.word(slot);
        const state = this.ctl[w + C_STATE];
        if (state === EMPTY) {
          if (free < 0) free = slot;
          break;
        }
        if (state === HELD && this.ctl[w + C_NS] === ns && this.ctl[w + C_HASH] === hash && this.ctl[w + C_HASH2] === hash2) {
          found = slot;
          break;
        }
        if (free < 0 && (state === TOMB || this.f64[this.word(slot) / 2 + C_DEADLINE]! <= now)) free = slot;
      }
      const deadline = now + (options.ttlMs ?? DEFAULT_TTL_MS);
      if (found >= 0 && this.f64[this.word(found) / 2 + C_DEADLINE]! <= now) {
        // The holder is gone or late: the caller takes the claim over.
        this.f64[this.word(found) / 2 + C_DEADLINE] = deadline;
        return true;
      }
      if (found < 0) {
        if (free < 0) return true;
        const w = this.word(free);
        this.ctl[w + C_STATE] = HELD;
        this.ctl[w + C_NS] = ns;
        this.ctl[w + C_HASH] = hash;
        this.ctl[w + C_HASH2] = hash2;
        this.f64[w / 2 + C_DEADLINE] = deadline;
        return true;
      }
      index = this.word(found) + C_WAKE;
      wake = Atomics.load(this.ctl, index);
      waitMs = Math.min(options.timeoutMs ?? Infinity, this.f64[this.word(found) / 2 + C_DEADLINE]! - now);
    } finally {
      unlock(this.ctl, G_LOCK);
    }
    const result = Atomics.waitAsync(this.ctl, index, wake, waitMs);
    if (!result.async) return Promise.resolve();
    // A pending waitAsync does not keep Node's event loop alive; this timer does, for as long.
    const keepAlive = setTimeout(() => undefined, waitMs + 1);
    return result.value.then(() => clearTimeout(keepAlive));
  }

  /** Ends the claim on the key (if any) and wakes every thread waiting for it. */
  release(ns: number, hash: number, hash2: number): void {
    let wake = -1;
    lock(this.ctl, G_LOCK);
    try {
      for (let i = 0, slot = hash & (this.count - 1); i < this.count; i++, slot = (slot + 1) & (this.count - 1)) {
        const w = this.word(slot);
        const state = this.ctl[w + C_STATE];
        if (state === EMPTY) break;
        if (state !== HELD || this.ctl[w + C_NS] !== ns || this.ctl[w + C_HASH] !== hash || this.ctl[w + C_HASH2] !== hash2) continue;
        this.ctl[w + C_STATE] = TOMB;
        wake = w + C_WAKE;
        Atomics.add(this.ctl, wake, 1);
        // A tombstone followed by an empty slot ends no probe sequence: empty it, and the ones before.
        for (let s = slot; this.ctl[this.word(s) + C_STATE] === TOMB && this.ctl[this.word((s + 1) & (this.count - 1)) + C_STATE] === EMPTY; s = (s - 1) & (this.count - 1)) {
          this.ctl[this.word(s) + C_STATE] = EMPTY;
        }
        break;
      }
    } finally {
      unlock(this.ctl, G_LOCK);
    }
    if (wake >= 0) Atomics.notify(this.ctl, wake);
  }

  /** First int32 word of claim slot `slot`. */
  private word(slot: number): number {
    return claimOffset(this.namespaces, slot) / 4;
  }
}
