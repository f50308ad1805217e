// Request records as they travel between threads (records.ts has the record): a shard's
// batcher writes them into columns of numbers and string indexes in shared memory, sent as one
// message a batch (RecordBatcher says when); the log thread serialises them (record-writer.ts) or
// decodes them for a filter, then hands the columns back (`releaseBatch`) for a later batch to
// reuse: a busy shard allocates no memory per batch, and nothing is copied or transferred.
import { CACHE_RESULTS, type CacheResult, type RequestRecord, TIME_ORIGIN } from './records.ts';

/** Numbers of a record in a batch, in this order; strings are indexes into the batch's table. */
export const NUMS = 12;
export const STRS = 8;
const CACHE_CODES: ReadonlyMap<CacheResult, number> = new Map(CACHE_RESULTS.map((c, i) => [c, i]));
export const KINDS = ['origin', 'program'] as const;

/**
 * Records as they travel between threads: columns of numbers and of string indexes (in shared
 * memory, which a message shares rather than copies), and the distinct strings once each.
 * Building one costs a request a few stores: no object per request, and the message is one per batch.
 */
export interface EncodedBatch {
  count: number;
  nums: Float64Array<ArrayBufferLike>;
  strs: Uint32Array<ArrayBufferLike>;
  /** Index 0 of `strs` means null; i means table[i - 1]. */
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

/** When a batch goes: `intervalMs` after its first record, or at once at `maxRecords`. */
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

/** A batch's columns, and its state word, in one piece of shared memory. */
interface ColumnSet {
  capacity: number;
  nums: Float64Array<SharedArrayBuffer>;
  strs: Uint32Array<SharedArrayBuffer>;
  state: Int32Array<SharedArrayBuffer>;
}

function columnSet(capacity: number): ColumnSet {
  // The state word first, padded to 8 bytes for the numbers after it.
  const memory = new SharedArrayBuffer(8 + capacity * (NUMS * 8 + STRS * 4));
  return {
    capacity,
    state: new Int32Array(memory, 0, 1),
    nums: new Float64Array(memory, 8, capacity * NUMS),
    strs: new Uint32Array(memory, 8 + capacity * NUMS * 8, capacity * STRS),
  };
}

/** Batches a shard's records, sent as BATCH_TIMING says; a batch's columns grow with it, and are reused once released. */
export class RecordBatcher {
  private count = 0;
  /** The column sets this batcher reuses (KEPT_SETS at most), and the one being filled. */
  private readonly sets: ColumnSet[] = [];
  private set: ColumnSet;
  private table: string[] = [];
  private index = new Map<string, number>();
  /** The string last added to each of the first four columns by `pushFast`, and its index. */
  private readonly last: Array<string | undefined> = [undefined, undefined, undefined, undefined];
  private readonly lastIndex = new Uint32Array(4);
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly send: (batch: EncodedBatch) => void, private readonly timing: BatchTiming = BATCH_TIMING) {
    this.set = columnSet(Math.min(FIRST_CAPACITY, timing.maxRecords));
    this.sets.push(this.set);
  }

  /** Adds a complete record (a bound function: records call it when they complete). */
  readonly push = (r: RequestRecord): void => {
    if (this.count === this.set.capacity) this.grow();
    const n = this.count * NUMS;
    const nums = this.set.nums;
    nums[n] = r.time; nums[n + 1] = r.shard; nums[n + 2] = r.status; nums[n + 3] = r.cache === null ? -1 : CACHE_CODES.get(r.cache)!;
    nums[n + 4] = r.backendKind === null ? -1 : KINDS.indexOf(r.backendKind); nums[n + 5] = r.totalUs; nums[n + 6] = r.vmUs; nums[n + 7] = r.guestUs;
    nums[n + 8] = r.vmExits; nums[n + 9] = r.dirtyPages; nums[n + 10] = r.bytes; nums[n + 11] = r.originStatus ?? -1;
    const m = this.count * STRS;
    const strs = this.set.strs;
    strs[m] = this.str(r.tenant); strs[m + 1] = this.str(r.host); strs[m + 2] = this.str(r.method); strs[m + 3] = this.str(r.url);
    strs[m + 4] = this.str(r.backend); strs[m + 5] = this.str(r.version); strs[m + 6] = this.str(r.error);
    strs[m + 7] = r.logs.length === 0 ? 0 : this.str(JSON.stringify(r.logs));
    this.added();
  };

