// One cache store in shared memory for every shard thread (issue 12): records (one per stored
// variant of an object) in namespaces (one per tenant) under one global byte budget and a quota per
// namespace, LRU eviction, removal by key or tag, and claims that coalesce fetches across threads.
// Any thread that attaches the store's handle reads and writes it directly; docs/cache.md "Shared
// store" describes the layout, the concurrency rules and how long a record's views stay valid.
import { Arena, CELL } from './arena.ts';
import { Claims, type ClaimOptions } from './claims.ts';
import * as L from './layout.ts';
import { lock, unlock } from './lock.ts';
import { recordViewFactory, type RecordViewFactory, type SharedRecord } from './record.ts';
import type { SharedStoreHandle } from './table.ts';
import { Budgets, type NamespaceStats, type StoreStats } from './budget.ts';
import { RECORD_OVERHEAD, TAG_NODE_BYTES, type RecordInit, type RecordRef } from './placing.ts';
import { scratchKey, type RecordSummary } from './walks.ts';

export { RECORD_OVERHEAD, TAG_NODE_BYTES };
/** The largest body the store keeps (a stream's limit; a block is at most one 2 GiB arena segment). */
export { MAX_STREAM_BYTES as MAX_STORED_BODY_BYTES } from './streams.ts';
export type { ClaimOptions, NamespaceStats, RecordInit, RecordRef, RecordSummary, SharedRecord, SharedStoreHandle, StoreStats };

/** Arena room beyond the budget, as a fraction of it: what fragmentation may use at most. */
const ARENA_SLACK = 0.25;
/** Plus this much, so that one largest body (8 MiB) fits beside a small budget's fragments. */
const ARENA_EXTRA = 16 * 2 ** 20;
/** The largest reserve: arena offsets are int32 counts of cells, so the arena holds 32 GiB at most. */
export const MAX_RESERVE_BYTES = Math.floor((2 ** 31 * CELL - ARENA_EXTRA) / (1 + ARENA_SLACK));
/** Seqlock read attempts before a reader takes the writers' lock instead. */
const READ_RETRIES = 64;

/** The memory a new store asks for cannot be reserved: a reserve out of bounds, or refused by Node.js. */
export class ReserveError extends RangeError {}

/** A new store's sizes. */
export interface SharedStoreOptions {
  /** Budget for the charged bytes of all namespaces together. */
  maxBytes: number;
  /**
   * The most the budget may grow to later (`setBudget`), at most MAX_RESERVE_BYTES; default
   * `maxBytes`. The arena's address space, the record slots and the buckets are sized for it; of
   * that, memory is used only as records need it, but for the buckets (8 bytes per KiB).
   */
  reserveBytes?: number;
  /** Record slots; default one per KiB of the reserve, at least 1024. */
  maxRecords?: number;
  /** Default 1024. */
  maxNamespaces?: number;
  /** Claims that may be held at once (rounded up to a power of two); default 1024. */
  claimSlots?: number;
  /** Touches of one record closer together than this do not move it in the LRU; default 1000. */
  touchIntervalMs?: number;
  /**
   * Bytes of each of the arena's segments (a power of two, 64 KiB to 2 GiB; default 2 GiB): a
   * block, so a record, is at most one segment. Smaller segments are for tests.
   */
  segmentBytes?: number;
}

/** `bytes` in GiB, for messages. */
function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

function pow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(2, n)));
}

/** The shared store as one thread sees it. */
export class SharedStore extends Budgets {
  private readonly claims: Claims;
  private readonly view: RecordViewFactory;

