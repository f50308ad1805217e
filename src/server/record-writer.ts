// The live log's serialisation: the records of a batch (record-batch.ts, as full rows) as NDJSON or Server-Sent
// Events, written straight from the batch's columns into one buffer, byte for byte what
// JSON.stringify of each record's logged form gives (records.ts, `LogRecord`: the keys without
// a value left out). It runs on the log thread for every record a reader takes, so it avoids
// what costs there: a string per record, and calls into the runtime.
import { type EncodedBatch, FAST_WORDS, KINDS, loadRow, NUMS, rowOrder, STRS } from './record-batch.ts';
import { CACHE_RESULTS } from './records.ts';

/** The text between a record's values, as bytes (all ASCII). */
const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const NOTHING = ascii('');
/** A record's start and end in each format. */
const FRAMES = { ndjson: [ascii('{"time":'), ascii('}\n')], sse: [ascii('data: {"time":'), ascii('}\n\n')] } as const;
const K_SHARD = ascii(',"shard":');
const K_TENANT = ascii(',"tenant":');
const K_HOST = ascii(',"host":');
const K_METHOD = ascii(',"method":');
const K_URL = ascii(',"url":');
const K_STATUS = ascii(',"status":');
/** `cache` with its value, by cache code + 1 (index 0: none, left out). */
const K_CACHE = [NOTHING, ...CACHE_RESULTS.map((c) => ascii(`,"cache":"${c}"`))];
const K_BACKEND = ascii(',"backend":');
/** `backendKind` with its value, by kind + 1 (index 0: none, left out). */
const K_KIND = [NOTHING, ...KINDS.map((k) => ascii(`,"backendKind":"${k}"`))];
const K_VERSION = ascii(',"version":');
const K_TOTAL = ascii(',"totalUs":');
const K_VM = ascii(',"vmUs":');
const K_GUEST = ascii(',"guestUs":');
const K_EXITS = ascii(',"vmExits":');
const K_DIRTY = ascii(',"dirtyPages":');
const K_BYTES = ascii(',"bytes":');
const K_ORIGIN = ascii(',"originStatus":');
const K_ERROR = ascii(',"error":');
const K_LOGS = ascii(',"logs":');
/** Bytes of a record besides its strings, its numbers and its frame: its keys, every one present. */
const FIXED = [K_SHARD, K_TENANT, K_HOST, K_METHOD, K_URL, K_STATUS, K_BACKEND, K_VERSION, K_TOTAL, K_VM, K_GUEST, K_EXITS, K_DIRTY, K_BYTES, K_ORIGIN, K_ERROR, K_LOGS]
  .reduce((n, k) => n + k.length, 0) + Math.max(...K_CACHE.map((k) => k.length)) + Math.max(...K_KIND.map((k) => k.length));
/** The longest text of a number: an integer below 2^53 has 16 digits, any other is written as String() writes it (at most 24). */
const MAX_NUMBER = 24;

/**
 * Copies `src` to `out` at `p`. A loop in JavaScript moves a byte in a few ns, a call into the
 * runtime's copy costs tens: a byte loop only for the shortest pieces.
 */
function put(out: Uint8Array, p: number, src: Uint8Array): number {
  const n = src.length;
  if (n > 6) {
    out.set(src, p);
    return p + n;
  }
  for (let i = 0; i < n; i++) out[p + i] = src[i]!;
  return p + n;
}

/** How many pieces `BatchWriter` writes a record's text in. */
const PIECES = 6;

/**
 * The most records of a run of repeated fast-path hits written at once (`repeatRun`): what it
 * copies and then rewrites stays in the core's first-level cache (~5 KB), where a whole run's
 * copies, then a second pass over them, cost a third more in a microbenchmark (and one copy a
 * record, half as much again).
 */
const RUN = 32;

/** `sameAs` bits: every piece; piece 0 (time); piece 4 (totalUs). */
const ALL = (1 << PIECES) - 1;
const TIME = 1 << 0;
const TOTAL = 1 << 4;