  /** Adds the record of a fast-path hit, straight into the columns. */
  pushFast(shard: number, tenant: string, host: string, method: string, url: string, status: number, bytes: number, startedMs: number, totalUs: number): void {
    if (this.count === this.set.capacity) this.grow();
    const n = this.count * NUMS;
    const nums = this.set.nums;
    nums[n] = Math.round(TIME_ORIGIN + startedMs); nums[n + 1] = shard; nums[n + 2] = status; nums[n + 3] = FAST_HIT;
    nums[n + 4] = -1; nums[n + 5] = Math.round(totalUs); nums[n + 6] = 0; nums[n + 7] = 0; nums[n + 8] = 0; nums[n + 9] = 0; nums[n + 10] = bytes; nums[n + 11] = -1;
    const m = this.count * STRS;
    const strs = this.set.strs;
    strs[m] = this.strAt(0, tenant); strs[m + 1] = this.strAt(1, host); strs[m + 2] = this.strAt(2, method); strs[m + 3] = this.strAt(3, url);
    strs[m + 4] = 0; strs[m + 5] = 0; strs[m + 6] = 0; strs[m + 7] = 0;
    this.added();
  }

  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.count === 0) return;
    const sent = this.set;
    Atomics.store(sent.state, 0, IN_USE);
    const batch: EncodedBatch = { count: this.count, nums: sent.nums, strs: sent.strs, table: this.table, state: sent.state };
    // The next batch starts with room for as many as this one held: a busy shard's batches do not grow again.
    this.set = this.nextSet(Math.min(Math.max(FIRST_CAPACITY, this.count), this.timing.maxRecords));
    this.count = 0;
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
    const kept = this.sets.indexOf(old);
    if (kept >= 0) this.sets[kept] = set;
    this.set = set;
  }

  private added(): void {
    if (++this.count >= this.timing.maxRecords) this.flush();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.timing.intervalMs);
      // Records waiting must never keep a process alive.
      this.timer.unref();
    }
  }
}

const FAST_HIT = CACHE_RESULTS.indexOf('fast-hit');

/** The records of a batch, as objects again (on the log thread). */
export function decodeBatch(b: EncodedBatch): RequestRecord[] {
  const out: RequestRecord[] = [];
  const s = (i: number): string | null => (i === 0 ? null : b.table[i - 1]!);
  for (let k = 0; k < b.count; k++) {
    const n = k * NUMS;
    const m = k * STRS;
    const x = b.nums;
    const logs = s(b.strs[m + 7]!);
    out.push({
      time: x[n]!, shard: x[n + 1]!, tenant: s(b.strs[m]!)!, host: s(b.strs[m + 1]!)!, method: s(b.strs[m + 2]!)!, url: s(b.strs[m + 3]!)!, status: x[n + 2]!,
      cache: x[n + 3]! < 0 ? null : CACHE_RESULTS[x[n + 3]!]!, backend: s(b.strs[m + 4]!), backendKind: x[n + 4]! < 0 ? null : KINDS[x[n + 4]!]!,
      version: s(b.strs[m + 5]!), totalUs: x[n + 5]!, vmUs: x[n + 6]!, guestUs: x[n + 7]!, vmExits: x[n + 8]!, dirtyPages: x[n + 9]!, bytes: x[n + 10]!,
      originStatus: x[n + 11]! < 0 ? null : x[n + 11]!, error: s(b.strs[m + 6]!), logs: logs === null ? [] : (JSON.parse(logs) as string[]),
    });
  }
  return out;
}
