// The shared store's records whose body has no known length (a chunked answer): the writer appends
// chunks as they arrive, and readers on any thread follow them as they follow a body of known
// length (fills.ts). The body lives in extents: the first in the record's own block after a stream
// header, the others blocks of their own, each as large as all before it (so a few KiB to the
// limit in about 20 steps), listed in the header's table. Each extent is charged to the
// namespace when it is taken, evicting as an insert would (never the stream itself). Completing
// the stream copies its body into an ordinary record (placing.ts); the stream record stays, whole,
// for the readers still on it. A stream that outgrows its limit (the tenant's largest object, or
// what its quota lets it take) is not kept: it leaves the cache, and its extents become a ring the
// writer goes round while anyone follows it; a reader that falls a whole ring behind breaks off.
import { CELL } from './arena.ts';
import * as L from './layout.ts';
import { FillingRecords } from './fills.ts';

/** What a reader of a stream gets (`readStream`): the bytes from its position, copied, and the state. */
export interface StreamRead {
  state: 'gone' | 'filling' | 'whole';
  chunk: Buffer | null;
  /** What `waitProgress` waits to change. */
  seq: number;
}

/** Bytes of a stream's first extent, in its record's block. */
export const STREAM_FIRST_BYTES = 4096;
/** The most a stream keeps as an object whatever its limit: positions and lengths are int32. */
export const MAX_STREAM_BYTES = 2 ** 31 - 2 ** 20;
const TWO32 = 2 ** 32;

/** The streaming side of the store: what a writer of a body of unknown length and its readers call. */
export class StreamRecords extends FillingRecords {
  /**
   * Appends `chunk` to the stream record named (which the caller pinned to write it), taking
   * another extent when it is full, and wakes its readers. False when the record is gone (removed,
   * evicted), or when it turned into a ring that no reader follows (then it goes now).
   */
  append(id: number, gen: number, chunk: Uint8Array): boolean {
    if (!this.isLive(id, gen)) return false;
    const w = id * L.REC_WORDS;
    const hc = L.streamCell(this.idx, id);
    const h = this.arena.wordIn(hc);
    let i32 = this.headerWords(hc);
    const at = i32[h + L.S_HIGH]! * TWO32 + (this.idx[w + L.R_FILLED]! >>> 0);
    const end = at + chunk.length;
    if ((Atomics.load(this.idx, w + L.R_FLAGS) & L.FLAG_RING) === 0 && end > i32[h + L.S_CAP]!) {
      if (!this.grow(id, gen, end)) return false;
      i32 = this.headerWords(hc);
    }
    const cap = i32[h + L.S_CAP]!;
    if ((Atomics.load(this.idx, w + L.R_FLAGS) & L.FLAG_RING) !== 0) {
      // Nobody but the writer on it (readers pin it while they follow): nothing to stream to.
      if (Atomics.load(this.idx, w + L.R_PINS) <= 1) {
        this.abandon(id, gen);
        return false;
      }
    }
    // Readers compare their position with this one after copying: bytes they read may have been
    // overwritten only if it is more than a ring ahead of them.
    Atomics.store(i32, h + L.S_WRITING, end | 0);
    const skip = Math.max(0, chunk.length - cap);
    this.copy(hc, end - chunk.length + skip, chunk.length - skip, (seg, at, n, done) => this.arena.bytes(seg).set(chunk.subarray(skip + done, skip + done + n), at));
    i32[h + L.S_HIGH] = Math.floor(end / TWO32);
    Atomics.store(this.idx, w + L.R_FILLED, end | 0);
    Atomics.add(this.idx, w + L.R_FILL_SEQ, 1);
    Atomics.notify(this.idx, w + L.R_FILL_SEQ);
    return true;
  }