/** Copies `out[from, to)` to `out` at `p` (a run of text a record shares with the one before). */
function copy(out: Uint8Array, p: number, from: number, to: number): number {
  out.copyWithin(p, from, to);
  return p + to - from;
}

/** Writes the digits of a non-negative integer below 2^31, `digits` of them (leading zeros to fill). */
function digitsOf(out: Uint8Array, p: number, v: number, digits: number): number {
  const end = p + digits;
  for (let q = end - 1; q >= p; q--) {
    const t = (v / 10) | 0;
    out[q] = 48 + v - t * 10;
    v = t;
  }
  return end;
}

function countDigits(v: number): number {
  let d = 1;
  while (v >= 10) {
    v = (v / 10) | 0;
    d++;
  }
  return d;
}

/** Powers of ten: the least integer of each number of digits (index 1: 1 digit, from 0). */
const LEAST = [0, 0, ...Array.from({ length: 16 }, (_, i) => 10 ** (i + 1))];

/**
 * Whether `v` and `was` are both integers of `w` digits (w ≤ 16), whose JSON text is just those
 * digits: then one's text can be rewritten into the other's in place.
 */
function sameDigits(v: number, was: number, w: number): boolean {
  if (w > 16) return false;
  const lo = LEAST[w]!;
  const hi = LEAST[w + 1]!;
  return v >= lo && v < hi && was >= lo && was < hi && Math.floor(v) === v && Math.floor(was) === was;
}

/**
 * Turns the digits of `was` that end at `end` into those of `v` (`sameDigits` holds): only the
 * trailing digits that differ are written (a record's time moves in its last few digits).
 */
function redigit(out: Uint8Array, end: number, v: number, was: number): void {
  if (v >= 0x80000000 || was >= 0x80000000) {
    // Above 31 bits: the high part (digits before the last eight), written whole if it changed.
    const high = Math.floor(v / 1e8);
    const wasHigh = Math.floor(was / 1e8);
    if (high !== wasHigh) digitsOf(out, end - 8 - countDigits(high), high, countDigits(high));
    v -= high * 1e8;
    was -= wasHigh * 1e8;
    if (high !== wasHigh) {
      digitsOf(out, end - 8, v, 8);
      return;
    }
  }
  let q = end;
  while (v !== was) {
    const t = (v / 10) | 0;
    out[--q] = 48 + v - t * 10;
    v = t;
    was = (was / 10) | 0;
  }
}

/** Writes a number as JSON text (what `JSON.stringify` writes for it). */
function num(out: Buffer, p: number, v: number): number {
  if (v >= 0 && v < 0x80000000 && (v | 0) === v) return digitsOf(out, p, v, countDigits(v));
  if (v >= 0 && v <= Number.MAX_SAFE_INTEGER && Number.isInteger(v)) {
    // Epoch milliseconds: the high part, then the low eight digits.
    const high = Math.floor(v / 1e8);
    p = digitsOf(out, p, high, countDigits(high));
    return digitsOf(out, p, v - high * 1e8, 8);
  }
  return p + out.write(Number.isFinite(v) ? String(v) : 'null', p, 'latin1');
}

/** A string as a JSON string's bytes: printable ASCII without `"` or `\\` is copied as is, anything else goes through JSON.stringify. */
function quoted(v: string): Buffer {
  const n = v.length;
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return Buffer.from(JSON.stringify(v));
  }
  const out = Buffer.allocUnsafe(n + 2);
  out[0] = 0x22;
  out.write(v, 1, 'latin1');
  out[n + 1] = 0x22;
  return out;
}

