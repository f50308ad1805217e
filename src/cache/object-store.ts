// What the cache engine needs of the memory its objects live in: a namespace (one tenant's objects,
// under its quota) of a storage (one byte budget). Two implementations: storage.ts keeps objects
// on this thread's heap; shared-storage.ts keeps them in shared memory that every shard thread
// reads and writes, so that all shards serve one cache.
import type { HeaderList } from './headers.ts';
import type { CacheObject } from './object.ts';

/** One cache's objects, variants, surrogate-key index and hit-for-miss markers, under a quota. */
export interface ObjectStore {
  readonly name: string;
  /** The quota. */
  readonly maxBytes: number;
  readonly objects: number;
  /** Bytes charged to the quota: objects, their index entries, hit-for-miss markers, bans. */
  readonly bytes: number;
  /** Distinct surrogate keys. */
  readonly tags: number;
  readonly hitForMissMarkers: number;
  /** Charges (or refunds) bytes held outside objects (bans), evicting if the quota is exceeded. */
  account(delta: number): void;
  /** Every stored variant of a primary key (most recent first; a snapshot), or undefined. */
  variants(key: string): readonly CacheObject[] | undefined;
  /** Marks a use for LRU purposes. */
  touch(obj: CacheObject, now: number): void;
  /** Stores a complete object, replacing the variant it supersedes; false when it can never fit. */
  insert(obj: CacheObject, now: number): boolean;
  /** Removes one object (no-op if already gone). */
  remove(obj: CacheObject): void;
  /** Removes every variant of a primary key; answers how many objects went. */
  removeKey(key: string): number;
  /** Removes every object tagged `tag`; answers how many went. */
  removeTag(tag: string): number;
  /** Every primary key that has at least one stored variant. */
  keys(): string[];
  /**
   * The lurker's pass: drops expired objects and hit-for-miss markers, and objects `banned` (called
   * for objects older than ban position `banSeq`; null when no ban is pending) says go. Answers the
   * oldest ban position left.
   */
  sweep(now: number, banSeq: number, banned: ((obj: CacheObject) => boolean) | null): number;
  /** Remembers until `untilMs` that `key` gave an uncacheable answer (Varnish hit-for-miss). */
  markHitForMiss(key: string, untilMs: number): void;
  isHitForMiss(key: string, now: number): boolean;
  clearHitForMiss(key: string): void;
  /** A new quota; evicts the oldest objects if it shrank. */
  resize(maxBytes: number): void;
  /** Drops everything. */
  clear(): void;
  /**
   * Coalescing across threads (shared storage only): `true` when the caller now fetches `key`,
   * else a promise that settles when the thread fetching it is done (then look up again).
   */
  claim?(key: string): true | Promise<void>;
  /** Ends a claim `claim` granted. */
  release?(key: string): void;
  /**
   * Shared storage only: stores `obj`'s head now, with room for a body of `bodyLength` bytes (null:
   * of unknown length, kept up to `maxBodyBytes`) that other threads can follow while the writer
   * fills it in. Null when it can never fit.
   */
  reserve?(obj: CacheObject, bodyLength: number | null, maxBodyBytes: number): FillWriter | null;
  /** Shared storage only: the object of `key` another thread is still filling, to follow. */
  filling?(key: string): RemoteFill | null;
}

/** The writer's side of a reserved object (`ObjectStore.reserve`). */
export interface FillWriter {
  /**
   * Appends body bytes; false once the record is gone (evicted) or the body would overflow. A body
   * of unknown length that grows past its limit is not kept but still streams to the threads
   * following it: false only once none does.
   */
  write(chunk: Uint8Array): boolean;
  /**
   * The body is whole: the object is stored as any other. False if it is gone or incomplete, was
   * purged while being written or grew past its limit (its followers still get it whole; it is
   * not kept).
   */
  complete(): boolean;
  /** Gives up (the fetch failed): the record goes, and its followers see it fail. */
  abort(): void;
  /** Whether a thread other than the writer's follows the record now (its body is wanted there). */
  followed(): boolean;
}

/**
 * Where a followed fill stands: the bytes after `from` written so far (a copy), and its state:
 * `whole` when `chunk` is all the rest of the body (nothing follows), `gone` when it broke off.
 */
export interface FillProgress {
  state: 'gone' | 'filling' | 'whole';
  chunk: Buffer | null;
  /** What `RemoteFill.wait` waits to change. */
  seq: number;
}

/** An object another thread is filling (`ObjectStore.filling`), followed as its body arrives. */
export interface RemoteFill {
  /** Its fields; its body is not to be read here (use `read`). */
  readonly obj: CacheObject;
  /** The header block to send (Content-Length only when the body's length is known). */
  readonly head: HeaderList;
  read(from: number): FillProgress;
  /** Resolves when the fill moves past `seq`, or after `timeoutMs`. */
  wait(seq: number, timeoutMs: number): Promise<void>;
  /** Done following (exactly once). */
  close(): void;
}

/** The size of a namespace. */
export interface NamespaceOptions {
  /** Quota of this namespace; defaults to the whole budget. */
  maxBytes?: number;
}

/** A byte budget shared by namespaces; past it, the least recently used object of any goes. */
export interface ObjectStorage {
  readonly maxBytes: number;
  /** Objects evicted for room, all namespaces together. */
  readonly evictions: number;
  /** The namespace called `name`, created on first use; a later call with a quota updates it. */
  namespace(name: string, options?: NamespaceOptions): ObjectStore;
  /** A new budget (a config reload). */
  setBudget(maxBytes: number): void;
}