  /**
   * A reader's next bytes of the stream record named (which it pins), from position `from`: a copy
   * of what is written past it, and where the stream stands. A reader more than a ring behind the
   * writer finds it gone: the bytes it missed are overwritten.
   */
  readStream(id: number, gen: number, from: number): StreamRead {
    const p = this.progress(id, gen);
    if (p.state === 'gone') return { state: 'gone', chunk: null, seq: p.seq };
    const available = (p.filled - from) >>> 0;
    if (available === 0) return { state: p.state, chunk: null, seq: p.seq };
    const hc = L.streamCell(this.idx, id);
    const h = this.arena.wordIn(hc);
    const i32 = this.headerWords(hc);
    const cap = Atomics.load(i32, h + L.S_CAP);
    if (available > cap) return { state: 'gone', chunk: null, seq: p.seq };
    const chunk = Buffer.allocUnsafe(available);
    this.copy(hc, from, available, (seg, at, n, done) => chunk.set(this.arena.bytes(seg).subarray(at, at + n), done));
    // Only a ring is written over, and its size no longer changes: the writer may have been over
    // these bytes if it is now more than a ring past where they start.
    const ring = (Atomics.load(this.idx, id * L.REC_WORDS + L.R_FLAGS) & L.FLAG_RING) !== 0;
    if (ring && ((Atomics.load(i32, h + L.S_WRITING) - from) >>> 0) > Atomics.load(i32, h + L.S_CAP)) return { state: 'gone', chunk: null, seq: p.seq };
    return { state: p.state, chunk, seq: p.seq };
  }

  /**
   * With the lock held: a new stream header for a record whose header starts at cell `hc` and
   * first extent (`firstBytes`) right after it, keeping at most `limit` bytes.
   */
  protected initStream(hc: number, firstBytes: number, limit: number): void {
    const i32 = this.headerWords(hc);
    const h = this.arena.wordIn(hc);
    i32.fill(0, h, h + L.STREAM_HEADER_BYTES / 4);
    i32[h + L.S_CAP] = firstBytes;
    i32[h + L.S_EXTENTS] = 1;
    i32[h + L.S_LIMIT] = limit;
    i32[h + L.S_TABLE] = hc + L.STREAM_HEADER_BYTES / CELL;
    i32[h + L.S_TABLE + 1] = firstBytes;
  }

  /** With the lock held: the bytes a stream record has written, all of them (not mod 2^32). */
  protected streamLength(id: number): number {
    const hc = L.streamCell(this.idx, id);
    return this.headerWords(hc)[this.arena.wordIn(hc) + L.S_HIGH]! * TWO32 + (this.idx[id * L.REC_WORDS + L.R_FILLED]! >>> 0);
  }

  /** Whether a stream record may still become an object: listed, not a ring, within its limit. */
  protected streamKeepable(id: number): boolean {
    const flags = this.idx[id * L.REC_WORDS + L.R_FLAGS]!;
    const hc = L.streamCell(this.idx, id);
    const limit = this.headerWords(hc)[this.arena.wordIn(hc) + L.S_LIMIT]!;
    return (flags & (L.FLAG_UNLISTED | L.FLAG_RING)) === 0 && this.streamLength(id) <= limit;
  }

  /** With the lock held: copies the first `length` bytes of a stream record's body to byte `to` of segment `toSeg`. */
  protected copyStreamOut(id: number, length: number, toSeg: number, to: number): void {
    const target = this.arena.bytes(toSeg);
    this.copy(L.streamCell(this.idx, id), 0, length, (seg, at, n, done) => target.set(this.arena.bytes(seg).subarray(at, at + n), to + done));
  }

  /** The words of the segment holding the stream header at cell `hc` (at `arena.wordIn(hc)`). */
  protected headerWords(hc: number): Int32Array {
    return this.arena.words(this.arena.segment(hc));
  }

  /**
   * With the lock held: the stream record leaves the cache (if it had not) and is done, whole for
   * the readers still following it (fills.ts `progress`); its memory goes once they let it go.
   */
  protected retire(id: number): void {
    this.drop(id);
    Atomics.and(this.idx, id * L.REC_WORDS + L.R_FLAGS, ~L.FLAG_FILLING);
    this.kill(id, false);
  }

  /**
   * Runs `f(seg, at, n, done)` over the pieces of the body bytes [`from`, `from + length`) of the
   * stream whose header is at cell `hc`, in order (each piece is `n` bytes from byte `at` of
   * segment `seg`): positions are taken round the ring of its extents (before it is a ring, they
   * are all below its size).
   */
  private copy(hc: number, from: number, length: number, f: (seg: number, at: number, n: number, done: number) => void): void {
    const i32 = this.headerWords(hc);
    const h = this.arena.wordIn(hc);
    const cap = Atomics.load(i32, h + L.S_CAP);
    const count = Atomics.load(i32, h + L.S_EXTENTS);
    let e = 0;
    let start = 0;
    let offset = from % cap;
    while (offset >= start + i32[h + L.S_TABLE + 2 * e + 1]!) start += i32[h + L.S_TABLE + 2 * e++ + 1]!;
    for (let done = 0; done < length;) {
      const size = i32[h + L.S_TABLE + 2 * e + 1]!;
      const n = Math.min(length - done, start + size - offset);
      const extent = i32[h + L.S_TABLE + 2 * e]!;
      f(this.arena.segment(extent), this.arena.byteIn(extent) + offset - start, n, done);
      done += n;
      offset += n;
      if (offset === start + size) {
        start += size;
        e++;
        if (e === count) { e = 0; start = 0; offset = 0; }
      }
    }
  }

