// Request records as they travel between threads (records.ts has the record): a shard's
// batcher writes them into columns of numbers and string indexes, sent every 100 ms or 2048
// records (whichever comes first) as one message whose arrays are transferred, not copied; the
// log thread serialises them (BatchWriter) or decodes them for a filter.
import { CACHE_RESULTS, type CacheResult, type RequestRecord, TIME_ORIGIN } from './records.ts';

/** Numbers of a record in a batch, in this order; strings are indexes into the batch's table. */
const NUMS = 12;
const STRS = 8;
const CACHE_CODES: ReadonlyMap<CacheResult, number> = new Map(CACHE_RESULTS.map((c, i) => [c, i]));
const KINDS = ['origin', 'program'] as const;

/**
 * Records as they travel between threads: columns of numbers and of string indexes (transferred,
 * not copied), and the distinct strings once each. Building one costs a request a few stores:
 * no object per request, and the message is one per batch.
 */
export interface EncodedBatch {
  count: number;
  nums: Float64Array<ArrayBuffer>;
  strs: Uint32Array<ArrayBuffer>;
  /** Index 0 of `strs` means null; i means table[i - 1]. */
  table: string[];
}

/**
 * Batches a shard's records: sent every `intervalMs`, or at once when `max` are waiting. A batch
 * costs each thread it passes a wake-up and a message, so at the rates hits reach (tens of
 * thousands a second) batches go by time, ten a second.
 */
export class RecordBatcher {
  private count = 0;
  private nums: Float64Array<ArrayBuffer>;
  private strs: Uint32Array<ArrayBuffer>;
  private table: string[] = [];
  private index = new Map<string, number>();
  /** The string last added to each of the first four columns by `pushFast`, and its index. */
  private readonly last: Array<string | undefined> = [undefined, undefined, undefined, undefined];
  private readonly lastIndex = new Uint32Array(4);
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly send: (batch: EncodedBatch) => void, private readonly intervalMs = 100, private readonly max = 2048) {
    this.nums = new Float64Array(max * NUMS);
    this.strs = new Uint32Array(max * STRS);
  }

  /** Adds a complete record (a bound function: records call it when they complete). */
  readonly push = (r: RequestRecord): void => {
    const n = this.count * NUMS;
    const nums = this.nums;
    nums[n] = r.time; nums[n + 1] = r.shard; nums[n + 2] = r.status; nums[n + 3] = r.cache === null ? -1 : CACHE_CODES.get(r.cache)!;
    nums[n + 4] = r.backendKind === null ? -1 : KINDS.indexOf(r.backendKind); nums[n + 5] = r.totalUs; nums[n + 6] = r.vmUs; nums[n + 7] = r.guestUs;
    nums[n + 8] = r.vmExits; nums[n + 9] = r.dirtyPages; nums[n + 10] = r.bytes; nums[n + 11] = r.originStatus ?? -1;
    const m = this.count * STRS;
    const strs = this.strs;
    strs[m] = this.str(r.tenant); strs[m + 1] = this.str(r.host); strs[m + 2] = this.str(r.method); strs[m + 3] = this.str(r.url);
    strs[m + 4] = this.str(r.backend); strs[m + 5] = this.str(r.version); strs[m + 6] = this.str(r.error);
    strs[m + 7] = r.logs.length === 0 ? 0 : this.str(JSON.stringify(r.logs));
    this.added();
  };

  /** Adds the record of a fast-path hit, straight into the columns. */
  pushFast(shard: number, tenant: string, host: string, method: string, url: string, status: number, bytes: number, startedMs: number, totalUs: number): void {
    const n = this.count * NUMS;
    const nums = this.nums;
    nums[n] = Math.round(TIME_ORIGIN + startedMs); nums[n + 1] = shard; nums[n + 2] = status; nums[n + 3] = FAST_HIT;
    nums[n + 4] = -1; nums[n + 5] = Math.round(totalUs); nums[n + 6] = 0; nums[n + 7] = 0; nums[n + 8] = 0; nums[n + 9] = 0; nums[n + 10] = bytes; nums[n + 11] = -1;
    const m = this.count * STRS;
    const strs = this.strs;
    strs[m] = this.strAt(0, tenant); strs[m + 1] = this.strAt(1, host); strs[m + 2] = this.strAt(2, method); strs[m + 3] = this.strAt(3, url);
    strs[m + 4] = 0; strs[m + 5] = 0; strs[m + 6] = 0; strs[m + 7] = 0;
    this.added();
  }

  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.count === 0) return;
    const batch: EncodedBatch = { count: this.count, nums: this.nums, strs: this.strs, table: this.table };
    this.count = 0;
    this.nums = new Float64Array(this.max * NUMS);
    this.strs = new Uint32Array(this.max * STRS);
    this.table = [];
    this.index.clear();
    this.last.fill(undefined);
    this.send(batch);
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

  private added(): void {
    if (++this.count >= this.max) this.flush();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.intervalMs);
      // Records waiting must never keep a process alive.
      this.timer.unref();
    }
  }
}

