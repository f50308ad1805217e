// Request records as they travel between threads (records.ts has the record): a shard's
// batcher writes them into columns of numbers and string indexes in shared memory, sent as one
// message a batch (RecordBatcher says when); the log thread tests them against readers' filters
// (record-filter.ts) and serialises them (record-writer.ts) from the columns, then hands them
// back (`releaseBatch`) for a later batch to reuse: a busy shard allocates no memory per batch,
// and nothing is copied or transferred.
// A fast-path hit, the commonest record by far, is a narrow row of its own (`FAST_WORDS` words):
// what the serving thread writes for it is a quarter of a full record's, and the log thread,
// which has the time, reads it as a full one (`loadRow`).
import { CACHE_RESULTS, type CacheResult, type RequestRecord, TIME_ORIGIN } from './records.ts';

/**
 * Numbers of a record in a batch, in this order (the last: how many fast-path hits' rows came
 * before it in the batch, which keeps the two kinds of row in order); strings are indexes into
 * the batch's table.
 */
export const NUMS = 13;
export const STRS = 8;
/**
 * Words (32-bit integers) of a fast-path hit's row: its time less the batch's `fastTime`, totalUs,
 * status, bytes, and the table indexes of its tenant, host, method and URL. Everything else of
 * such a record is the same for all of them (`fastShard`, no backend, no VM figures).
 */
export const FAST_WORDS = 8;
const INT32_MAX = 0x7fffffff;
const CACHE_CODES: ReadonlyMap<CacheResult, number> = new Map(CACHE_RESULTS.map((c, i) => [c, i]));
export const KINDS = ['origin', 'program'] as const;

/**
 * Records as they travel between threads: columns of numbers and of string indexes (in shared
 * memory, which a message shares rather than copies), and the distinct strings once each.
 * Building one costs a request a few stores: no object per request, and the message is one per batch.
 * Two kinds of row: full records (`wideNums`, `wideStrs`: `count - fastCount` of them) and
 * fast-path hits (`fast`); `rowOrder` says which row each record is, in the order they came.
 */
export interface EncodedBatch {
  /** Records of every kind. */
  count: number;
  wideNums: Float64Array<ArrayBufferLike>;
  wideStrs: Uint32Array<ArrayBufferLike>;
  fast: Int32Array<ArrayBufferLike>;
  fastCount: number;
  /** What the fast rows' times are counted from (epoch ms), and the shard of every fast row. */
  fastTime: number;
  fastShard: number;
  /** Index 0 of a string column means null; i means table[i - 1]. */
  table: string[];
  /** The columns' state word, in their shared memory: IN_USE until whoever took the batch releases it. */
  state: Int32Array<ArrayBufferLike>;
}

const FREE = 0;
const IN_USE = 1;

/**
 * Says that nothing reads the batch's columns any more: its shard may write a later batch into
 * them. Whoever ends a batch's journey calls it once (the log thread when it has written the
 * batch out, the main thread when it drops one); a batch never released costs only its reuse.
 */
export function releaseBatch(b: EncodedBatch): void {
  Atomics.store(b.state, 0, FREE);
}

/**
 * When a batch goes: at the first tick of a clock of period `intervalMs` after its first record,
 * or at once at `maxRecords`; but a tick after a batch that went full lets the records since
 * wait for the next tick: at a rate that fills batches, every batch
 * then goes full, where one at each tick with the rest as well would double their count, and each
 * costs the log thread a wake-up and a message (~0.15 ms of its CPU under nested KVM:
 * docs/benchmarks.md). So a record waits at most two periods. The clock runs while records come,
 * and stops at a tick that finds none.
 */
export interface BatchTiming {
  intervalMs: number;
  /** Bounds a batch's memory: its columns, and the bytes serialised from it. */
  maxRecords: number;
}

