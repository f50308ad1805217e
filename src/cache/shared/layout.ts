// Where everything lives in the shared store's two fixed buffers, and the hashes that place keys.
// Every thread attached to a store computes the same offsets from the sizes kept in the header, so
// a handle is just the buffers.
//
// control buffer (Int32Array and Float64Array over one SharedArrayBuffer):
//   header      | words G_*, then float64 F_* (counters written only under the lock)
//   namespaces  | NS_BYTES each: words (name length, LRU head, LRU tail), float64 (quota, bytes,
//               | objects, evictions), then the name's UTF-8 bytes
//   claims      | CLAIM_BYTES each: words (state, namespace, hash, second hash, wake counter),
//               | float64 deadline (ms since the epoch)
// index buffer (Int32Array):
//   records     | REC_WORDS words per record slot (the R_* fields)
//   buckets     | the first record slot of each hash chain, NIL when empty
//   tag buckets | as many again: the first tag head of each chain of the tag index (tags.ts), NIL
// arena (arena.ts): one block per record: its tag nodes (T_* fields), then the bytes R_DATA names

/** "No record": the end of a chain or list. */
export const NIL = -1;

// Header words.
export const G_LOCK = 0;
/** The readers' sequence counter: odd while a writer relinks a hash chain. */
export const G_SEQ = 1;
/** Global LRU list, most recently used at the head. */
export const G_LRU_HEAD = 2;
export const G_LRU_TAIL = 3;
/** Freed record slots, linked through R_NEXT (slots never used yet are counted by G_SLOTS_USED). */
export const G_FREE = 4;
/** Dead records a reader still pins, linked through R_NEXT; freed once unpinned. */
export const G_ZOMBIES = 5;
export const G_NS_COUNT = 6;
export const G_NS_MAX = 7;
export const G_RECORDS = 8;
export const G_BUCKETS = 9;
export const G_CLAIMS = 10;
/** Touches of one record closer together than this (ms) do not move it in the LRU lists. */
export const G_TOUCH_MS = 11;
/** Random seed of the tag hash: a tenant cannot choose tags that share a chain with another's. */
export const G_TAG_SEED = 12;
/**
 * Record slots handed out so far: those past it were never used, and their memory never touched
 * (a store sized for a large reserve costs only the slots its records use).
 */
export const G_SLOTS_USED = 13;
// Header float64 slots (index into the Float64Array).
export const F_MAX_BYTES = 8;
export const F_BYTES = 9;
export const F_OBJECTS = 10;
export const F_EVICTIONS = 11;
/** Creation time of the store: record touch times are kept as ms since then, in an int32. */
export const F_EPOCH = 12;
/** The most the budget may grow to: the arena, the record slots and the buckets are sized for it. */
export const F_RESERVED_BYTES = 13;
export const HEADER_BYTES = 128;

/** Longest namespace name, in UTF-8 bytes. */
export const NS_NAME_BYTES = 256;
export const NS_BYTES = 48 + NS_NAME_BYTES;
// Namespace words and float64 slots, relative to the namespace's first word / float64.
export const N_NAME_LEN = 0;
export const N_LRU_HEAD = 1;
export const N_LRU_TAIL = 2;
/** Distinct tags its records carry: the heads of its tag lists (tags.ts). */
export const N_TAGS = 3;
export const N_QUOTA = 2;
export const N_BYTES = 3;
export const N_OBJECTS = 4;
export const N_EVICTIONS = 5;

export const CLAIM_BYTES = 32;
// Claim words, relative to the claim's first word; its deadline is the float64 at byte 24.
export const C_STATE = 0;
export const C_NS = 1;
export const C_HASH = 2;
export const C_HASH2 = 3;
export const C_WAKE = 4;
export const C_DEADLINE = 3;

