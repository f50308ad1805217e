// Placing records in the shared store: an insert (a whole record), a reserve (room for a body of
// known length that its writer fills in, fills.ts), a stream (a body of unknown length, appended
// in extents, streams.ts) and a stream's completion, which copies its body into a record of its
// own. Each makes room first, as the namespace's quota and the budget say, then publishes the
// record whole. store.ts builds the lookups and removals beside it.
import { CELL } from './arena.ts';
import * as L from './layout.ts';
import { seqBegin, seqEnd } from './lock.ts';
import { MAX_STREAM_BYTES, STREAM_FIRST_BYTES, StreamRecords } from './streams.ts';
import { TagIndex } from './tags.ts';
import { scratchKey } from './walks.ts';

/**
 * Bytes charged per record beyond its meta, body, key, secondary key, tags and tag nodes: its
 * 96-byte slot in the index, its 8-byte share of the key and tag buckets, the 32 bytes of its
 * block's boundary tags and up to 15 bytes of alignment.
 */
export const RECORD_OVERHEAD = 156;
/** Bytes charged per distinct tag of a record beyond the tag itself: its node in the tag index. */
export const TAG_NODE_BYTES = TagIndex.nodeBytes(1);

/**
 * A record to insert. Tags may not contain a line feed (Surrogate-Key values cannot); a tag
 * listed twice is kept once.
 */
export interface RecordInit {
  meta: Uint8Array;
  body: Uint8Array;
  tags: readonly string[];
  /** Secondary key (Vary values): a record with the same namespace, key and secondary replaces. */
  secondary: string;
  /** When it may go (ms since the epoch): `removeExpired` drops it from then on. Default never. */
  expiresAt?: number;
  /** The writer's ban position (see `setBanSeq`); default 0. */
  banSeq?: number;
  /** A marker: a fact about its key kept under the quota, not a response. */
  marker?: boolean;
}

/** Names a record: its slot and the generation of the slot when the record was stored in it. */
export interface RecordRef {
  readonly id: number;
  readonly gen: number;
}

/** What follows a placed record's meta in its block, written before the record is published. */
interface BodyPlan {
  /** Bytes it takes, given the bytes of key, secondary key, tags and meta before it. */
  room(before: number): number;
  /** R_BODY_LEN. */
  length: number;
  /** FLAG_* flags beyond the marker's. */
  flags: number;
  /** Writes it from byte `at` of arena segment `seg`, with the lock held. */
  write(seg: number, at: number): void;
}

/** A record's key, secondary key and tags in UTF-8, encoded before the lock is taken. */
interface Encoded {
  key: L.Key;
  secondary: Uint8Array;
  tags: Uint8Array;
  tagCount: number;
}

/** Encodes a record's strings; the key goes in the scratch key, which the next call reuses. */
function encode(key: string, init: RecordInit): Encoded {
  const tags = new Set(init.tags);
  for (const tag of tags) if (tag.includes('\n')) throw new RangeError('a tag may not contain a line feed');
  return { key: scratchKey(key), secondary: L.ownBytes(init.secondary), tags: L.ownBytes([...tags].join('\n')), tagCount: tags.size };
}

/** The placing side of the store. */
export class RecordPlacement extends StreamRecords {
  /**
   * Stores a record under (`ns`, `key`), replacing the one with the same secondary key, then
   * evicts least recently used records until the namespace's quota and the budget hold. `null`
   * when the record can never fit: its charged size exceeds the quota or the budget.
   */
  insert(ns: number, key: string, init: RecordInit): RecordRef | null {
    const body = init.body;
    const enc = encode(key, init);
    return this.write(ns, () => this.place(ns, enc, init, { room: () => body.length, length: body.length, flags: 0, write: (seg, at) => this.arena.bytes(seg).set(body, at) }));
  }