const FAST_HIT = CACHE_RESULTS.indexOf('fast-hit');

/** The text between a record's values, as bytes (all ASCII). */
const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const NULL = ascii('null');
const EMPTY_LOGS = ascii('[]');
/** A record's start and end in each format. */
const FRAMES = { ndjson: [ascii('{"time":'), ascii('}\n')], sse: [ascii('data: {"time":'), ascii('}\n\n')] } as const;
const K_SHARD = ascii(',"shard":');
const K_TENANT = ascii(',"tenant":');
const K_HOST = ascii(',"host":');
const K_METHOD = ascii(',"method":');
const K_URL = ascii(',"url":');
const K_STATUS = ascii(',"status":');
/** `cache` with its value and the key after it, one piece per cache code (index 0: null). */
const K_CACHE = [ascii(',"cache":null,"backend":'), ...CACHE_RESULTS.map((c) => ascii(`,"cache":"${c}","backend":`))];
const K_KIND = [ascii(',"backendKind":null,"version":'), ...KINDS.map((k) => ascii(`,"backendKind":"${k}","version":`))];
const K_TOTAL = ascii(',"totalUs":');
const K_VM = ascii(',"vmUs":');
const K_GUEST = ascii(',"guestUs":');
const K_EXITS = ascii(',"vmExits":');
const K_DIRTY = ascii(',"dirtyPages":');
const K_BYTES = ascii(',"bytes":');
/** The four VM figures of a request that ran no VM call (every hit), and the key after them. */
const K_NO_VM = ascii(',"vmUs":0,"guestUs":0,"vmExits":0,"dirtyPages":0,"bytes":');
const K_ORIGIN = ascii(',"originStatus":');
const K_ERROR = ascii(',"error":');
const K_LOGS = ascii(',"logs":');
/** Bytes of a record besides its strings, its numbers and its frame: its keys, and null or [] where those are longest. */
const FIXED = [K_SHARD, K_TENANT, K_HOST, K_METHOD, K_URL, K_STATUS, K_TOTAL, K_VM, K_GUEST, K_EXITS, K_DIRTY, K_BYTES, K_ORIGIN, K_ERROR, K_LOGS]
  .reduce((n, k) => n + k.length, 0) + Math.max(...K_CACHE.map((k) => k.length)) + Math.max(...K_KIND.map((k) => k.length)) + NULL.length;
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

/** How many digits `num` writes for a non-negative integer below 2^53; 0 for any other number. */
function width(v: number): number {
  if (v >= 0 && v < 0x80000000 && (v | 0) === v) return countDigits(v);
  if (v >= 0 && v <= Number.MAX_SAFE_INTEGER && Number.isInteger(v)) return countDigits(Math.floor(v / 1e8)) + 8;
  return 0;
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
 * batch. The bytes are the UTF-8 of what `JSON.stringify` of the decoded record gives (a test
 * checks it). `pick`: the records to write, by index (all when omitted). The buffer is the
 * caller's own (not from Node's pool), so its memory can be transferred to another thread.
 */
export class BatchWriter {
  /** Each table string as a JSON string's bytes (index 0: null), made on first use. */
  private strings: Uint8Array[] | undefined;
  /** Where the pieces of the record being written start (and the last ends), and those of the one before. */
  private readonly at = new Int32Array(PIECES + 1);
  private readonly before = new Int32Array(PIECES + 1);
  /** Logs entries (already JSON text) as bytes, by table index. */
  private readonly logs = new Map<number, Uint8Array>();

  constructor(private readonly b: EncodedBatch) {}