// Record slot fields (words from the slot's first word).
/** Bumped when the record dies: a reader holding (id, gen) can tell its record was replaced. */
export const R_GEN = 0;
export const R_STATE = 1;
/** Readers holding views into the record's block; the block is not freed while non-zero. */
export const R_PINS = 2;
export const R_NS = 3;
export const R_HASH = 4;
/** Next record in the hash chain (live), in the zombie list (dead, pinned) or the free list. */
export const R_NEXT = 5;
export const R_LRU_PREV = 6;
export const R_LRU_NEXT = 7;
export const R_NS_PREV = 8;
export const R_NS_NEXT = 9;
/**
 * Offset of the record's key (then secondary key, tags, meta, body) in the arena, in cells (so
 * arenas up to 32 GiB fit an int32). Its block starts R_TAG_COUNT tag nodes before.
 */
export const R_DATA = 10;
export const R_CHARGED = 11;
export const R_KEY_LEN = 12;
export const R_SEC_LEN = 13;
export const R_TAGS_LEN = 14;
export const R_TAG_COUNT = 15;
export const R_META_LEN = 16;
export const R_BODY_LEN = 17;
/** Last LRU move, ms since F_EPOCH. */
export const R_TOUCHED = 18;
/** When the record may go (seconds since F_EPOCH, rounded up; EXPIRES_NEVER for never). */
export const R_EXPIRES = 19;
/** The writer's ban position: the record's owner has tested it against the bans up to this one. */
export const R_BAN_SEQ = 20;
/** FLAG_* flags of the record. */
export const R_FLAGS = 21;
/** Body bytes written so far, while FLAG_FILLING. */
export const R_FILLED = 22;
/** Bumped (and waiters woken) at every step of a filling record and when any record dies. */
export const R_FILL_SEQ = 23;
export const REC_WORDS = 24;

// Tag nodes: one per tag of a record, TAG_NODE_CELLS cells each, at the start of its block. The
// nodes of one namespace's tag form a doubly linked list; its first node (the head) is also in a
// chain of the tag buckets. Links name nodes by their first cell; NIL ends a list or chain.
export const TAG_NODE_CELLS = 2;
/** The record the node belongs to. */
export const T_RECORD = 0;
/** The tag's hash (tagHash), and its namespace: a chain walk compares them before any byte. */
export const T_HASH = 1;
export const T_NS = 2;
export const T_PREV = 3;
export const T_NEXT = 4;
/** Next head in the bucket's chain (heads only). */
export const T_CHAIN = 5;
/** Where the tag's UTF-8 bytes are: offset from the record's first tag byte, and length. */
export const T_AT = 6;
export const T_LEN = 7;

/** A record with no expiry. */
export const EXPIRES_NEVER = 0x7fffffff;
/** Record flag: a marker (a fact about its key, such as hit-for-miss), not a stored response. */
export const FLAG_MARKER = 1;
/** Record flag: its body is still being written (`reserve`); cleared by `complete`. */
export const FLAG_FILLING = 2;
/**
 * Record flag: purged while filling — out of its chain and the LRU lists (no lookup finds it), its
 * block kept for the readers already following it until the writer completes or abandons it.
 */
export const FLAG_UNLISTED = 4;
/**
 * Record flag: a body of unknown length (`reserveStream`), written in extents that a stream header
 * lists (S_* fields); its R_BODY_LEN is 0, R_FILLED counts the bytes written (mod 2^32).
 */
export const FLAG_STREAM = 8;
/** Record flag: a stream past its limit: unlisted, its extents reused as a ring for the readers following it. */
export const FLAG_RING = 16;

// Stream header: int32 words at the first cell boundary after a stream record's meta, then its
// first extent. Positions are byte counts since the body's start, kept mod 2^32 where shared.
/** The position the writer may be writing up to (mod 2^32): set before bytes are written. */
export const S_WRITING = 0;
/** The written position's high part (position / 2^32): read by the writer only. */
export const S_HIGH = 1;
/** Bytes of the extents listed: the ring's size once FLAG_RING. */
export const S_CAP = 2;
/** Extents listed. */
export const S_EXTENTS = 3;
/** The most body bytes the record may keep as an object: past it, it turns into a ring. */
export const S_LIMIT = 4;
/** First word of the extent table: (first cell, bytes) pairs, in body order. */
export const S_TABLE = 8;
/** Extents a stream may have: growing geometrically from a few KiB, enough for 2 GiB. */
export const STREAM_EXTENTS = 24;
/** Bytes of a stream header (a whole number of cells). */
export const STREAM_HEADER_BYTES = (S_TABLE + 2 * STREAM_EXTENTS) * 4;

