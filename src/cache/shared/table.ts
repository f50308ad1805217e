// The record table under the shared store's lock: hash chains, LRU lists, accounting, eviction,
// and the life of a record's slot and block (live, dead but pinned by a reader, free). store.ts
// builds the public operations on it; layout.ts says where each field lives.
import { Arena } from './arena.ts';
import * as L from './layout.ts';
import { seqBegin, seqEnd } from './lock.ts';
import { TagIndex } from './tags.ts';

/** What another thread needs to attach the store: structured-cloneable (workerData, postMessage). */
export interface SharedStoreHandle {
  readonly control: SharedArrayBuffer;
  readonly index: SharedArrayBuffer;
  /** The arena's segments (arena.ts), in order. */
  readonly arena: readonly SharedArrayBuffer[];
}

/** A thread's views of a store's buffers, and the writer-side operations on its records. */
export class RecordTable {
  protected readonly ctl: Int32Array;
  protected readonly f64: Float64Array;
  protected readonly idx: Int32Array;
  protected readonly arena: Arena;
  protected readonly records: number;
  protected readonly bucketBase: number;
  protected readonly bucketMask: number;
  protected readonly nsMax: number;
  protected readonly tagIndex: TagIndex;

  protected constructor(handle: SharedStoreHandle) {
    this.ctl = new Int32Array(handle.control);
    this.f64 = new Float64Array(handle.control);
    this.idx = new Int32Array(handle.index);
    this.arena = new Arena(handle.arena);
    this.records = this.ctl[L.G_RECORDS]!;
    this.bucketBase = this.records * L.REC_WORDS;
    this.bucketMask = this.ctl[L.G_BUCKETS]! - 1;
    this.nsMax = this.ctl[L.G_NS_MAX]!;
    this.tagIndex = new TagIndex(this.ctl, this.idx, this.arena, this.bucketBase + this.bucketMask + 1, this.bucketMask + 1);
  }

  /** Whether the record is still stored (not removed, evicted or replaced). */
  isLive(id: number, gen: number): boolean {
    if (!(id >= 0 && id < this.records)) return false;
    const w = id * L.REC_WORDS;
    return Atomics.load(this.idx, w + L.R_GEN) === gen && Atomics.load(this.idx, w + L.R_STATE) === L.LIVE;
  }

  /** Evicts the namespace's least recently used records until `extra` more bytes fit its quota. */
  protected evictNamespace(ns: number, extra: number): void {
    const f = L.nsOffset(ns) / 8;
    const tail = L.nsOffset(ns) / 4 + L.N_LRU_TAIL;
    while (this.f64[f + L.N_BYTES]! + extra > this.f64[f + L.N_QUOTA]! && this.ctl[tail] !== L.NIL) this.kill(this.ctl[tail]!, true);
  }

  /** Evicts the least recently used record of all; false when there is none. */
  protected evictOldest(): boolean {
    const id = this.ctl[L.G_LRU_TAIL]!;
    if (id === L.NIL) return false;
    this.kill(id, true);
    return true;
  }

  /** The live records of (`ns`, `key`) in chain order; with the lock held. */
  protected chain(ns: number, hash: number, key: L.Key): number[] {
    const ids: number[] = [];
    for (let id = this.idx[this.bucketBase + (hash & this.bucketMask)]!; id !== L.NIL; id = this.idx[id * L.REC_WORDS + L.R_NEXT]!) {
      if (this.matches(id, ns, hash, key)) ids.push(id);
    }
    return ids;
  }

  /**
   * Walks the chain without the lock, pinning each record of (`ns`, `key`). A pin counts only if
   * the slot still holds the same live record after it was taken (the writer that kills a record
   * bumps its generation before it reads the pin count, so one of the two always sees the other).
   * Answers (id, gen) pairs, flat.
   */
  protected pinChain(ns: number, hash: number, key: L.Key): number[] {
    const ids: number[] = [];
    // Plain reads walk the chain and guess the generation; the sequence counter (lookup) checks
    // the walk and the atomic read after the pin checks the guess.
    let id = this.idx[this.bucketBase + (hash & this.bucketMask)]!;
    for (let steps = 0; id !== L.NIL && steps < this.records; steps++) {
      const w = id * L.REC_WORDS;
      if (this.idx[w + L.R_HASH] === hash && this.idx[w + L.R_NS] === ns) {
        const gen = this.idx[w + L.R_GEN]!;
        Atomics.add(this.idx, w + L.R_PINS, 1);
        if (Atomics.load(this.idx, w + L.R_GEN) === gen && this.matches(id, ns, hash, key)) ids.push(id, gen);
        else Atomics.sub(this.idx, w + L.R_PINS, 1);
      }
      id = this.idx[w + L.R_NEXT]!;
    }
    return ids;
  }