  /**
   * Makes room for a stream record's body to reach `end` bytes: another extent, charged to its
   * namespace; past its limit, the extent that brings it to its limit, then a ring of them all;
   * when it may not keep that much (its quota, the budget, the arena), a ring of the extents it
   * has. False when the record is gone (or a ring nobody follows).
   */
  private grow(id: number, gen: number, end: number): boolean {
    return this.write(null, () => {
      if (!this.isLive(id, gen)) return false;
      const w = id * L.REC_WORDS;
      const hc = L.streamCell(this.idx, id);
      const h = this.arena.wordIn(hc);
      const i32 = this.headerWords(hc);
      const cap = i32[h + L.S_CAP]!;
      const count = i32[h + L.S_EXTENTS]!;
      const limit = i32[h + L.S_LIMIT]!;
      if (end <= cap) return true;
      if (cap < limit && count < L.STREAM_EXTENTS) {
        // As large as all before it (the last one, or past the limit, all the rest up to the
        // limit), and at least what `end` needs.
        const wanted = count === L.STREAM_EXTENTS - 1 || end > limit ? limit - cap : Math.max(cap, end - cap);
        const least = end > limit ? CELL : end - cap;
        const extent = this.takeExtent(id, Math.ceil(Math.min(wanted, limit - cap) / CELL) * CELL, Math.ceil(least / CELL) * CELL);
        if (extent !== null) {
          const words = this.headerWords(hc);
          words[h + L.S_TABLE + 2 * count] = extent.block;
          words[h + L.S_TABLE + 2 * count + 1] = extent.bytes;
          Atomics.store(words, h + L.S_EXTENTS, count + 1);
          Atomics.store(words, h + L.S_CAP, cap + extent.bytes);
          if (end <= limit) return true;
        }
      }
      // Not an object after all: out of the cache, a ring for those following it, if any.
      this.drop(id);
      Atomics.or(this.idx, w + L.R_FLAGS, L.FLAG_RING);
      if (Atomics.load(this.idx, w + L.R_PINS) > 1) return true;
      this.kill(id, false);
      return false;
    });
  }

  /**
   * With the lock held: a block for an extent of stream record `id`, of `bytes` or, when its
   * quota or the budget cannot make room for that much, of all the room there is if that is at
   * least `least`; charged to it and its namespace after evicting others (never it) for room.
   * Null when there is not even that room, or the arena cannot make it. `block`: its first cell.
   */
  private takeExtent(id: number, bytes: number, least: number): { block: number; bytes: number } | null {
    const w = id * L.REC_WORDS;
    const ns = this.idx[w + L.R_NS]!;
    const nsF = L.nsOffset(ns) / 8;
    const listed = (this.idx[w + L.R_FLAGS]! & L.FLAG_UNLISTED) === 0;
    // What the arena takes beyond the payload: its block's header and footer.
    const tags = 2 * CELL;
    if (listed) this.unlinkLru(id);
    try {
      this.evictNamespace(ns, bytes + tags);
      while (this.f64[L.F_BYTES]! + bytes + tags > this.f64[L.F_MAX_BYTES]! && this.evictOldest()) { /* evicting */ }
      const room = Math.min(this.f64[nsF + L.N_QUOTA]! - this.f64[nsF + L.N_BYTES]!, this.f64[L.F_MAX_BYTES]! - this.f64[L.F_BYTES]!) - tags;
      const size = Math.min(bytes, Math.floor(room / CELL) * CELL, this.arena.maxPayloadBytes);
      if (size < least) return null;
      let block = this.arena.alloc(size);
      while (block < 0 && this.evictOldest()) block = this.arena.alloc(size);
      if (block < 0) return null;
      this.idx[w + L.R_CHARGED] = this.idx[w + L.R_CHARGED]! + size + tags;
      this.account(ns, size + tags, 0);
      return { block, bytes: size };
    } finally {
      if (listed) this.linkLru(id);
    }
  }
}