/**
 * Serialises records of a batch as JSON lines (or Server-Sent Events) straight from the columns
 * into one buffer: no string per record. Each distinct string is escaped and encoded once per
 * batch. A record is written from a full row in a ring of two (it and the one before, which stay
 * in the cache), whichever kind of row it travelled in, except the commonest: a run of
 * fast-path hits alike but for their time and total µs, each the bytes of the hit before the run
 * with those digits changed, read from the narrow rows themselves. The bytes are the UTF-8 of what
 * `JSON.stringify` of each record's logged form gives (a test checks it). `pick`: the records
 * to write, by index (all when omitted). `write`'s buffer is its own (not from Node's pool), so
 * its memory can be transferred to another thread; `writeInto` writes into memory the caller
 * has (the log thread's reused slots, log-slots.ts).
 */
export class BatchWriter {
  /** Each table string as a JSON string's bytes (index 0: none, empty), made on first use. */
  private strings: Uint8Array[] | undefined;
  /** Where the pieces of the record being written start (and the last ends), and those of the one before. */
  private readonly at = new Int32Array(PIECES + 1);
  private readonly before = new Int32Array(PIECES + 1);
  /** Logs entries (already JSON text) as bytes, by table index. */
  private readonly logs = new Map<number, Uint8Array>();
  /** The longest of `strings`. */
  private longest = 0;
  /** Which row each record is in (record-batch.ts, `rowOrder`). */
  private readonly order: Int32Array;
  /** The ring: the record being written (or sized) and the one before, as full rows. */
  private readonly nums = new Float64Array(2 * NUMS);
  private readonly strs = new Uint32Array(2 * STRS);

  /** `order`: memory for the batch's row order that the caller reuses (used when it has room). */
  constructor(private readonly b: EncodedBatch, order?: Int32Array) {
    this.order = rowOrder(b, order);
  }

  /** The row order this writer read the batch in (for the filters' `pickMatching` of the same batch). */
  get rows(): Int32Array {
    return this.order;
  }

  /** The records as bytes in a buffer of their own. */
  write(format: 'ndjson' | 'sse', pick?: readonly number[]): Buffer {
    const out = Buffer.allocUnsafeSlow(this.size(format, pick));
    return out.subarray(0, this.writeInto(out, format, pick));
  }

  /**
   * At least `size`, in constant time: as if every string of each record were the batch's
   * longest. What the log thread checks its buffer against before each batch; `size`, a pass
   * over the records, only when this is more than the buffer it has.
   */
  bound(format: 'ndjson' | 'sse', pick?: readonly number[]): number {
    this.tableBytes();
    const [head, close] = FRAMES[format];
    const count = pick === undefined ? this.b.count : pick.length;
    return count * (FIXED + head.length + close.length + NUMS * MAX_NUMBER + STRS * this.longest);
  }

  /** The most bytes `writeInto` may write for these records. */
  size(format: 'ndjson' | 'sse', pick?: readonly number[]): number {
    const str = this.tableBytes();
    const [head, close] = FRAMES[format];
    const st = this.strs;
    const count = pick === undefined ? this.b.count : pick.length;
    // Each record's strings, fixed part and longest numbers.
    let size = count * (FIXED + head.length + close.length + NUMS * MAX_NUMBER);
    for (let j = 0; j < count; j++) {
      loadRow(this.b, this.order[pick === undefined ? j : pick[j]!]!, this.nums, st, 0);
      for (let i = 0; i < STRS - 1; i++) size += str[st[i]!]!.length;
      size += this.logsOf(st[STRS - 1]!).length;
    }
    return size;
  }