  /** A new, empty store. */
  static create(options: SharedStoreOptions): SharedStore {
    if (!(options.maxBytes > 0)) throw new RangeError('shared store maxBytes must be positive');
    const reserve = options.reserveBytes ?? options.maxBytes;
    if (!(reserve >= options.maxBytes)) throw new ReserveError(`a reserve of ${reserve} bytes is less than the budget (${options.maxBytes})`);
    if (reserve > MAX_RESERVE_BYTES) throw new ReserveError(`a reserve of ${reserve} bytes (${gib(reserve)}) is more than the store can address (${MAX_RESERVE_BYTES}, ${gib(MAX_RESERVE_BYTES)})`);
    const records = options.maxRecords ?? Math.max(1024, Math.ceil(reserve / 1024));
    const buckets = pow2(records);
    const namespaces = options.maxNamespaces ?? 1024;
    const claims = pow2(options.claimSlots ?? 1024);
    const control = new SharedArrayBuffer(L.controlBytes(namespaces, claims));
    const arenaBytes = Math.ceil(reserve * (1 + ARENA_SLACK)) + ARENA_EXTRA;
    let index: SharedArrayBuffer;
    let arena: Arena;
    try {
      // Record slots, key buckets, tag buckets: the slots' memory is touched only as they are used.
      index = new SharedArrayBuffer((records * L.REC_WORDS + 2 * buckets) * 4);
      arena = Arena.create(arenaBytes, options.segmentBytes);
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      throw new ReserveError(`cannot reserve the shared memory of a cache of up to ${reserve} bytes (${gib(reserve)}: an arena of ${gib(arenaBytes)} and an index of ${gib(records * L.REC_WORDS * 4)}): Node.js ${process.version} refused it (${err.message})`);
    }
    const ctl = new Int32Array(control);
    const f64 = new Float64Array(control);
    ctl[L.G_LRU_HEAD] = ctl[L.G_LRU_TAIL] = ctl[L.G_ZOMBIES] = ctl[L.G_FREE] = L.NIL;
    ctl[L.G_NS_MAX] = namespaces;
    ctl[L.G_RECORDS] = records;
    ctl[L.G_BUCKETS] = buckets;
    ctl[L.G_CLAIMS] = claims;
    ctl[L.G_TOUCH_MS] = options.touchIntervalMs ?? 1000;
    ctl[L.G_TAG_SEED] = crypto.getRandomValues(new Int32Array(1))[0]!;
    f64[L.F_MAX_BYTES] = options.maxBytes;
    f64[L.F_RESERVED_BYTES] = reserve;
    f64[L.F_EPOCH] = Date.now();
    new Int32Array(index).fill(L.NIL, records * L.REC_WORDS);
    return new SharedStore({ control, index, arena: arena.segments });
  }

  private constructor(handle: SharedStoreHandle) {
    super(handle);
    this.claims = new Claims(this.ctl, this.f64);
    this.view = recordViewFactory(this.idx, this.arena, this.f64[L.F_EPOCH]!);
  }

  /** The store seen from another thread, through the handle `handle()` gave. */
  static attach(handle: SharedStoreHandle): SharedStore {
    return new SharedStore(handle);
  }

  handle(): SharedStoreHandle {
    return { control: this.ctl.buffer as SharedArrayBuffer, index: this.idx.buffer as SharedArrayBuffer, arena: this.arena.segments };
  }

  /** Removes every record of namespace `ns`; answers how many. */
  clear(ns: number): number {
    return this.write(ns, () => {
      let n = 0;
      for (let id = this.ctl[L.nsOffset(ns) / 4 + L.N_LRU_HEAD]!; id !== L.NIL; id = this.ctl[L.nsOffset(ns) / 4 + L.N_LRU_HEAD]!, n++) this.drop(id);
      return n;
    });
  }

  /**
   * The live records of (`ns`, `key`), most recently inserted first, each pinned: its `meta` and
   * `body` are views into shared memory that stay valid (same bytes, not reused) until the caller
   * calls its `unpin()`, which it must do exactly once, also when the record has been removed.
   */
  lookup(ns: number, key: string): SharedRecord[] {
    const keyBytes = scratchKey(key);
    const hash = L.hashKey(ns, keyBytes);
    for (let attempt = 0; attempt < READ_RETRIES; attempt++) {
      const seq = Atomics.load(this.ctl, L.G_SEQ);
      if ((seq & 1) !== 0) continue;
      const found = this.pinChain(ns, hash, keyBytes);
      if (Atomics.load(this.ctl, L.G_SEQ) === seq) return this.views(found);
      // A writer relinked a chain meanwhile: the walk may have missed records or strayed.
      for (let i = 0; i < found.length; i += 2) Atomics.sub(this.idx, found[i]! * L.REC_WORDS + L.R_PINS, 1);
    }
    lock(this.ctl, L.G_LOCK);
    try {
      return this.views(this.pinChain(ns, hash, keyBytes));
    } finally {
      unlock(this.ctl, L.G_LOCK);
    }
  }

