// The shared store's tag index: for each namespace's tag, the list of the records carrying it, so
// that a purge by tag costs the records it removes, not a walk of the namespace, and the count of
// a namespace's distinct tags is a counter. Only writers (holding the store's lock) use it.
//
// A record's block starts with one node per tag it carries (layout.ts, T_* fields): the nodes of
// one (namespace, tag) are a doubly linked list, whose first node, the head, also sits in a chain
// of the tag buckets (in the index buffer, after the key buckets). The tag's bytes are not copied:
// a node names its record and where the tag is among the record's tags. All of it is in the
// record's block or its slot's share of the buckets, so a record's charge covers its part of the
// index (RECORD_OVERHEAD, TAG_NODE_CELLS), and it goes with the record.
import { type Arena, CELL } from './arena.ts';
import * as L from './layout.ts';

/** The tag index in a store's buffers, as one thread sees it. */
export class TagIndex {
  private readonly ctl: Int32Array;
  private readonly idx: Int32Array;
  private readonly arena: Arena;
  private readonly base: number;
  private readonly mask: number;
  private readonly seed: number;

  /** `base`: the first tag bucket's word in `idx`; `buckets`: how many (a power of two). */
  constructor(ctl: Int32Array, idx: Int32Array, arena: Arena, base: number, buckets: number) {
    this.ctl = ctl;
    this.idx = idx;
    this.arena = arena;
    this.base = base;
    this.mask = buckets - 1;
    this.seed = ctl[L.G_TAG_SEED]!;
  }

  /** Bytes of tag nodes at the start of a block for `tags` tags (a whole number of cells). */
  static nodeBytes(tags: number): number {
    return tags * L.TAG_NODE_CELLS * CELL;
  }

  /** The first cell of the block of record `id`, tag nodes included (what the arena allocated). */
  blockOf(id: number): number {
    const w = id * L.REC_WORDS;
    return this.idx[w + L.R_DATA]! - this.idx[w + L.R_TAG_COUNT]! * L.TAG_NODE_CELLS;
  }

  /**
   * Adds record `id`, written whole, to the lists of each tag it carries (its tags must be
   * distinct: one node per tag).
   */
  link(id: number): void {
    const w = id * L.REC_WORDS;
    const count = this.idx[w + L.R_TAG_COUNT]!;
    if (count === 0) return;
    const ns = this.idx[w + L.R_NS]!;
    const u8 = this.tagBytes(id);
    const first = this.tagsAt(id);
    const end = first + this.idx[w + L.R_TAGS_LEN]!;
    let node = this.blockOf(id);
    for (let at = first; at <= end; node += L.TAG_NODE_CELLS) {
      let stop = at;
      while (stop < end && u8[stop] !== 10) stop++;
      const hash = L.tagHash(this.seed, ns, u8, at, stop - at);
      this.set(node, L.T_RECORD, id);
      this.set(node, L.T_HASH, hash);
      this.set(node, L.T_NS, ns);
      this.set(node, L.T_AT, at - first);
      this.set(node, L.T_LEN, stop - at);
      const head = this.find(ns, hash, u8, at, stop - at);
      if (head === L.NIL) {
        const bucket = this.base + (hash & this.mask);
        this.set(node, L.T_PREV, L.NIL);
        this.set(node, L.T_NEXT, L.NIL);
        this.set(node, L.T_CHAIN, this.idx[bucket]!);
        this.idx[bucket] = node;
        this.ctl[L.nsOffset(ns) / 4 + L.N_TAGS]!++;
      } else {
        // After the head, so that the bucket's chain does not change.
        const after = this.get(head, L.T_NEXT);
        this.set(node, L.T_PREV, head);
        this.set(node, L.T_NEXT, after);
        if (after !== L.NIL) this.set(after, L.T_PREV, node);
        this.set(head, L.T_NEXT, node);
      }
      at = stop + 1;
    }
  }

