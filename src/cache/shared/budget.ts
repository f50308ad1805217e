// The shared store's budget and namespaces: creating a namespace and setting its quota, the global
// budget (which may grow at a reload up to the reserve the store was made with), bytes a namespace
// holds outside its records, and the counters. store.ts builds the lookups and removals beside them.
import { lock, unlock } from './lock.ts';
import * as L from './layout.ts';
import { RecordPlacement } from './placing.ts';

export interface NamespaceStats {
  objects: number;
  bytes: number;
  quotaBytes: number;
  evictions: number;
}

export interface StoreStats {
  objects: number;
  bytes: number;
  maxBytes: number;
  /** The most `maxBytes` may grow to (`SharedStoreOptions.reserveBytes`). */
  reservedBytes: number;
  evictions: number;
  namespaces: number;
  /** Bytes the arena has grown to, and the most it may grow to. */
  arenaBytes: number;
  arenaMaxBytes: number;
  /** Bytes of arena blocks in use (live records and dead ones still pinned by a reader). */
  arenaUsedBytes: number;
}

/** The budget and namespace side of the store. */
export class Budgets extends RecordPlacement {
  /**
   * The id of the namespace called `name` (the same in every thread), created on first use; every
   * call sets its quota (capped at the budget), evicting down to it.
   */
  namespace(name: string, quotaBytes: number): number {
    const bytes = L.ownBytes(name);
    if (bytes.length > L.NS_NAME_BYTES) throw new RangeError(`namespace name longer than ${L.NS_NAME_BYTES} bytes`);
    const u8 = new Uint8Array(this.ctl.buffer);
    lock(this.ctl, L.G_LOCK);
    try {
      const count = this.ctl[L.G_NS_COUNT]!;
      for (let id = 0; id < count; id++) {
        const off = L.nsOffset(id);
        if (this.ctl[off / 4 + L.N_NAME_LEN] === bytes.length && L.bytesEqual(u8, off + 48, bytes)) {
          this.setQuota(id, quotaBytes);
          return id;
        }
      }
      if (count === this.nsMax) throw new RangeError(`more than ${this.nsMax} namespaces`);
      const off = L.nsOffset(count);
      this.ctl[off / 4 + L.N_NAME_LEN] = bytes.length;
      this.ctl[off / 4 + L.N_LRU_HEAD] = this.ctl[off / 4 + L.N_LRU_TAIL] = L.NIL;
      u8.set(bytes, off + 48);
      this.setQuota(count, quotaBytes);
      Atomics.store(this.ctl, L.G_NS_COUNT, count + 1);
      return count;
    } finally {
      unlock(this.ctl, L.G_LOCK);
    }
  }

  /** Sets the quota of namespace `ns`, evicting its least recently used records down to it. */
  resize(ns: number, quotaBytes: number): void {
    this.write(ns, () => this.setQuota(ns, quotaBytes));
  }

  /**
   * Charges (or, negative, refunds) bytes namespace `ns` holds outside its records (its threads'
   * ban lists), then evicts its least recently used records until its quota and the budget hold.
   */
  charge(ns: number, delta: number): void {
    this.write(ns, () => {
      this.account(ns, delta, 0);
      if (delta > 0) {
        this.evictNamespace(ns, 0);
        while (this.f64[L.F_BYTES]! > this.f64[L.F_MAX_BYTES]! && this.evictOldest()) { /* evicting */ }
      }
    });
  }

  /**
   * A new budget, for every thread at once: lower, it evicts down to it; higher, up to the reserve
   * the store was made with (`SharedStoreOptions.reserveBytes`), it lets every namespace whose
   * quota is then raised (`resize`) hold more. Past the reserve it stays at the reserve: the
   * caller compares `globalStats().maxBytes`.
   */
  setBudget(maxBytes: number): void {
    if (!(maxBytes > 0)) throw new RangeError('shared store maxBytes must be positive');
    this.write(null, () => {
      this.f64[L.F_MAX_BYTES] = Math.min(maxBytes, this.f64[L.F_RESERVED_BYTES]!);
      while (this.f64[L.F_BYTES]! > this.f64[L.F_MAX_BYTES]! && this.evictOldest()) { /* evicting */ }
    });
  }


  stats(ns: number): NamespaceStats {
    return this.write(ns, () => {
      const f = L.nsOffset(ns) / 8;
      return { objects: this.f64[f + L.N_OBJECTS]!, bytes: this.f64[f + L.N_BYTES]!, quotaBytes: this.f64[f + L.N_QUOTA]!, evictions: this.f64[f + L.N_EVICTIONS]! };
    });
  }

  globalStats(): StoreStats {
    lock(this.ctl, L.G_LOCK);
    try {
      return {
        objects: this.f64[L.F_OBJECTS]!, bytes: this.f64[L.F_BYTES]!, maxBytes: this.f64[L.F_MAX_BYTES]!, reservedBytes: this.f64[L.F_RESERVED_BYTES]!,
        evictions: this.f64[L.F_EVICTIONS]!,
        namespaces: this.ctl[L.G_NS_COUNT]!, arenaBytes: this.arena.byteLength, arenaMaxBytes: this.arena.maxByteLength, arenaUsedBytes: this.arena.usedBytes,
      };
    } finally {
      unlock(this.ctl, L.G_LOCK);
    }
  }

  /** With the lock held: the quota, capped at the budget; evicts down to it. */
  protected setQuota(ns: number, quotaBytes: number): void {
    if (!(quotaBytes > 0)) throw new RangeError('namespace quota must be positive');
    this.f64[L.nsOffset(ns) / 8 + L.N_QUOTA] = Math.min(quotaBytes, this.f64[L.F_MAX_BYTES]!);
    this.evictNamespace(ns, 0);
  }
}
