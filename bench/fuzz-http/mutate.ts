// Deterministic, seeded mutations of request bytes for the HTTP fuzzer: byte flips, splices from
// other seeds, duplicated and deleted ranges and lines, truncations, inserted CR/LF/NUL and long
// runs, and numbers swapped for boundary values (the lengths and chunk sizes that frame a
// request). A case is a pure function of (run seed, case index): any case replays alone.

/** A small, fast PRNG (mulberry32): the same seed gives the same sequence on every machine. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** A uint32. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n). */
  below(n: number): number {
    return n <= 1 ? 0 : this.next() % n;
  }
  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)] as T;
  }
}

/** The seed of case `index` of a run seeded with `seed`: cases are independent of each other. */
export function caseSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** A mutated request may not grow past this (the huge seeds are ~20 KiB, long runs add ≤ 64 KiB). */
export const MAX_MUTATED_BYTES = 256 * 1024;

const INTERESTING_BYTES = [0x0d, 0x0a, 0x00, 0x20, 0x09, 0x3a, 0x2c, 0x3b, 0x30, 0x66, 0x7f, 0x80, 0xff, 0x2f, 0x25, 0x3f, 0x23];
const INSERTS = ['\r', '\n', '\r\n', '\0', ' ', '\t', '\r\n\r\n', '\r\n ', ',', ';', ': ', 'chunked', '0\r\n\r\n', 'Transfer-Encoding: chunked\r\n', 'Content-Length: 0\r\n', 'Host: fuzz.test\r\n', 'Connection: close\r\n', 'Expect: 100-continue\r\n', 'Upgrade: websocket\r\n'];
const BOUNDARY_NUMBERS = ['0', '00', '1', '-1', '+1', '7fffffff', '80000000', '4294967295', '4294967296', '9007199254740993', 'ffffffffffffffff', '18446744073709551616', '99999999999999999999999', '0x10', '1e3', ' 5', '5 '];
const RUN_BYTES = ['a', '0', ' ', 'f', '\t', ',', '\r\n', 'X-A: b\r\n', '/', '%'];

type Mutation = (bytes: Buffer, rng: Rng, donors: readonly Buffer[]) => Buffer;

const at = (b: Buffer, rng: Rng): number => rng.below(b.length + 1);
const insert = (b: Buffer, pos: number, what: Buffer): Buffer => Buffer.concat([b.subarray(0, pos), what, b.subarray(pos)]);
const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Offsets just after each LF: where lines start. */
function lineStarts(b: Buffer): number[] {
  const starts = [0];
  for (let i = b.indexOf(0x0a); i !== -1 && i + 1 < b.length; i = b.indexOf(0x0a, i + 1)) starts.push(i + 1);
  return starts;
}

/** A line [start, end) of `b`, its line end included. */
function pickLine(b: Buffer, rng: Rng): [number, number] {
  const starts = lineStarts(b);
  const i = rng.below(starts.length);
  const start = starts[i] as number;
  return [start, starts[i + 1] ?? b.length];
}