  /** Writes the records into `out` (at least `size` bytes), from its start; returns how many bytes it wrote. */
  writeInto(out: Buffer, format: 'ndjson' | 'sse', pick?: readonly number[]): number {
    const b = this.b;
    this.tableBytes();
    const [head, close] = FRAMES[format];
    const count = pick === undefined ? b.count : pick.length;
    let p = 0;
    // A record is written as six pieces: its start and time; shard to the key of the URL; the
    // URL; status to the key of totalUs; totalUs; the rest. A piece whose values are those of
    // the record before it copies that record's bytes, and a run of such pieces is one copy.
    // Swapped after each record (copying them would be a call into the runtime per record).
    let at = this.at;
    let before = this.before;
    const x = this.nums;
    const order = this.order;
    /** The record before's row (as `rowOrder` names it), and the ring's slot it is loaded in (-1: none). */
    let prev = 0;
    let prevSlot = -1;
    for (let j = 0; j < count; j++) {
      let row = order[pick === undefined ? j : pick[j]!]!;
      /** The ring's slot this record is loaded in (-1: none, written from its narrow row). */
      let slot = -1;
      const q = ~prev * FAST_WORDS;
      if (j > 0 && row < 0 && prev < 0 && this.fastRepeats(row, q, before, head.length)) {
        // A run of fast-path hits that repeat the one before (the run's template) but for their
        // time and totalUs: the template copied once for each, in a few copies of doubling
        // length (a copy is a call into the runtime), then each one's digits rewritten.
        let end = j + 1;
        while (end < count && end - j < RUN) {
          const next = order[pick === undefined ? end : pick[end]!]!;
          if (next >= 0 || !this.fastRepeats(next, q, before, head.length)) break;
          end++;
        }
        p = this.repeatRun(out, at, before, q, pick, j, end);
        j = end - 1;
        row = order[pick === undefined ? j : pick[j]!]!;
      } else {
        // The record into the ring's other slot than the one before's (which is loaded, if it was not).
        slot = prevSlot === 0 ? 1 : 0;
        const pslot = slot ^ 1;
        loadRow(b, row, x, this.strs, slot);
        if (j > 0 && prevSlot !== pslot) loadRow(b, prev, x, this.strs, pslot);
        const n = slot * NUMS;
        const pn = pslot * NUMS;
        const same = j === 0 ? 0 : this.sameAs(n, slot * STRS, pn, pslot * STRS);
        if ((same | TIME | TOTAL) === ALL && this.repeats(before, head.length, x[n]!, x[pn]!, x[n + 5]!, x[pn + 5]!)) {
          p = this.repeat(out, p, at, before, x[n]!, x[pn]!, x[n + 5]!, x[pn + 5]!);
        } else p = this.pieces(out, p, n, slot * STRS, same, at, before, head, close);
      }
      const done = at;
      at = before;
      before = done;
      prev = row;
      prevSlot = slot;
    }
    return p;
  }

  /**
   * Whether a record the same as the one before but for its time and totalUs can be written as
   * that one's text with digits rewritten (`repeat`): each of the two is the same number, or has
   * as many digits as the text `before` holds for it.
   */
  private repeats(before: Int32Array, headLength: number, time: number, was: number, us: number, wasUs: number): boolean {
    return (time === was || sameDigits(time, was, before[1]! - before[0]! - headLength)) && (us === wasUs || sameDigits(us, wasUs, before[5]! - before[4]!));
  }

  /**
   * Whether the fast-path hit in `row` is the one at `q` (a fast row's word index) but for its
   * time and totalUs (its status, bytes and strings the same: the rest of such a record is the
   * same for all of them), and can be written as that one's text (`before`) with digits rewritten.
   */
  private fastRepeats(row: number, q: number, before: Int32Array, headLength: number): boolean {
    const fast = this.b.fast;
    const r = ~row * FAST_WORDS;
    return fast[r + 2] === fast[q + 2] && fast[r + 3] === fast[q + 3] && fast[r + 4] === fast[q + 4] && fast[r + 5] === fast[q + 5]
      && fast[r + 6] === fast[q + 6] && fast[r + 7] === fast[q + 7]
      && this.repeats(before, headLength, this.b.fastTime + fast[r]!, this.b.fastTime + fast[q]!, fast[r + 1]!, fast[q + 1]!);
  }

