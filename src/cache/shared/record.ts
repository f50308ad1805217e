// What a lookup in the shared store hands out: a pinned record whose meta and body are views into
// the arena (no copy). The pin keeps the record's block from being freed and reused, so the bytes
// under the views stay as they were written until `unpin()`.
import type { Arena } from './arena.ts';
import { EXPIRES_NEVER, FLAG_FILLING, FLAG_MARKER, FLAG_STREAM, R_BAN_SEQ, R_BODY_LEN, R_DATA, R_EXPIRES, R_FLAGS, R_KEY_LEN, R_META_LEN, R_PINS, R_SEC_LEN, R_TAG_COUNT, R_TAGS_LEN, REC_WORDS } from './layout.ts';

/** A stored record as a lookup returns it. */
export interface SharedRecord {
  readonly id: number;
  readonly gen: number;
  /** Views into shared memory: valid until `unpin()`, and never to be written through. */
  readonly meta: Uint8Array;
  readonly body: Uint8Array;
  readonly secondary: string;
  readonly tags: readonly string[];
  /** When the record may go (ms since the epoch, rounded up to a second; Infinity for never). */
  readonly expiresAt: number;
  /** The ban position it was stored or last confirmed with (`SharedStore.setBanSeq`). */
  readonly banSeq: number;
  /** Inserted as a marker (`RecordInit.marker`). */
  readonly marker: boolean;
  /** Its body was still being written when it was looked up (`SharedStore.reserve`). */
  readonly filling: boolean;
  /**
   * Its body, of unknown length, is being appended (`SharedStore.reserveStream`): `body` is
   * empty, and readers follow it with `readStream`.
   */
  readonly stream: boolean;
  /** Drops this lookup's pin; call it exactly once, when done with the views (later calls do nothing). */
  unpin(): void;
}

const decoder = new TextDecoder();

/** Makes a pinned record's view from its slot; the caller has pinned it and checked it is live. */
export type RecordViewFactory = (id: number, gen: number) => SharedRecord;

/** `epochMs`: the store's F_EPOCH, which R_EXPIRES counts from. */
export function recordViewFactory(idx: Int32Array, arena: Arena, epochMs: number): RecordViewFactory {
  return (id: number, gen: number): SharedRecord => new RecordView(idx, arena, id, gen, epochMs);
}

class RecordView implements SharedRecord {
  readonly id: number;
  readonly gen: number;
  readonly meta: Uint8Array;
  readonly body: Uint8Array;
  readonly secondary: string;
  readonly expiresAt: number;
  readonly banSeq: number;
  readonly marker: boolean;
  readonly filling: boolean;
  readonly stream: boolean;
  private readonly idx: Int32Array;
  private readonly arena: Arena;
  /** The arena segment holding the record's bytes, and where its tags start in it. */
  private readonly seg: number;
  private readonly tagsAt: number;
  private readonly tagsLen: number;
  private readonly tagCount: number;
  private decodedTags: readonly string[] | null = null;
  private pinned = true;

  constructor(idx: Int32Array, arena: Arena, id: number, gen: number, epochMs: number) {
    const w = id * REC_WORDS;
    const expires = idx[w + R_EXPIRES]!;
    this.expiresAt = expires === EXPIRES_NEVER ? Infinity : epochMs + expires * 1000;
    this.banSeq = idx[w + R_BAN_SEQ]!;
    const flags = Atomics.load(idx, w + R_FLAGS);
    this.marker = (flags & FLAG_MARKER) !== 0;
    this.filling = (flags & FLAG_FILLING) !== 0;
    this.stream = (flags & FLAG_STREAM) !== 0;
    this.idx = idx;
    this.arena = arena;
    this.id = id;
    this.gen = gen;
    const data = idx[w + R_DATA]!;
    this.seg = arena.segment(data);
    let at = arena.byteIn(data) + idx[w + R_KEY_LEN]!;
    const secLen = idx[w + R_SEC_LEN]!;
    this.secondary = secLen === 0 ? '' : decoder.decode(arena.bytes(this.seg).subarray(at, at + secLen));
    at += secLen;
    this.tagsAt = at;
    this.tagsLen = idx[w + R_TAGS_LEN]!;
    this.tagCount = idx[w + R_TAG_COUNT]!;
    at += this.tagsLen;
    const sab = arena.buffer(this.seg);
    this.meta = new Uint8Array(sab, at, idx[w + R_META_LEN]!);
    at += this.meta.length;
    this.body = new Uint8Array(sab, at, idx[w + R_BODY_LEN]!);
  }

  /** Decoded on first use (the hit path rarely needs them), while the record is still pinned. */
  get tags(): readonly string[] {
    if (this.decodedTags === null && !this.pinned) throw new Error('a record\'s tags are read before unpin()');
    if (this.decodedTags === null) this.decodedTags = this.tagCount === 0 ? [] : decoder.decode(this.arena.bytes(this.seg).subarray(this.tagsAt, this.tagsAt + this.tagsLen)).split('\n');
    return this.decodedTags;
  }

  unpin(): void {
    if (!this.pinned) return;
    this.pinned = false;
    Atomics.sub(this.idx, this.id * REC_WORDS + R_PINS, 1);
  }
}