const MUTATIONS: readonly Mutation[] = [
  // Flip one bit.
  (b, rng) => {
    if (b.length === 0) return b;
    const out = Buffer.from(b);
    const i = rng.below(out.length);
    out[i] = (out[i] as number) ^ (1 << rng.below(8));
    return out;
  },
  // Overwrite a byte with one that matters to a parser.
  (b, rng) => {
    if (b.length === 0) return b;
    const out = Buffer.from(b);
    out[rng.below(out.length)] = rng.pick(INTERESTING_BYTES);
    return out;
  },
  // Insert CR, LF, NUL, spaces or a framing field somewhere.
  (b, rng) => insert(b, at(b, rng), latin1(rng.pick(INSERTS))),
  // Insert the same at a line start (a new header line, or one split in two).
  (b, rng) => insert(b, rng.pick(lineStarts(b)), latin1(rng.pick(INSERTS))),
  // Insert a long run.
  (b, rng) => insert(b, at(b, rng), latin1(rng.pick(RUN_BYTES).repeat(1 + rng.below(rng.chance(0.2) ? 8_192 : 64)))),
  // Delete a range.
  (b, rng) => {
    const start = at(b, rng);
    const end = Math.min(b.length, start + 1 + rng.below(rng.chance(0.5) ? 4 : 64));
    return Buffer.concat([b.subarray(0, start), b.subarray(end)]);
  },
  // Duplicate a range in place, or somewhere else.
  (b, rng) => {
    const start = at(b, rng);
    const piece = b.subarray(start, Math.min(b.length, start + 1 + rng.below(96)));
    return insert(b, rng.chance(0.5) ? start : at(b, rng), Buffer.from(piece));
  },
  // Duplicate a whole line (a header twice, a request line twice).
  (b, rng) => {
    const [start, end] = pickLine(b, rng);
    return insert(b, end, Buffer.from(b.subarray(start, end)));
  },
  // Delete a whole line.
  (b, rng) => {
    const [start, end] = pickLine(b, rng);
    return Buffer.concat([b.subarray(0, start), b.subarray(end)]);
  },
  // Truncate.
  (b, rng) => b.subarray(0, at(b, rng)),
  // Splice: a range of another seed into this one, inserted or replacing.
  (b, rng, donors) => {
    const donor = rng.pick(donors);
    const start = rng.below(donor.length);
    const piece = Buffer.from(donor.subarray(start, Math.min(donor.length, start + 1 + rng.below(128))));
    const pos = at(b, rng);
    const cut = rng.chance(0.5) ? Math.min(b.length, pos + rng.below(piece.length + 1)) : pos;
    return Buffer.concat([b.subarray(0, pos), piece, b.subarray(cut)]);
  },
  // Replace a run of (hex) digits: a Content-Length, a chunk size, a version, a port.
  (b, rng) => {
    const text = b.toString('latin1');
    const runs = [...text.matchAll(/[0-9A-Fa-f]+/g)];
    if (runs.length === 0) return b;
    const run = rng.pick(runs);
    const start = run.index;
    return Buffer.concat([b.subarray(0, start), latin1(rng.pick(BOUNDARY_NUMBERS)), b.subarray(start + run[0].length)]);
  },
  // Change the case of a byte (lowercase methods, header names that compare case-insensitively).
  (b, rng) => {
    if (b.length === 0) return b;
    const out = Buffer.from(b);
    const i = rng.below(out.length);
    const c = out[i] as number;
    if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) out[i] = c ^ 0x20;
    return out;
  },
];

/**
 * Applies 0 to 4 mutations to `bytes` (none in one case of four, so the corpus itself runs as
 * written; one in most others, as a single change is likeliest to keep a request nearly valid),
 * bounded to MAX_MUTATED_BYTES.
 */
export function mutate(bytes: Buffer, rng: Rng, donors: readonly Buffer[]): { bytes: Buffer; applied: number } {
  const count = rng.chance(0.25) ? 0 : rng.chance(0.6) ? 1 : 2 + rng.below(3);
  let out = bytes;
  for (let i = 0; i < count; i++) {
    out = rng.pick(MUTATIONS)(out, rng, donors);
    if (out.length > MAX_MUTATED_BYTES) out = out.subarray(0, MAX_MUTATED_BYTES);
  }
  return { bytes: out, applied: count };
}

/**
 * How to write `bytes`: in one write, or split at seeded points (at least at the seed's own part
 * boundaries) with pauses of at most `maxPauseMs` between writes — a slow client, bounded.
 */
export function schedule(bytes: Buffer, seedParts: readonly number[], rng: Rng, maxPauseMs: number): { parts: Buffer[]; pausesMs: number[] } {
  const cuts = new Set<number>(seedParts.filter((n) => n > 0 && n < bytes.length));
  if (rng.chance(0.3)) {
    const extra = 1 + rng.below(rng.chance(0.2) ? 24 : 4);
    for (let i = 0; i < extra; i++) cuts.add(1 + rng.below(Math.max(1, bytes.length - 1)));
  }
  const points = [...cuts].filter((n) => n > 0 && n < bytes.length).sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    parts.push(bytes.subarray(last, p));
    last = p;
  }
  parts.push(bytes.subarray(last));
  const pausesMs = parts.map(() => (rng.chance(0.5) ? 0 : rng.below(maxPauseMs + 1)));
  return { parts, pausesMs };
}