  /**
   * Inserts a record as `insert` does, but with room for a body of `bodyLength` bytes that the
   * caller writes afterwards through `body` (`init.body` is ignored), publishing its progress with
   * `fill` and ending with `complete`; until then the record is `filling` and readers can follow
   * it (`progress`, `waitProgress`). `null` when it can never fit.
   */
  reserve(ns: number, key: string, init: RecordInit, bodyLength: number): { ref: RecordRef; body: Uint8Array } | null {
    let bodySeg = 0;
    let bodyAt = 0;
    const enc = encode(key, init);
    const ref = this.write(ns, () => this.place(ns, enc, init, { room: () => bodyLength, length: bodyLength, flags: L.FLAG_FILLING, write: (seg, at) => { bodySeg = seg; bodyAt = at; } }));
    return ref === null ? null : { ref, body: new Uint8Array(this.arena.buffer(bodySeg), bodyAt, bodyLength) };
  }

  /**
   * Inserts a record as `insert` does for a body of unknown length (`init.body` is ignored) that
   * the caller, holding a pin on it (`pin`), appends as it arrives (`append`), then completes
   * (`completeStream`) or abandons; meanwhile the record is `filling` and `stream`, and readers
   * follow it (`readStream`, `waitProgress`). Its body is kept up to `maxBodyBytes`; past that
   * it leaves the cache and streams on to its readers only. `null` when it can never fit.
   */
  reserveStream(ns: number, key: string, init: RecordInit, maxBodyBytes: number): RecordRef | null {
    if (!(maxBodyBytes >= 1)) throw new RangeError('a stream needs a limit of at least one byte');
    const limit = Math.min(Math.floor(maxBodyBytes), MAX_STREAM_BYTES);
    const first = Math.ceil(Math.min(limit, STREAM_FIRST_BYTES) / CELL) * CELL;
    const pad = (before: number): number => Math.ceil(before / CELL) * CELL - before;
    const enc = encode(key, init);
    return this.write(ns, () => this.place(ns, enc, init, {
      room: (before) => pad(before) + L.STREAM_HEADER_BYTES + first,
      length: 0,
      flags: L.FLAG_FILLING | L.FLAG_STREAM,
      write: (seg, at) => this.initStream(this.arena.cellAt(seg, at + pad(at)), first, limit),
    }));
  }

  /**
   * The stream record named is whole: its body is copied into a record of its own under `key`
   * and `init` (those it was reserved with), which is stored as `insert` stores; the stream
   * record goes once its readers, who see it whole, let it go. False (nothing stored) when the
   * record is gone, was purged meanwhile, outgrew its limit, or the copy cannot fit.
   */
  completeStream(id: number, gen: number, key: string, init: RecordInit): boolean {
    if (!(id >= 0 && id < this.records)) return false;
    const enc = encode(key, init);
    return this.write(null, () => {
      if (!this.isLive(id, gen)) return false;
      const w = id * L.REC_WORDS;
      if ((this.idx[w + L.R_FLAGS]! & L.FLAG_STREAM) === 0) throw new TypeError('completeStream completes a stream record');
      let stored = false;
      if (this.streamKeepable(id)) {
        const ns = this.idx[w + L.R_NS]!;
        const length = this.streamLength(id);
        // The copy is charged in its place: the stream's blocks are not the cache's any more.
        this.account(ns, -this.idx[w + L.R_CHARGED]!, 0);
        this.idx[w + L.R_CHARGED] = 0;
        stored = this.place(ns, enc, init, { room: () => length, length, flags: 0, write: (seg, at) => this.copyStreamOut(id, length, seg, at) }) !== null;
      }
      this.retire(id);
      return stored;
    });
  }