/**
 * A tenth of a second: each batch costs the threads it passes a wake-up and a message, and
 * longer batches cost less of those, but the log thread serialises a batch in one go, which on a
 * core it shares with a shard holds that shard's requests meanwhile. Measured (docs/benchmarks.md,
 * "The live request log"): at 10,000 hits a second, 500 ms batches cost the same server CPU per
 * hit as 100 ms ones and raised the hits' p99 from 2.8 to 9.7 ms.
 */
export const BATCH_TIMING: BatchTiming = { intervalMs: 100, maxRecords: 8192 };

/** Records a new batch has room for; it grows (doubling) up to `maxRecords`. */
const FIRST_CAPACITY = 256;

/**
 * Column sets a batcher keeps for reuse. Two take turns while the log thread keeps up (one
 * filling, one being written out); more are made only while batches wait to be released, and
 * past this many a batch's columns are used once and left to the garbage collector.
 */
const KEPT_SETS = 4;

/** A batch's columns (room for `capacity` records of either kind), and its state word, in one piece of shared memory. */
interface ColumnSet {
  capacity: number;
  nums: Float64Array<SharedArrayBuffer>;
  strs: Uint32Array<SharedArrayBuffer>;
  fast: Int32Array<SharedArrayBuffer>;
  state: Int32Array<SharedArrayBuffer>;
}

function columnSet(capacity: number): ColumnSet {
  // The state word first, padded to 8 bytes for the numbers after it.
  const memory = new SharedArrayBuffer(8 + capacity * (NUMS * 8 + STRS * 4 + FAST_WORDS * 4));
  return {
    capacity,
    state: new Int32Array(memory, 0, 1),
    nums: new Float64Array(memory, 8, capacity * NUMS),
    strs: new Uint32Array(memory, 8 + capacity * NUMS * 8, capacity * STRS),
    fast: new Int32Array(memory, 8 + capacity * (NUMS * 8 + STRS * 4), capacity * FAST_WORDS),
  };
}

/** Batches a shard's records, sent as BATCH_TIMING says; a batch's columns grow with it, and are reused once released. */
export class RecordBatcher {
  /** Records of either kind in the batch, and of them the fast-path hits' rows. */
  private count = 0;
  private fastCount = 0;
  private fastTime = 0;
  private fastShard = 0;
  /** The column sets this batcher reuses (KEPT_SETS at most), and the one being filled. */
  private readonly sets: ColumnSet[] = [];
  private set: ColumnSet;
  private table: string[] = [];
  private index = new Map<string, number>();
  /** The string last added to each of the first four columns by `pushFast`, and its index. */
  private readonly last: Array<string | undefined> = [undefined, undefined, undefined, undefined];
  private readonly lastIndex = new Uint32Array(4);
  /**
   * The batches' clock: one interval while records come, not a timeout a batch. A timeout a
   * batch added and removed a list of Node's timers ten times a second, and the raw front's own
   * timer calls (then a new timeout once or twice a request) ran 0.11-0.19 µs a hit slower with
   * a reader attached in four perf profiles of the serving thread; with the interval, +0.02
   * (docs/observability.md).
   */
  private clock: ReturnType<typeof setInterval> | undefined;
  /** Whether a batch went full since the clock's last tick. */
  private wentFull = false;
  private readonly tick = (): void => {
    const wentFull = this.wentFull;
    this.wentFull = false;
    if (wentFull && this.count > 0) return;
    if (this.count > 0) this.flush();
    else {
      clearInterval(this.clock);
      this.clock = undefined;
    }
  };

  constructor(private readonly send: (batch: EncodedBatch) => void, private readonly timing: BatchTiming = BATCH_TIMING) {
    this.set = columnSet(Math.min(FIRST_CAPACITY, timing.maxRecords));
    this.sets.push(this.set);
  }