  /**
   * Writes records `from` to `end` (of `pick`, or of the batch), fast-path hits that each repeat
   * the one at `q` (written just before, at `before`) but for time and totalUs: its text copied
   * once for each, doubling what each copy takes, then each one's digits rewritten. Returns
   * where the last ends; sets `at` to the last one's pieces.
   */
  private repeatRun(out: Buffer, at: Int32Array, before: Int32Array, q: number, pick: readonly number[] | undefined, from: number, end: number): number {
    const fast = this.b.fast;
    const order = this.order;
    const base = before[0]!;
    const length = before[PIECES]! - base;
    const copies = end - from + 1;
    for (let have = 1; have < copies; ) {
      const more = Math.min(have, copies - have);
      out.copyWithin(base + have * length, base, base + more * length);
      have += more;
    }
    const was = this.b.fastTime + fast[q]!;
    const wasUs = fast[q + 1]!;
    const timeEnd = before[1]! - base;
    const usEnd = before[5]! - base;
    let start = base;
    for (let j = from; j < end; j++) {
      start += length;
      const r = ~order[pick === undefined ? j : pick[j]!]! * FAST_WORDS;
      const time = this.b.fastTime + fast[r]!;
      const us = fast[r + 1]!;
      if (time !== was) redigit(out, start + timeEnd, time, was);
      if (us !== wasUs) redigit(out, start + usEnd, us, wasUs);
    }
    const shift = start - base;
    for (let i = 0; i <= PIECES; i++) at[i] = before[i]! + shift;
    return start + length;
  }

  /**
   * Writes the record before again but for its time and totalUs (a run of hits): one copy, then
   * the digits that changed, in place; sets `at`.
   */
  private repeat(out: Buffer, p: number, at: Int32Array, before: Int32Array, time: number, was: number, us: number, wasUs: number): number {
    const shift = p - before[0]!;
    for (let i = 0; i <= PIECES; i++) at[i] = before[i]! + shift;
    p = copy(out, p, before[0]!, before[PIECES]!);
    if (time !== was) redigit(out, at[1]!, time, was);
    if (us !== wasUs) redigit(out, at[5]!, us, wasUs);
    return p;
  }

  private tableBytes(): Uint8Array[] {
    if (this.strings === undefined) {
      this.strings = [NOTHING, ...this.b.table.map(quoted)];
      // A logs entry's bytes (its JSON text as UTF-8) are never more than its text quoted as a
      // JSON string: quoting only adds quotes and escapes, each longer than what it escapes.
      for (const bytes of this.strings) this.longest = Math.max(this.longest, bytes.length);
    }
    return this.strings;
  }

  /** Writes a record piece by piece, copying the runs of pieces `same` says are those of the record before; sets `at`. */
  private pieces(out: Buffer, p: number, n: number, m: number, same: number, at: Int32Array, before: Int32Array, head: Uint8Array, close: Uint8Array): number {
    let from = 0;
    let to = 0;
    for (let i = 0; i < PIECES; i++) {
      at[i] = p + to - from;
      if ((same & (1 << i)) !== 0) {
        if (to === from) from = before[i]!;
        to = before[i + 1]!;
        continue;
      }
      if (to > from) p = copy(out, p, from, to);
      from = to = 0;
      p = this.piece(i, out, p, n, m, head, close);
    }
    if (to > from) p = copy(out, p, from, to);
    at[PIECES] = p;
    return p;
  }

