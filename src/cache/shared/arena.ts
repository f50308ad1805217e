// The allocator of the shared store's data arena: every record's key, secondary key, tags, meta
// and body in one block. Only writers (holding the store's lock) call it; readers only read blocks
// that a pin keeps from being freed (store.ts).
//
// The arena is a row of segments, each a growable SharedArrayBuffer of at most `segmentBytes`
// (2 GiB by default): Node 20 refuses a growable SharedArrayBuffer of more than 4 GiB, and a cache
// may need several times that. A block never crosses a segment, so a record's bytes are one view
// of one buffer. Blocks are named by their first payload cell, counted across the segments
// (segment × cells per segment + cell within it: an int32 for 32 GiB of arena).
//
// Blocks are runs of 16-byte cells with boundary tags (a header and a footer cell saying the size
// and whether the block is free), so a freed block merges at once with free neighbours in its
// segment, and a free block at the top of a segment gives its cells back to that segment's unused
// tail. Free blocks sit in segregated lists, one per power of two of their size, shared by all
// segments. Fragmentation is bounded because nothing is ever moved into a gap smaller than it and
// neighbours always merge: the arena can hold at most its segments' `maxByteLength`, and when an
// allocation fails the store evicts least recently used records (their blocks merging with their
// neighbours) until it fits.

/** Bytes per cell: the allocation unit and the alignment of every payload. */
export const CELL = 16;
/** Int32 words per cell. */
const WORDS = CELL / 4;
/** The default size of a segment: 2 GiB, which every supported Node.js can grow and view. */
export const SEGMENT_BYTES = 2 ** 31;
/** Cells the arena can name: int32 cell numbers. */
const MAX_CELLS = 2 ** 31;
/** Size classes: powers of two of a block's cell count, up to 2^31 cells (32 GiB). */
const CLASSES = 31;
/**
 * Word offsets of the allocator state, at the start of segment 0: log2 of the cells per segment,
 * the cells in use, the head of each class's free list (0: empty, as cell 0 is never a block), and
 * for each segment the first cell past its last block.
 */
const SHIFT = 0;
const USED = 1;
const HEADS = 2;
const TOPS = HEADS + CLASSES;
/** Remainders smaller than this stay in the block they were cut from instead of being split off. */
const MIN_SPLIT = 4;
/** First-fit probes in a block's own class before taking the head of a larger class. */
const PROBES = 32;
/** Size a segment starts at when it is first used, and the least it grows by. */
const INITIAL_BYTES = 1 << 20;

/** A view of the arena in one thread; every thread's views track the segments' growth. */
export class Arena {
  readonly segments: readonly SharedArrayBuffer[];
  /** log2 of the cells per segment. */
  private readonly shift: number;
  private readonly mask: number;
  /** Cells before segment 0's first block: the allocator's own state. */
  private readonly base: number;
  /** The most cells one block may take: what the largest segment holds. */
  private readonly largestBlock: number;
  /** Length-tracking views of each segment: they follow it when another thread grows it. */
  private readonly i32: Int32Array[];
  private readonly fixedU8: Uint8Array[];
  private readonly fixedI32: Int32Array[];

  constructor(segments: readonly SharedArrayBuffer[]) {
    this.segments = segments;
    this.i32 = segments.map((sab) => new Int32Array(sab));
    this.fixedU8 = segments.map((sab) => new Uint8Array(sab, 0, sab.byteLength));
    this.fixedI32 = segments.map((sab) => new Int32Array(sab, 0, sab.byteLength / 4));
    this.shift = this.i32[0]![SHIFT]!;
    this.mask = 2 ** this.shift - 1;
    this.base = baseCells(segments.length);
    this.largestBlock = Math.max(...segments.map((sab, seg) => sab.maxByteLength / CELL - (seg === 0 ? this.base : 0)));
  }