  /** Adds a complete record (a bound function: records call it when they complete). */
  readonly push = (r: RequestRecord): void => {
    if (this.count === this.set.capacity) this.grow();
    const w = this.count - this.fastCount;
    const n = w * NUMS;
    const nums = this.set.nums;
    nums[n] = r.time; nums[n + 1] = r.shard; nums[n + 2] = r.status; nums[n + 3] = r.cache === null ? -1 : CACHE_CODES.get(r.cache)!;
    nums[n + 4] = r.backendKind === null ? -1 : KINDS.indexOf(r.backendKind); nums[n + 5] = r.totalUs; nums[n + 6] = r.vmUs; nums[n + 7] = r.guestUs;
    nums[n + 8] = r.vmExits; nums[n + 9] = r.dirtyPages; nums[n + 10] = r.bytes; nums[n + 11] = r.originStatus ?? -1; nums[n + 12] = this.fastCount;
    const m = w * STRS;
    const strs = this.set.strs;
    strs[m] = this.str(r.tenant); strs[m + 1] = this.str(r.host); strs[m + 2] = this.str(r.method); strs[m + 3] = this.str(r.url);
    strs[m + 4] = this.str(r.backend); strs[m + 5] = this.str(r.version); strs[m + 6] = this.str(r.error);
    strs[m + 7] = r.logs.length === 0 ? 0 : this.str(JSON.stringify(r.logs));
    this.added();
  };

  /**
   * Adds the record of a fast-path hit as a row of FAST_WORDS words (a full record's row when a
   * figure does not fit one: a body of 2 GiB or more, another shard than the batch's fast rows').
   */
  pushFast(shard: number, tenant: string, host: string, method: string, url: string, status: number, bytes: number, startedMs: number, totalUs: number): void {
    if (this.count === this.set.capacity) this.grow();
    const time = Math.round(TIME_ORIGIN + startedMs);
    const us = Math.round(totalUs);
    if (this.fastCount === 0) {
      this.fastTime = time;
      this.fastShard = shard;
    }
    const offset = time - this.fastTime;
    if ((offset | 0) !== offset || !(us <= INT32_MAX) || !(bytes <= INT32_MAX) || shard !== this.fastShard) {
      this.push({
        time, shard, tenant, host, method, url, status, cache: 'fast-hit', backend: null, backendKind: null, version: null, totalUs: us,
        vmUs: 0, guestUs: 0, vmExits: 0, dirtyPages: 0, bytes, originStatus: null, error: null, logs: [],
      });
      return;
    }
    const k = this.fastCount * FAST_WORDS;
    const fast = this.set.fast;
    fast[k] = offset; fast[k + 1] = us; fast[k + 2] = status; fast[k + 3] = bytes;
    fast[k + 4] = this.strAt(0, tenant); fast[k + 5] = this.strAt(1, host); fast[k + 6] = this.strAt(2, method); fast[k + 7] = this.strAt(3, url);
    this.fastCount++;
    this.added();
  }

  flush(): void {
    if (this.count === 0) return;
    const sent = this.set;
    Atomics.store(sent.state, 0, IN_USE);
    const batch: EncodedBatch = {
      count: this.count, wideNums: sent.nums, wideStrs: sent.strs, fast: sent.fast, fastCount: this.fastCount, fastTime: this.fastTime,
      fastShard: this.fastShard, table: this.table, state: sent.state,
    };
    // The next batch starts with room for as many as this one held: a busy shard's batches do not grow again.
    this.set = this.nextSet(Math.min(Math.max(FIRST_CAPACITY, this.count), this.timing.maxRecords));
    this.count = 0;
    this.fastCount = 0;
    this.table = [];
    this.index.clear();
    this.last.fill(undefined);
    this.send(batch);
  }

  /** A released set of those kept (it grows if it must), or a new one with room for `capacity` records. */
  private nextSet(capacity: number): ColumnSet {
    for (const s of this.sets) if (Atomics.load(s.state, 0) === FREE) return s;
    const fresh = columnSet(capacity);
    if (this.sets.length < KEPT_SETS) this.sets.push(fresh);
    return fresh;
  }