// Record states.
export const FREE = 0;
export const LIVE = 1;
export const DEAD = 2;

// Claim states. A TOMB slot was released but keeps later slots of its probe sequence reachable.
export const EMPTY = 0;
export const HELD = 1;
export const TOMB = 2;

/** The arena cell where the stream header of record `id` (FLAG_STREAM) starts, in its record's block. */
export function streamCell(idx: Int32Array, id: number): number {
  const w = id * REC_WORDS;
  const before = idx[w + R_KEY_LEN]! + idx[w + R_SEC_LEN]! + idx[w + R_TAGS_LEN]! + idx[w + R_META_LEN]!;
  return idx[w + R_DATA]! + Math.ceil(before / 16);
}

/** The control buffer's size for these counts. */
export function controlBytes(namespaces: number, claims: number): number {
  return HEADER_BYTES + namespaces * NS_BYTES + claims * CLAIM_BYTES;
}

/** First byte of namespace `id` in the control buffer. */
export function nsOffset(id: number): number {
  return HEADER_BYTES + id * NS_BYTES;
}

/** First byte of claim slot `i` in the control buffer. */
export function claimOffset(namespaces: number, i: number): number {
  return HEADER_BYTES + namespaces * NS_BYTES + i * CLAIM_BYTES;
}

/** A key's UTF-8 bytes (the first `length` of `bytes`), and `words` viewing the same memory. */
export interface Key {
  bytes: Uint8Array;
  words: Int32Array;
  length: number;
}

/** FNV-1a of the namespace id and the key's bytes: picks the hash chain. */
export function hashKey(ns: number, key: Key): number {
  const bytes = key.bytes;
  let h = (0x811c9dc5 ^ ns) >>> 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h | 0;
}

/**
 * The tag index's hash of `length` bytes of `bytes` from `at` in namespace `ns`: FNV-1a from a
 * state drawn from the store's random seed, then murmur3's finaliser so every bit reaches the
 * bucket index. Which tags share a chain depends on the seed, which no tenant sees.
 */
export function tagHash(seed: number, ns: number, bytes: Uint8Array, at: number, length: number): number {
  let h = Math.imul(seed ^ ns, 0x01000193) ^ 0x811c9dc5;
  for (let i = 0; i < length; i++) h = Math.imul(h ^ bytes[at + i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** A second, independent hash (djb2-xor): claims keep no key bytes, so they compare two hashes. */
export function hashKey2(ns: number, key: Key): number {
  const bytes = key.bytes;
  let h = 5381 + ns;
  for (let i = 0; i < key.length; i++) h = (Math.imul(h, 33) ^ bytes[i]!) | 0;
  return h;
}

/** The UTF-8 bytes of `s`, in a buffer of their own. */
export function ownBytes(s: string): Uint8Array {
  return Buffer.from(s, 'utf8');
}

/** True when `a` holds the same bytes as `b` from `offset`. */
export function bytesEqual(a: Uint8Array, offset: number, b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (a[offset + i] !== b[i]) return false;
  return true;
}

/**
 * True when the arena holds `key` at the 4-byte aligned `offset` (`words` and `bytes` view the
 * arena): a word at a time, then the tail bytes.
 */
export function keyEqual(words: Int32Array, bytes: Uint8Array, offset: number, key: Key): boolean {
  const whole = key.length >>> 2;
  const base = offset >>> 2;
  for (let i = 0; i < whole; i++) if (words[base + i] !== key.words[i]) return false;
  for (let i = whole << 2; i < key.length; i++) if (bytes[offset + i] !== key.bytes[i]) return false;
  return true;
}