  /**
   * A new, empty arena that may grow to `maxBytes`, in segments of `segmentBytes` (a power of
   * two, 64 KiB to 2 GiB; smaller ones are for tests of blocks at segments' edges). Address space
   * is reserved for all of it now; memory only as segments grow.
   */
  static create(maxBytes: number, segmentBytes = SEGMENT_BYTES): Arena {
    if (!(Number.isInteger(Math.log2(segmentBytes)) && segmentBytes >= 2 ** 16 && segmentBytes <= SEGMENT_BYTES)) throw new RangeError(`an arena's segments are a power of two from 64 KiB to 2 GiB, not ${segmentBytes} bytes`);
    const cells = Math.ceil(maxBytes / CELL);
    if (!(cells >= 1 && cells <= MAX_CELLS)) throw new RangeError(`an arena holds 1 byte to 32 GiB, not ${maxBytes}`);
    const perSegment = segmentBytes / CELL;
    const count = Math.ceil(cells / perSegment);
    const segments: SharedArrayBuffer[] = [];
    for (let s = 0; s < count; s++) {
      const max = Math.min(perSegment, cells - s * perSegment) * CELL;
      segments.push(new SharedArrayBuffer(s === 0 ? Math.min(INITIAL_BYTES, max) : 0, { maxByteLength: max }));
    }
    const head = new Int32Array(segments[0]!);
    if (head.length < baseCells(count) * WORDS) throw new RangeError(`an arena of ${maxBytes} bytes cannot hold its own state`);
    head[SHIFT] = Math.log2(perSegment);
    for (let s = 0; s < count; s++) head[TOPS + s] = s === 0 ? baseCells(count) : s * perSegment;
    return new Arena(segments);
  }

  /** The segment holding cell `cell`. */
  segment(cell: number): number {
    return cell >>> this.shift;
  }

  /** Byte offset of cell `cell` in its segment. */
  byteIn(cell: number): number {
    return (cell & this.mask) * CELL;
  }

  /** Word offset (int32) of cell `cell` in its segment. */
  wordIn(cell: number): number {
    return (cell & this.mask) * WORDS;
  }

  /** The cell at byte `byte` (a multiple of CELL) of segment `seg`. */
  cellAt(seg: number, byte: number): number {
    return seg * 2 ** this.shift + byte / CELL;
  }

  /** Segment `seg`'s buffer (for views that outlive this call: they are valid while their block is). */
  buffer(seg: number): SharedArrayBuffer {
    return this.segments[seg]!;
  }

  /**
   * A fixed-length view of segment `seg` as it is now, renewed when it has grown. Reads through
   * it are 3 to 4 times faster than through a length-tracking view (V8, Node 20), so readers use them.
   */
  bytes(seg: number): Uint8Array {
    const view = this.fixedU8[seg]!;
    return view.length === this.segments[seg]!.byteLength ? view : this.renew(seg).fixedU8[seg]!;
  }

  words(seg: number): Int32Array {
    const view = this.fixedI32[seg]!;
    return view.length * 4 === this.segments[seg]!.byteLength ? view : this.renew(seg).fixedI32[seg]!;
  }

  private renew(seg: number): this {
    const sab = this.segments[seg]!;
    this.fixedU8[seg] = new Uint8Array(sab, 0, sab.byteLength);
    this.fixedI32[seg] = new Int32Array(sab, 0, sab.byteLength / 4);
    return this;
  }

  /** Bytes of blocks in use, headers and footers included. */
  get usedBytes(): number {
    return this.i32[0]![USED]! * CELL;
  }

  /** Bytes the segments have grown to (the memory the arena may have touched). */
  get byteLength(): number {
    let n = 0;
    for (const sab of this.segments) n += sab.byteLength;
    return n;
  }

  /** Bytes the segments may grow to. */
  get maxByteLength(): number {
    let n = 0;
    for (const sab of this.segments) n += sab.maxByteLength;
    return n;
  }

  /** The largest payload `alloc` can ever give: a block as large as the largest segment. */
  get maxPayloadBytes(): number {
    return (this.largestBlock - 2) * CELL;
  }

  /** The first cell of a payload of at least `bytes` bytes, or -1 when there is no room for it. */
  alloc(bytes: number): number {
    const need = this.cellsFor(bytes);
    let cell = this.fit(need);
    if (cell === 0) {
      cell = this.extend(need);
      if (cell < 0) return -1;
      this.mark(cell, need, false);
    } else {
      this.unlink(cell);
      const size = this.size(cell);
      if (size - need >= MIN_SPLIT) {
        this.mark(cell, need, false);
        this.mark(cell + need, size - need, true);
        this.link(cell + need);
      } else {
        this.mark(cell, size, false);
      }
    }
    const head = this.i32[0]!;
    head[USED] = head[USED]! + this.size(cell);
    return cell + 1;
  }