  write(format: 'ndjson' | 'sse', pick?: readonly number[]): Buffer {
    const b = this.b;
    const str = (this.strings ??= [NULL, ...b.table.map(quoted)]);
    const [head, close] = FRAMES[format];
    const st = b.strs;
    const count = pick === undefined ? b.count : pick.length;
    // The size it may take: each record's strings, fixed part and longest numbers.
    let size = count * (FIXED + head.length + close.length + NUMS * MAX_NUMBER);
    for (let j = 0; j < count; j++) {
      const m = (pick === undefined ? j : pick[j]!) * STRS;
      for (let i = 0; i < STRS - 1; i++) size += str[st[m + i]!]!.length;
      size += this.logsOf(st[m + STRS - 1]!).length;
    }
    const out = Buffer.allocUnsafeSlow(size);
    let p = 0;
    // A record is written as six pieces: its start and time; shard to the key of the URL; the
    // URL; status to the key of totalUs; totalUs; the rest. A piece whose values are those of
    // the record before it copies that record's bytes, and a run of such pieces is one copy.
    // Swapped after each record (copying them would be a call into the runtime per record).
    let at = this.at;
    let before = this.before;
    let prev = -1;
    for (let j = 0; j < count; j++) {
      const k = pick === undefined ? j : pick[j]!;
      const n = k * NUMS;
      const m = k * STRS;
      const same = prev < 0 ? 0 : this.sameAs(n, m, prev);
      if ((same | TIME | TOTAL) === ALL && this.sameWidth(n, prev * NUMS) && this.sameWidth(n + 5, prev * NUMS + 5)) {
        // The record before with at most another time and totalUs of as many digits (a run of
        // hits): one copy, then the digits in place.
        const shift = p - before[0]!;
        for (let i = 0; i <= PIECES; i++) at[i] = before[i]! + shift;
        p = copy(out, p, before[0]!, before[PIECES]!);
        if ((same & TIME) === 0) num(out, at[0]! + head.length, b.nums[n]!);
        if ((same & TOTAL) === 0) num(out, at[4]!, b.nums[n + 5]!);
      } else p = this.pieces(out, p, n, m, same, at, before, head, close);
      const done = at;
      at = before;
      before = done;
      prev = k;
    }
    return out.subarray(0, p);
  }

  /** Whether two numbers of the batch are integers (below 2^53) of as many digits. */
  private sameWidth(a: number, b: number): boolean {
    const w = width(this.b.nums[a]!);
    return w > 0 && w === width(this.b.nums[b]!);
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

  /** Which pieces of record `k`'s text (bits, piece 0 first) are those of record `prev`. */
  private sameAs(n: number, m: number, prev: number): number {
    const x = this.b.nums;
    const st = this.b.strs;
    const pn = prev * NUMS;
    const pm = prev * STRS;
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

  /** Writes piece `i` of a record's text (see `write`). */
  private piece(i: number, out: Buffer, p: number, n: number, m: number, head: Uint8Array, close: Uint8Array): number {
    const x = this.b.nums;
    const st = this.b.strs;
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
        p = put(out, p, str[st[m + 4]!]!);
        p = put(out, p, K_KIND[x[n + 4]! + 1]!);
        p = put(out, p, str[st[m + 5]!]!);
        return put(out, p, K_TOTAL);
      case 4:
        return num(out, p, x[n + 5]!);
      default:
        return this.tail(out, p, n, m, close);
    }
  }

  /** A record's text after totalUs. */
  private tail(out: Buffer, p: number, n: number, m: number, close: Uint8Array): number {
    const x = this.b.nums;
    const st = this.b.strs;
    if (x[n + 6] === 0 && x[n + 7] === 0 && x[n + 8] === 0 && x[n + 9] === 0) p = put(out, p, K_NO_VM);
    else {
      p = put(out, p, K_VM);
      p = num(out, p, x[n + 6]!);
      p = put(out, p, K_GUEST);
      p = num(out, p, x[n + 7]!);
      p = put(out, p, K_EXITS);
      p = num(out, p, x[n + 8]!);
      p = put(out, p, K_DIRTY);
      p = num(out, p, x[n + 9]!);
      p = put(out, p, K_BYTES);
    }
    p = num(out, p, x[n + 10]!);
    p = put(out, p, K_ORIGIN);
    p = x[n + 11]! < 0 ? put(out, p, NULL) : num(out, p, x[n + 11]!);
    p = put(out, p, K_ERROR);
    p = put(out, p, this.strings![st[m + 6]!]!);
    p = put(out, p, K_LOGS);
    p = put(out, p, this.logsOf(st[m + 7]!));
    return put(out, p, close);
  }

  private logsOf(i: number): Uint8Array {
    if (i === 0) return EMPTY_LOGS;
    let bytes = this.logs.get(i);
    if (bytes === undefined) this.logs.set(i, (bytes = Buffer.from(this.b.table[i - 1]!)));
    return bytes;
  }
}

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