  protected matches(id: number, ns: number, hash: number, key: L.Key): boolean {
    const w = id * L.REC_WORDS;
    if (!(Atomics.load(this.idx, w + L.R_STATE) === L.LIVE && this.idx[w + L.R_HASH] === hash && this.idx[w + L.R_NS] === ns && this.idx[w + L.R_KEY_LEN] === key.length)) return false;
    const cell = this.idx[w + L.R_DATA]!;
    const seg = this.arena.segment(cell);
    return L.keyEqual(this.arena.words(seg), this.arena.bytes(seg), this.arena.byteIn(cell), key);
  }

  /**
   * Takes a live record out of the cache for a purge (or a replacement): no lookup finds it from
   * now on. A record still being filled stays for the readers already following it — unlisted,
   * still charged — until its writer completes it or abandons it (`kill` then); any other record
   * is killed now.
   */
  protected drop(id: number): void {
    const w = id * L.REC_WORDS;
    const flags = this.idx[w + L.R_FLAGS]!;
    if ((flags & L.FLAG_UNLISTED) !== 0) return;
    if ((flags & L.FLAG_FILLING) === 0) {
      this.kill(id, false);
      return;
    }
    this.delist(id);
    Atomics.or(this.idx, w + L.R_FLAGS, L.FLAG_UNLISTED);
    // No longer an object of the cache; its bytes stay charged until the block can go.
    this.account(this.idx[w + L.R_NS]!, 0, -1);
  }

  /** Takes a record out of its hash chain, the LRU lists and its tags' lists. */
  private delist(id: number): void {
    const w = id * L.REC_WORDS;
    const bucket = this.bucketBase + (this.idx[w + L.R_HASH]! & this.bucketMask);
    seqBegin(this.ctl, L.G_SEQ);
    if (this.idx[bucket] === id) Atomics.store(this.idx, bucket, this.idx[w + L.R_NEXT]!);
    else {
      let prev = this.idx[bucket]!;
      while (this.idx[prev * L.REC_WORDS + L.R_NEXT] !== id) prev = this.idx[prev * L.REC_WORDS + L.R_NEXT]!;
      Atomics.store(this.idx, prev * L.REC_WORDS + L.R_NEXT, this.idx[w + L.R_NEXT]!);
    }
    seqEnd(this.ctl, L.G_SEQ);
    this.unlinkLru(id);
    this.tagIndex.unlink(id);
  }

  /**
   * Unlinks a live record (unless a purge unlisted it already) and uncharges it; its block is
   * freed now, or once no reader pins it.
   */
  protected kill(id: number, evicted: boolean): void {
    const w = id * L.REC_WORDS;
    const ns = this.idx[w + L.R_NS]!;
    const listed = (this.idx[w + L.R_FLAGS]! & L.FLAG_UNLISTED) === 0;
    if (listed) this.delist(id);
    this.account(ns, -this.idx[w + L.R_CHARGED]!, listed ? -1 : 0);
    if (evicted) {
      this.f64[L.F_EVICTIONS]!++;
      this.f64[L.nsOffset(ns) / 8 + L.N_EVICTIONS]!++;
    }
    Atomics.store(this.idx, w + L.R_STATE, L.DEAD);
    Atomics.add(this.idx, w + L.R_GEN, 1);
    // Readers following a filling record wake to find it gone.
    Atomics.add(this.idx, w + L.R_FILL_SEQ, 1);
    Atomics.notify(this.idx, w + L.R_FILL_SEQ);
    if (Atomics.load(this.idx, w + L.R_PINS) === 0) this.reclaim(id);
    else {
      this.idx[w + L.R_NEXT] = this.ctl[L.G_ZOMBIES]!;
      this.ctl[L.G_ZOMBIES] = id;
    }
  }

  /** Whether a record slot can be had: a freed one, or one never used. */
  protected hasSlot(): boolean {
    return this.ctl[L.G_FREE] !== L.NIL || this.ctl[L.G_SLOTS_USED]! < this.records;
  }

  /** Takes a record slot; `hasSlot()` said there is one. */
  protected takeSlot(): number {
    const id = this.ctl[L.G_FREE]!;
    if (id === L.NIL) return this.ctl[L.G_SLOTS_USED]!++;
    this.ctl[L.G_FREE] = this.idx[id * L.REC_WORDS + L.R_NEXT]!;
    return id;
  }