  /** Whether the record is live and in the cache (not unlisted by a purge while filling). */
  private isListed(id: number, gen: number): boolean {
    return this.isLive(id, gen) && (Atomics.load(this.idx, id * L.REC_WORDS + L.R_FLAGS) & L.FLAG_UNLISTED) === 0;
  }

  /** Removes the record if it is still the one named; answers whether it was. */
  remove(id: number, gen: number): boolean {
    if (!(id >= 0 && id < this.records)) return false;
    return this.write(null, () => {
      if (!this.isLive(id, gen)) return false;
      this.drop(id);
      return true;
    });
  }

  /** Removes every record of (`ns`, `key`); answers how many. */
  removeKey(ns: number, key: string): number {
    const keyBytes = scratchKey(key);
    const hash = L.hashKey(ns, keyBytes);
    return this.write(ns, () => {
      const ids = this.chain(ns, hash, keyBytes);
      for (const id of ids) this.drop(id);
      return ids.length;
    });
  }


  /**
   * Marks the record used now: it moves to the head of the LRU lists, unless it moved there less
   * than the touch interval ago (a hit then costs two atomic loads). Answers whether it is live.
   */
  touch(id: number, gen: number): boolean {
    const w = id * L.REC_WORDS;
    if (!this.isListed(id, gen)) return false;
    const now = this.now();
    if (((now - this.idx[w + L.R_TOUCHED]!) | 0) < this.ctl[L.G_TOUCH_MS]!) return true;
    return this.write(null, () => {
      if (!this.isListed(id, gen)) return false;
      this.unlinkLru(id);
      this.linkLru(id);
      this.idx[w + L.R_TOUCHED] = now;
      return true;
    });
  }

  /** Claims (`ns`, `key`) for fetching; see Claims.claim. */
  claim(ns: number, key: string, options?: ClaimOptions): true | Promise<void> {
    const keyBytes = scratchKey(key);
    return this.claims.claim(ns, L.hashKey(ns, keyBytes), L.hashKey2(ns, keyBytes), options);
  }

  /** Ends a claim (after inserting the record, or giving up) and wakes its waiters. */
  release(ns: number, key: string): void {
    const keyBytes = scratchKey(key);
    this.claims.release(ns, L.hashKey(ns, keyBytes), L.hashKey2(ns, keyBytes));
  }


  /** The record named, pinned as `lookup` pins, or null when it is no longer stored. */
  pin(id: number, gen: number): SharedRecord | null {
    if (!(id >= 0 && id < this.records)) return null;
    const w = id * L.REC_WORDS;
    Atomics.add(this.idx, w + L.R_PINS, 1);
    if (this.isLive(id, gen)) return this.view(id, gen);
    Atomics.sub(this.idx, w + L.R_PINS, 1);
    return null;
  }

  /** Records that the record named has been tested against the bans up to `seq`. */
  setBanSeq(id: number, gen: number, seq: number): void {
    if (!(id >= 0 && id < this.records)) return;
    this.write(null, () => {
      if (this.isLive(id, gen)) this.idx[id * L.REC_WORDS + L.R_BAN_SEQ] = seq;
    });
  }


  private views(pairs: number[]): SharedRecord[] {
    const out: SharedRecord[] = [];
    for (let i = 0; i < pairs.length; i += 2) out.push(this.view(pairs[i]!, pairs[i + 1]!));
    return out;
  }
}