  /** Takes record `id` out of the lists of its tags; a list left empty leaves its chain. */
  unlink(id: number): void {
    const count = this.idx[id * L.REC_WORDS + L.R_TAG_COUNT]!;
    for (let i = 0, node = this.blockOf(id); i < count; i++, node += L.TAG_NODE_CELLS) {
      const prev = this.get(node, L.T_PREV);
      const next = this.get(node, L.T_NEXT);
      if (next !== L.NIL) this.set(next, L.T_PREV, prev);
      if (prev !== L.NIL) {
        this.set(prev, L.T_NEXT, next);
        continue;
      }
      // The head: the next node takes its place in the chain, or the tag is gone.
      if (next !== L.NIL) this.set(next, L.T_CHAIN, this.get(node, L.T_CHAIN));
      else this.ctl[L.nsOffset(this.get(node, L.T_NS)) / 4 + L.N_TAGS]!--;
      this.replaceInChain(node, next === L.NIL ? this.get(node, L.T_CHAIN) : next);
    }
  }

  /** The records of namespace `ns` carrying the tag whose UTF-8 bytes are the first `length` of `bytes`. */
  carriers(ns: number, bytes: Uint8Array, length: number): number[] {
    const ids: number[] = [];
    for (let node = this.find(ns, L.tagHash(this.seed, ns, bytes, 0, length), bytes, 0, length); node !== L.NIL; node = this.get(node, L.T_NEXT)) {
      ids.push(this.get(node, L.T_RECORD));
    }
    return ids;
  }

  /** The head of the list of (`ns`, the tag at `bytes[at..at+length)`), or NIL. */
  private find(ns: number, hash: number, bytes: Uint8Array, at: number, length: number): number {
    for (let node = this.idx[this.base + (hash & this.mask)]!; node !== L.NIL; node = this.get(node, L.T_CHAIN)) {
      if (this.get(node, L.T_HASH) !== hash || this.get(node, L.T_NS) !== ns || this.get(node, L.T_LEN) !== length) continue;
      const record = this.get(node, L.T_RECORD);
      const u8 = this.tagBytes(record);
      const other = this.tagsAt(record) + this.get(node, L.T_AT);
      let same = true;
      for (let i = 0; i < length && same; i++) same = u8[other + i] === bytes[at + i];
      if (same) return node;
    }
    return L.NIL;
  }

  /** Puts `replacement` (a node or NIL) where head `node` is in its bucket's chain. */
  private replaceInChain(node: number, replacement: number): void {
    const bucket = this.base + (this.get(node, L.T_HASH) & this.mask);
    if (this.idx[bucket] === node) {
      this.idx[bucket] = replacement;
      return;
    }
    let prev = this.idx[bucket]!;
    while (this.get(prev, L.T_CHAIN) !== node) prev = this.get(prev, L.T_CHAIN);
    this.set(prev, L.T_CHAIN, replacement);
  }

  /** Field `field` (T_*) of the node at cell `node`. */
  private get(node: number, field: number): number {
    return this.arena.words(this.arena.segment(node))[this.arena.wordIn(node) + field]!;
  }

  private set(node: number, field: number, value: number): void {
    this.arena.words(this.arena.segment(node))[this.arena.wordIn(node) + field] = value;
  }

  /** The bytes of the arena segment holding record `id` (its tags at `tagsAt(id)`). */
  private tagBytes(id: number): Uint8Array {
    return this.arena.bytes(this.arena.segment(this.idx[id * L.REC_WORDS + L.R_DATA]!));
  }

  /** Byte offset of record `id`'s first tag byte in its arena segment. */
  private tagsAt(id: number): number {
    const w = id * L.REC_WORDS;
    return this.arena.byteIn(this.idx[w + L.R_DATA]!) + this.idx[w + L.R_KEY_LEN]! + this.idx[w + L.R_SEC_LEN]!;
  }
}