  /** With the lock held: places a record whose body `plan` makes. */
  private place(ns: number, enc: Encoded, init: RecordInit, plan: BodyPlan): RecordRef | null {
    const { key: keyBytes, secondary: secBytes, tags: tagBytes } = enc;
    const before = keyBytes.length + secBytes.length + tagBytes.length + init.meta.length;
    const dataBytes = before + plan.room(before);
    const nodeBytes = TagIndex.nodeBytes(enc.tagCount);
    const charged = nodeBytes + dataBytes + RECORD_OVERHEAD;
    const hash = L.hashKey(ns, keyBytes);
    const nsF = L.nsOffset(ns) / 8;
    if (charged > this.f64[nsF + L.N_QUOTA]! || charged > this.f64[L.F_MAX_BYTES]! || nodeBytes + dataBytes > this.arena.maxPayloadBytes) return null;
    for (const id of this.chain(ns, hash, keyBytes)) {
      const w = id * L.REC_WORDS;
      const cell = this.idx[w + L.R_DATA]!;
      if (this.idx[w + L.R_SEC_LEN] === secBytes.length && L.bytesEqual(this.arena.bytes(this.arena.segment(cell)), this.arena.byteIn(cell) + keyBytes.length, secBytes)) this.drop(id);
    }
    this.evictNamespace(ns, charged);
    while (this.f64[L.F_BYTES]! + charged > this.f64[L.F_MAX_BYTES]! && this.evictOldest()) { /* evicting */ }
    while (!this.hasSlot()) if (!this.evictOldest()) return null;
    let block = this.arena.alloc(nodeBytes + dataBytes);
    while (block < 0) {
      if (!this.evictOldest()) return null;
      block = this.arena.alloc(nodeBytes + dataBytes);
    }
    // The record's bytes start past its tag nodes (a whole number of cells).
    const data = block + nodeBytes / CELL;
    const seg = this.arena.segment(data);
    const id = this.takeSlot();
    const w = id * L.REC_WORDS;
    const u8 = this.arena.bytes(seg);
    let at = this.arena.byteIn(data);
    for (const part of [keyBytes.bytes.subarray(0, keyBytes.length), secBytes, tagBytes, init.meta]) {
      u8.set(part, at);
      at += part.length;
    }
    plan.write(seg, at);
    const fields: [number, number][] = [[L.R_NS, ns], [L.R_HASH, hash], [L.R_DATA, data], [L.R_CHARGED, charged], [L.R_KEY_LEN, keyBytes.length],
      [L.R_SEC_LEN, secBytes.length], [L.R_TAGS_LEN, tagBytes.length], [L.R_TAG_COUNT, enc.tagCount], [L.R_META_LEN, init.meta.length],
      [L.R_BODY_LEN, plan.length], [L.R_TOUCHED, this.now()], [L.R_EXPIRES, this.expiresField(init.expiresAt ?? Infinity)],
      [L.R_BAN_SEQ, init.banSeq ?? 0], [L.R_FLAGS, (init.marker === true ? L.FLAG_MARKER : 0) | plan.flags], [L.R_FILLED, 0]];
    for (const [field, value] of fields) this.idx[w + field] = value;
    // Published last: a reader that finds the slot LIVE sees every field and byte above.
    Atomics.store(this.idx, w + L.R_STATE, L.LIVE);
    this.linkLru(id);
    this.tagIndex.link(id);
    const bucket = this.bucketBase + (hash & this.bucketMask);
    seqBegin(this.ctl, L.G_SEQ);
    this.idx[w + L.R_NEXT] = this.idx[bucket]!;
    Atomics.store(this.idx, bucket, id);
    seqEnd(this.ctl, L.G_SEQ);
    this.account(ns, charged, 1);
    return { id, gen: this.idx[w + L.R_GEN]! };
  }

  /** R_EXPIRES for an expiry in ms since the epoch: seconds since F_EPOCH, rounded up, clamped. */
  private expiresField(expiresAt: number): number {
    if (!(expiresAt < Infinity)) return L.EXPIRES_NEVER;
    return Math.max(0, Math.min(L.EXPIRES_NEVER - 1, Math.ceil((expiresAt - this.f64[L.F_EPOCH]!) / 1000)));
  }
}