  /** Which pieces of the text of the ring's record at `n`, `m` (bits, piece 0 first) are those of the one at `pn`, `pm`. */
  private sameAs(n: number, m: number, pn: number, pm: number): number {
    const x = this.nums;
    const st = this.strs;
    let same = 0;
    if (x[n] === x[pn]) same |= 1;
    if (x[n + 1] === x[pn + 1] && st[m] === st[pm] && st[m + 1] === st[pm + 1] && st[m + 2] === st[pm + 2]) same |= 2;
    if (st[m + 3] === st[pm + 3]) same |= 4;
    if (x[n + 2] === x[pn + 2] && x[n + 3] === x[pn + 3] && x[n + 4] === x[pn + 4] && st[m + 4] === st[pm + 4] && st[m + 5] === st[pm + 5]) same |= 8;
    if (x[n + 5] === x[pn + 5]) same |= 16;
    if (x[n + 6] === x[pn + 6] && x[n + 7] === x[pn + 7] && x[n + 8] === x[pn + 8] && x[n + 9] === x[pn + 9] && x[n + 10] === x[pn + 10]
      && x[n + 11] === x[pn + 11] && st[m + 6] === st[pm + 6] && st[m + 7] === st[pm + 7]) same |= 32;
    return same;
  }

  /** Writes piece `i` of a record's text (see `writeInto`). */
  private piece(i: number, out: Buffer, p: number, n: number, m: number, head: Uint8Array, close: Uint8Array): number {
    const x = this.nums;
    const st = this.strs;
    const str = this.strings!;
    switch (i) {
      case 0:
        p = put(out, p, head);
        return num(out, p, x[n]!);
      case 1:
        p = put(out, p, K_SHARD);
        p = num(out, p, x[n + 1]!);
        p = put(out, p, K_TENANT);
        p = put(out, p, str[st[m]!]!);
        p = put(out, p, K_HOST);
        p = put(out, p, str[st[m + 1]!]!);
        p = put(out, p, K_METHOD);
        p = put(out, p, str[st[m + 2]!]!);
        return put(out, p, K_URL);
      case 2:
        return put(out, p, str[st[m + 3]!]!);
      case 3:
        p = put(out, p, K_STATUS);
        p = num(out, p, x[n + 2]!);
        p = put(out, p, K_CACHE[x[n + 3]! + 1]!);
        if (st[m + 4] !== 0) {
          p = put(out, p, K_BACKEND);
          p = put(out, p, str[st[m + 4]!]!);
        }
        p = put(out, p, K_KIND[x[n + 4]! + 1]!);
        if (st[m + 5] !== 0) {
          p = put(out, p, K_VERSION);
          p = put(out, p, str[st[m + 5]!]!);
        }
        return put(out, p, K_TOTAL);
      case 4:
        return num(out, p, x[n + 5]!);
      default:
        return this.tail(out, p, n, m, close);
    }
  }

  /** A record's text after totalUs: the VM figures when it ran a VM call, bytes, and what else it has of the rest. */
  private tail(out: Buffer, p: number, n: number, m: number, close: Uint8Array): number {
    const x = this.nums;
    const st = this.strs;
    if (x[n + 6] !== 0 || x[n + 7] !== 0 || x[n + 8] !== 0 || x[n + 9] !== 0) {
      p = put(out, p, K_VM);
      p = num(out, p, x[n + 6]!);
      p = put(out, p, K_GUEST);
      p = num(out, p, x[n + 7]!);
      p = put(out, p, K_EXITS);
      p = num(out, p, x[n + 8]!);
      p = put(out, p, K_DIRTY);
      p = num(out, p, x[n + 9]!);
    }
    p = put(out, p, K_BYTES);
    p = num(out, p, x[n + 10]!);
    if (x[n + 11]! >= 0) {
      p = put(out, p, K_ORIGIN);
      p = num(out, p, x[n + 11]!);
    }
    if (st[m + 6] !== 0) {
      p = put(out, p, K_ERROR);
      p = put(out, p, this.strings![st[m + 6]!]!);
    }
    if (st[m + 7] !== 0) {
      p = put(out, p, K_LOGS);
      p = put(out, p, this.logsOf(st[m + 7]!));
    }
    return put(out, p, close);
  }

  private logsOf(i: number): Uint8Array {
    if (i === 0) return NOTHING;
    let bytes = this.logs.get(i);
    if (bytes === undefined) this.logs.set(i, (bytes = Buffer.from(this.b.table[i - 1]!)));
    return bytes;
  }
}
