// The walks over one namespace's records with the store's lock held — for sweeps, purges and
// stats, never for a request's lookup: listing them, dropping the expired ones; and purging and
// counting by tag through the tag index (tags.ts). store.ts builds the per-request operations on top.
import * as L from './layout.ts';
import { lock, unlock } from './lock.ts';
import { RecordTable } from './table.ts';

/** A live record as `summaries` lists it. */
export interface RecordSummary {
  readonly id: number;
  readonly gen: number;
  readonly key: string;
  /** Ms since the epoch; Infinity for never. */
  readonly expiresAt: number;
  readonly banSeq: number;
  readonly marker: boolean;
}

const encoder = new TextEncoder();
const textDecoder = new TextDecoder();
/**
 * Where keys are encoded: TextEncoder.encode allocates and costs ~1 µs, encodeInto ~0.1. Its
 * `words` view the same bytes so that keys compare a word at a time (L.keyEqual).
 */
const scratchBuffer = new ArrayBuffer(1024);
const scratch: L.Key = { bytes: new Uint8Array(scratchBuffer), words: new Int32Array(scratchBuffer), length: 0 };

/** The UTF-8 bytes of `s` in the scratch key, which the next call reuses. */
export function scratchKey(s: string): L.Key {
  if (s.length * 3 > scratch.bytes.length) {
    const buffer = new ArrayBuffer(Math.ceil(s.length * 3 / 4) * 4);
    scratch.bytes = new Uint8Array(buffer);
    scratch.words = new Int32Array(buffer);
  }
  scratch.length = encoder.encodeInto(s, scratch.bytes).written;
  return scratch;
}

/** The record table with the lock-held walks over a namespace. */
export class NamespaceWalks extends RecordTable {
  /**
   * Every live record of namespace `ns`, most recently used first (the lurker's and origin-form
   * purge's walk). It decodes every key with the lock held: for sweeps, not for requests.
   */
  summaries(ns: number): RecordSummary[] {
    return this.write(ns, () => {
      const out: RecordSummary[] = [];
      const epoch = this.f64[L.F_EPOCH]!;
      for (let id = this.ctl[L.nsOffset(ns) / 4 + L.N_LRU_HEAD]!; id !== L.NIL; id = this.idx[id * L.REC_WORDS + L.R_NS_NEXT]!) {
        const w = id * L.REC_WORDS;
        const data = this.idx[w + L.R_DATA]!;
        const at = this.arena.byteIn(data);
        const expires = this.idx[w + L.R_EXPIRES]!;
        out.push({
          id, gen: this.idx[w + L.R_GEN]!, key: textDecoder.decode(this.arena.bytes(this.arena.segment(data)).subarray(at, at + this.idx[w + L.R_KEY_LEN]!)),
          expiresAt: expires === L.EXPIRES_NEVER ? Infinity : epoch + expires * 1000, banSeq: this.idx[w + L.R_BAN_SEQ]!,
          marker: (this.idx[w + L.R_FLAGS]! & L.FLAG_MARKER) !== 0,
        });
      }
      return out;
    });
  }

  /** How many records of `ns` are markers (`RecordInit.marker`), without decoding anything. */
  markerCount(ns: number): number {
    return this.write(ns, () => {
      let n = 0;
      for (let id = this.ctl[L.nsOffset(ns) / 4 + L.N_LRU_HEAD]!; id !== L.NIL; id = this.idx[id * L.REC_WORDS + L.R_NS_NEXT]!) {
        if ((this.idx[id * L.REC_WORDS + L.R_FLAGS]! & L.FLAG_MARKER) !== 0) n++;
      }
      return n;
    });
  }

  /** Removes the records of `ns` whose expiry is at or before `nowMs`; answers how many. */
  removeExpired(ns: number, nowMs: number): number {
    const limit = Math.floor((nowMs - this.f64[L.F_EPOCH]!) / 1000);
    return this.write(ns, () => {
      let n = 0;
      for (let id = this.ctl[L.nsOffset(ns) / 4 + L.N_LRU_HEAD]!; id !== L.NIL;) {
        const next = this.idx[id * L.REC_WORDS + L.R_NS_NEXT]!;
        if (this.idx[id * L.REC_WORDS + L.R_EXPIRES]! <= limit) { this.drop(id); n++; }
        id = next;
      }
      return n;
    });
  }
  /** Distinct tags the records of `ns` carry (a counter the tag index keeps). */
  tagCount(ns: number): number {
    return this.write(ns, () => this.ctl[L.nsOffset(ns) / 4 + L.N_TAGS]!);
  }

  /**
   * Removes every record of namespace `ns` carrying `tag`; answers how many. The tag index names
   * them: the lock is held for those records only, however many the namespace holds.
   */
  removeTag(ns: number, tag: string): number {
    const tag8 = scratchKey(tag);
    return this.write(ns, () => {
      const ids = this.tagIndex.carriers(ns, tag8.bytes, tag8.length);
      for (const id of ids) this.drop(id);
      return ids.length;
    });
  }

  /** Runs `f` with the lock held, after freeing unpinned dead records; `ns` (if any) must exist. */
  protected write<T>(ns: number | null, f: () => T): T {
    lock(this.ctl, L.G_LOCK);
    try {
      if (ns !== null && !(ns >= 0 && ns < this.ctl[L.G_NS_COUNT]!)) throw new RangeError(`no namespace ${ns}`);
      this.sweep();
      return f();
    } finally {
      unlock(this.ctl, L.G_LOCK);
    }
  }
}