  /** Frees the block (and a stream's extents) and the slot of a dead record no reader pins. */
  protected reclaim(id: number): void {
    const w = id * L.REC_WORDS;
    if ((this.idx[w + L.R_FLAGS]! & L.FLAG_STREAM) !== 0) {
      // A stream's extents past the first, which is in its block (streams.ts).
      const hc = L.streamCell(this.idx, id);
      const i32 = this.arena.words(this.arena.segment(hc));
      const h = this.arena.wordIn(hc);
      for (let e = 1; e < i32[h + L.S_EXTENTS]!; e++) this.arena.free(i32[h + L.S_TABLE + 2 * e]!);
    }
    this.arena.free(this.tagIndex.blockOf(id));
    Atomics.store(this.idx, w + L.R_STATE, L.FREE);
    this.idx[w + L.R_NEXT] = this.ctl[L.G_FREE]!;
    this.ctl[L.G_FREE] = id;
  }

  /** Reclaims the dead records whose readers have all unpinned them. */
  protected sweep(): void {
    let id = this.ctl[L.G_ZOMBIES]!;
    this.ctl[L.G_ZOMBIES] = L.NIL;
    while (id !== L.NIL) {
      const next = this.idx[id * L.REC_WORDS + L.R_NEXT]!;
      if (Atomics.load(this.idx, id * L.REC_WORDS + L.R_PINS) === 0) this.reclaim(id);
      else {
        this.idx[id * L.REC_WORDS + L.R_NEXT] = this.ctl[L.G_ZOMBIES]!;
        this.ctl[L.G_ZOMBIES] = id;
      }
      id = next;
    }
  }

  protected account(ns: number, bytes: number, objects: number): void {
    const f = L.nsOffset(ns) / 8;
    this.f64[L.F_BYTES] = this.f64[L.F_BYTES]! + bytes;
    this.f64[L.F_OBJECTS] = this.f64[L.F_OBJECTS]! + objects;
    this.f64[f + L.N_BYTES] = this.f64[f + L.N_BYTES]! + bytes;
    this.f64[f + L.N_OBJECTS] = this.f64[f + L.N_OBJECTS]! + objects;
  }

  /** Puts a record at the head of the global and its namespace's LRU lists. */
  protected linkLru(id: number): void {
    const nsWord = L.nsOffset(this.idx[id * L.REC_WORDS + L.R_NS]!) / 4;
    this.link(id, L.R_LRU_PREV, L.R_LRU_NEXT, L.G_LRU_HEAD, L.G_LRU_TAIL);
    this.link(id, L.R_NS_PREV, L.R_NS_NEXT, nsWord + L.N_LRU_HEAD, nsWord + L.N_LRU_TAIL);
  }

  protected unlinkLru(id: number): void {
    const nsWord = L.nsOffset(this.idx[id * L.REC_WORDS + L.R_NS]!) / 4;
    this.unlink(id, L.R_LRU_PREV, L.R_LRU_NEXT, L.G_LRU_HEAD, L.G_LRU_TAIL);
    this.unlink(id, L.R_NS_PREV, L.R_NS_NEXT, nsWord + L.N_LRU_HEAD, nsWord + L.N_LRU_TAIL);
  }

  /** Links at the head of a doubly linked list: fields `prev`/`next` of records, ends in ctl. */
  protected link(id: number, prev: number, next: number, head: number, tail: number): void {
    const first = this.ctl[head]!;
    this.idx[id * L.REC_WORDS + prev] = L.NIL;
    this.idx[id * L.REC_WORDS + next] = first;
    if (first === L.NIL) this.ctl[tail] = id;
    else this.idx[first * L.REC_WORDS + prev] = id;
    this.ctl[head] = id;
  }

  protected unlink(id: number, prev: number, next: number, head: number, tail: number): void {
    const p = this.idx[id * L.REC_WORDS + prev]!;
    const n = this.idx[id * L.REC_WORDS + next]!;
    if (p === L.NIL) this.ctl[head] = n;
    else this.idx[p * L.REC_WORDS + next] = n;
    if (n === L.NIL) this.ctl[tail] = p;
    else this.idx[n * L.REC_WORDS + prev] = p;
  }

  /** Ms since the store was created, as an int32 (wraps after 24 days; touch compares modulo). */
  protected now(): number {
    return (Date.now() - this.f64[L.F_EPOCH]!) | 0;
  }
}