  /** Frees the block whose payload starts at cell `payload`, merging it with free neighbours. */
  free(payload: number): void {
    let cell = payload - 1;
    let size = this.size(cell);
    const head = this.i32[0]!;
    head[USED] = head[USED]! - size;
    const seg = this.segment(cell);
    const top = head[TOPS + seg]!;
    const next = cell + size;
    if (next < top && this.isFree(next)) {
      this.unlink(next);
      size += this.size(next);
    }
    if (cell > this.firstCell(seg) && this.word(cell - 1, 1) === 1) {
      const prev = cell - this.word(cell - 1, 0);
      this.unlink(prev);
      size += cell - prev;
      cell = prev;
    }
    if (cell + size === top) {
      head[TOPS + seg] = cell;
      return;
    }
    this.mark(cell, size, true);
    this.link(cell);
  }

  /** Cells of the block for a payload of `bytes`: the payload rounded up, a header and a footer. */
  private cellsFor(bytes: number): number {
    return Math.max(3, Math.ceil(bytes / CELL) + 2);
  }

  /** First cell a block of segment `seg` may start at. */
  private firstCell(seg: number): number {
    return seg === 0 ? this.base : seg * 2 ** this.shift;
  }

  /** A new block of `need` cells past the top of the first segment with room for it, growing it; -1 when none has. */
  private extend(need: number): number {
    const head = this.i32[0]!;
    for (let seg = 0; seg < this.segments.length; seg++) {
      const top = head[TOPS + seg]!;
      const end = top - seg * 2 ** this.shift + need;
      if (end * CELL > this.segments[seg]!.maxByteLength) continue;
      this.reserve(seg, end * CELL);
      head[TOPS + seg] = top + need;
      return top;
    }
    return -1;
  }

  /** Grows segment `seg` to hold `bytes`, at least doubling it, within its maximum. */
  private reserve(seg: number, bytes: number): void {
    const sab = this.segments[seg]!;
    if (bytes <= sab.byteLength) return;
    const grown = Math.max(bytes, sab.byteLength * 2, INITIAL_BYTES);
    sab.grow(Math.ceil(Math.min(grown, sab.maxByteLength) / CELL) * CELL);
  }

  /** A free block of at least `need` cells, or 0. */
  private fit(need: number): number {
    const heads = this.i32[0]!;
    const own = classOf(need);
    let cell = heads[HEADS + own]!;
    for (let i = 0; cell !== 0 && i < PROBES; i++) {
      if (this.size(cell) >= need) return cell;
      cell = this.word(cell, 2);
    }
    // Every block of a larger class is big enough.
    for (let c = own + 1; c < CLASSES; c++) {
      if (heads[HEADS + c] !== 0) return heads[HEADS + c]!;
    }
    return 0;
  }

  /** Word `k` of cell `cell`, through the length-tracking view of its segment. */
  private word(cell: number, k: number): number {
    return this.i32[cell >>> this.shift]![(cell & this.mask) * WORDS + k]!;
  }

  private setWord(cell: number, k: number, value: number): void {
    this.i32[cell >>> this.shift]![(cell & this.mask) * WORDS + k] = value;
  }

  private size(cell: number): number {
    return this.word(cell, 0);
  }

  private isFree(cell: number): boolean {
    return this.word(cell, 1) === 1;
  }

  /** Writes a block's boundary tags: size and free flag in its header and in its footer. */
  private mark(cell: number, size: number, free: boolean): void {
    const flag = free ? 1 : 0;
    this.setWord(cell, 0, size);
    this.setWord(cell, 1, flag);
    this.setWord(cell + size - 1, 0, size);
    this.setWord(cell + size - 1, 1, flag);
  }

  /** Puts a free block at the head of its class's list (next and previous in header words 2, 3). */
  private link(cell: number): void {
    const heads = this.i32[0]!;
    const head = HEADS + classOf(this.size(cell));
    const first = heads[head]!;
    this.setWord(cell, 2, first);
    this.setWord(cell, 3, 0);
    if (first !== 0) this.setWord(first, 3, cell);
    heads[head] = cell;
  }

  private unlink(cell: number): void {
    const next = this.word(cell, 2);
    const prev = this.word(cell, 3);
    if (prev === 0) this.i32[0]![HEADS + classOf(this.size(cell))] = next;
    else this.setWord(prev, 2, next);
    if (next !== 0) this.setWord(next, 3, prev);
  }
}

/** Cells at the start of segment 0 for the allocator's state of an arena of `segments` segments. */
function baseCells(segments: number): number {
  return Math.ceil((TOPS + segments) / WORDS);
}

/** Size class of a block of `cells` cells: the power of two at or below it. */
function classOf(cells: number): number {
  return 31 - Math.clz32(cells);
}