  /**
   * `str` for a fast-path hit's column `slot`, which mostly holds what the record before held:
   * comparing with that string is cheaper than hashing a new one for the table.
   */
  private strAt(slot: number, v: string): number {
    if (v === this.last[slot]) return this.lastIndex[slot]!;
    const i = this.str(v);
    this.last[slot] = v;
    this.lastIndex[slot] = i;
    return i;
  }

  private str(v: string | null): number {
    if (v === null) return 0;
    let i = this.index.get(v);
    if (i === undefined) {
      i = this.table.push(v);
      this.index.set(v, i);
    }
    return i;
  }

  /** Doubles the batch's room, up to `maxRecords` (a full batch goes before it would need more); a kept set is replaced by the larger one. */
  private grow(): void {
    const old = this.set;
    const set = columnSet(Math.min(old.capacity * 2, this.timing.maxRecords));
    set.nums.set(old.nums);
    set.strs.set(old.strs);
    set.fast.set(old.fast);
    const kept = this.sets.indexOf(old);
    if (kept >= 0) this.sets[kept] = set;
    this.set = set;
  }

  private added(): void {
    if (++this.count >= this.timing.maxRecords) {
      this.flush();
      this.wentFull = true;
    } else if (this.clock === undefined) {
      this.clock = setInterval(this.tick, this.timing.intervalMs);
      // Records waiting must never keep a process alive.
      this.clock.unref();
    }
  }
}

const FAST_HIT = CACHE_RESULTS.indexOf('fast-hit');

/**
 * Where each of a batch's records is, in the order they came: `order[k]` is the row of record k,
 * w ≥ 0 for full row w, ~f (< 0) for fast row f. Written into `into` when it has room (the log
 * thread reuses one), else into memory of its own.
 */
export function rowOrder(b: EncodedBatch, into?: Int32Array): Int32Array {
  const order = into !== undefined && into.length >= b.count ? into : new Int32Array(2 ** Math.ceil(Math.log2(Math.max(1, b.count))));
  const wide = b.count - b.fastCount;
  let f = 0;
  let k = 0;
  for (let w = 0; w < wide; w++) {
    for (const end = b.wideNums[w * NUMS + 12]!; f < end; f++) order[k++] = ~f;
    order[k++] = w;
  }
  for (; f < b.fastCount; f++) order[k++] = ~f;
  return order;
}

/**
 * Copies the record in `row` (as `rowOrder` names it) into `nums` and `strs` at record `slot`,
 * as a full row: the writer reads each record so, in memory that stays in the cache, rather than
 * the whole batch widened.
 */
export function loadRow(b: EncodedBatch, row: number, nums: Float64Array, strs: Uint32Array, slot: number): void {
  const n = slot * NUMS;
  const m = slot * STRS;
  if (row >= 0) {
    const wn = b.wideNums;
    const ws = b.wideStrs;
    for (let i = 0; i < NUMS; i++) nums[n + i] = wn[row * NUMS + i]!;
    for (let i = 0; i < STRS; i++) strs[m + i] = ws[row * STRS + i]!;
    return;
  }
  const fast = b.fast;
  const r = ~row * FAST_WORDS;
  nums[n] = b.fastTime + fast[r]!; nums[n + 1] = b.fastShard; nums[n + 2] = fast[r + 2]!; nums[n + 3] = FAST_HIT; nums[n + 4] = -1;
  nums[n + 5] = fast[r + 1]!; nums[n + 6] = 0; nums[n + 7] = 0; nums[n + 8] = 0; nums[n + 9] = 0; nums[n + 10] = fast[r + 3]!; nums[n + 11] = -1; nums[n + 12] = 0;
  strs[m] = fast[r + 4]!; strs[m + 1] = fast[r + 5]!; strs[m + 2] = fast[r + 6]!; strs[m + 3] = fast[r + 7]!;
  strs[m + 4] = 0; strs[m + 5] = 0; strs[m + 6] = 0; strs[m + 7] = 0;
}
