// Object storage: a global byte budget split into namespaces (one per tenant) with their own
// quotas, LRU eviction, variants per primary key, a Surrogate-Key index and hit-for-miss markers.
// An object enters storage only once complete, so readers never see a partial body. Everything a
// namespace holds is charged to its quota: objects (object.ts says what their size counts), the
// index entries for them and for each of their tags, hit-for-miss markers, and bans (engine.ts).
import type { CacheObject } from './object.ts';
import type { NamespaceOptions, ObjectStorage, ObjectStore } from './object-store.ts';
import { expired } from './policy.ts';

// Heap cost of the index structures, measured on Node 20 (x64) as heapUsed growth after gc per
// entry, with maps and sets at their usual fill (bench/cache-memory.ts compares the sum with the
// heap; test/cache/accounting.test.ts holds the heap to a few times the quota).
/**
 * One stored object in the indexes: its primary-key Map entry with a one-element variants array
 * (charged per object: the worst case, one variant per key) and its LRU Set entry. Measured: 115.
 */
const ENTRY_BYTES = 120;
/**
 * A tag carried by one object: its Map entry, pointing straight at the object (a Set per tag
 * would cost 150 bytes more), and the key's string header; its characters are counted apart.
 * Measured: 30 bytes per Map entry, 16 per string header.
 */
const TAG_ENTRY_BYTES = 48;
/** The Set a tag gets once a second object carries it. Measured: 152 bytes with 2 to 4 members. */
const TAG_SET_BYTES = 104;
/** One object in a tag's Set. Measured: 20 to 27 bytes per member from 5 to 1 000 members. */
const TAG_MEMBER_BYTES = 24;
/** One hit-for-miss marker: Map entry, expiry time, key string header. Measured: 73 bytes. */
export const HIT_FOR_MISS_BYTES = 80;
/**
 * Hit-for-miss markers may fill at most this fraction of a quota; past it the oldest (the soonest
 * to expire) are forgotten. A client that requests unique uncacheable URLs makes one per request.
 */
export const HIT_FOR_MISS_SHARE = 1 / 16;
/**
 * Most variants (Vary) kept per primary key; a new one beyond it evicts the key's oldest. Every
 * lookup of a key compares the request with its variants one by one, on the thread all tenants
 * share.
 */
export const MAX_VARIANTS = 100;

/** A Storage's size. */
export interface StorageOptions {
  /** Byte budget for all namespaces together. */
  maxBytes: number;
}

/** LRU bumps closer together than this are skipped: ordering stays useful, hits stay cheap. */
const LRU_BUMP_MS = 1000;

/**
 * The memory cached objects live in, shared by caches (one Namespace each) under one byte budget:
 * past it, the least recently used object of any namespace goes first.
 */
export class Storage implements ObjectStorage {
  maxBytes: number;
  bytes = 0;
  objects = 0;
  evictions = 0;
  private readonly spaces = new Map<string, Namespace>();

  constructor(options: StorageOptions) {
    if (!(options.maxBytes > 0)) throw new RangeError('storage maxBytes must be positive');
    this.maxBytes = options.maxBytes;
  }

  /** The namespace called `name`, created on first use; a later call with a quota updates it. */
  namespace(name: string, options: NamespaceOptions = {}): Namespace {
    let ns = this.spaces.get(name);
    if (ns === undefined) {
      ns = new Namespace(this, name, Math.min(options.maxBytes ?? this.maxBytes, this.maxBytes));
      this.spaces.set(name, ns);
    } else if (options.maxBytes !== undefined) {
      ns.resize(Math.min(options.maxBytes, this.maxBytes));
    }
    return ns;
  }

  setBudget(maxBytes: number): void {
    if (!(maxBytes > 0)) throw new RangeError('storage maxBytes must be positive');
    this.maxBytes = maxBytes;
    this.reclaim();
  }

  /** Evicts the least recently used object across namespaces until the global budget holds. */
  reclaim(): void {
    while (this.bytes > this.maxBytes) {
      let victim: CacheObject | undefined;
      let owner: Namespace | undefined;
      for (const ns of this.spaces.values()) {
        const head = ns.oldest();
        if (head !== undefined && (victim === undefined || head.lastUse < victim.lastUse)) { victim = head; owner = ns; }
      }
      if (victim === undefined || owner === undefined) return;
      owner.remove(victim);
      this.evictions++;
    }
  }
}

/** One cache's objects inside a Storage, with a quota of its own. */
export class Namespace implements ObjectStore {
  readonly name: string;
  maxBytes: number;
  bytes = 0;
  objects = 0;
  private readonly storage: Storage;
  private readonly map = new Map<string, CacheObject[]>();
  /** Insertion order of a Set is the LRU order: re-adding moves an object to the young end. */
  private readonly lru = new Set<CacheObject>();
  /** Tag → the object carrying it, or the Set of them once there are several. */
  private readonly tagIndex = new Map<string, CacheObject | Set<CacheObject>>();
  private readonly hitForMiss = new Map<string, number>();
  private hitForMissBytes = 0;

  constructor(storage: Storage, name: string, maxBytes: number) {
    this.storage = storage;
    this.name = name;
    this.maxBytes = maxBytes;
  }

  /** A new quota (tenant config reload); evicts the oldest objects if it shrank. */
  resize(maxBytes: number): void {
    this.maxBytes = maxBytes;
    this.trimHitForMiss();
    this.fit();
  }

  /** Distinct tags in the Surrogate-Key index. */
  get tags(): number {
    return this.tagIndex.size;
  }

  /** Hit-for-miss markers held. */
  get hitForMissMarkers(): number {
    return this.hitForMiss.size;
  }

  /**
   * Charges (or, negative, refunds) bytes held for this namespace outside its objects, then evicts
   * objects until the quota and the global budget hold again.
   */
  account(delta: number): void {
    this.charge(delta);
    if (delta > 0) this.fit();
  }

  /** Every stored variant of a primary key (most recent first), or undefined. */
  variants(key: string): CacheObject[] | undefined {
    return this.map.get(key);
  }

  /** Marks a use for LRU purposes. */
  touch(obj: CacheObject, now: number): void {
    if (now - obj.lastUse < LRU_BUMP_MS) return;
    obj.lastUse = now;
    this.lru.delete(obj);
    this.lru.add(obj);
  }

  /**
   * Stores a complete object, replacing the variant with the same secondary key, then evicts until
   * the quota and the global budget hold. False when the object can never fit.
   */
  insert(obj: CacheObject, now: number): boolean {
    if (obj.tagError !== null) return false;
    const cost = obj.size + ENTRY_BYTES + obj.tags.length * TAG_MEMBER_BYTES;
    if (cost > this.maxBytes || cost > this.storage.maxBytes) return false;
    const list = this.map.get(obj.key);
    if (list !== undefined) {
      for (const old of [...list]) if (replaces(obj, old)) this.remove(old);
      // Removal may have dropped the list; only a live one grows.
      const left = this.map.get(obj.key);
      if (left !== undefined && left.length >= MAX_VARIANTS) {
        this.remove(left[left.length - 1] as CacheObject);
        this.storage.evictions++;
      }
    }
    obj.lastUse = now;
    const fresh = this.map.get(obj.key);
    if (fresh === undefined) this.map.set(obj.key, [obj]);
    else fresh.unshift(obj);
    this.lru.add(obj);
    for (const tag of obj.tags) this.indexTag(tag, obj);
    this.charge(obj.size + ENTRY_BYTES);
    this.objects++;
    this.storage.objects++;
    this.clearHitForMiss(obj.key);
    this.fit();
    return !obj.removed;
  }

  /** Removes one object (no-op if already gone). */
  remove(obj: CacheObject): void {
    if (obj.removed) return;
    obj.removed = true;
    const list = this.map.get(obj.key);
    if (list !== undefined) {
      const i = list.indexOf(obj);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.map.delete(obj.key);
    }
    this.lru.delete(obj);
    for (const tag of obj.tags) this.unindexTag(tag, obj);
    this.charge(-(obj.size + ENTRY_BYTES));
    this.objects--;
    this.storage.objects--;
  }

  /** Removes every variant of a primary key; returns how many objects went. */
  removeKey(key: string): number {
    const list = this.map.get(key);
    if (list === undefined) return 0;
    const victims = [...list];
    for (const o of victims) this.remove(o);
    return victims.length;
  }

  /** Removes every object tagged `tag` (Surrogate-Key); returns how many went. */
  removeTag(tag: string): number {
    const entry = this.tagIndex.get(tag);
    if (entry === undefined) return 0;
    const victims = entry instanceof Set ? [...entry] : [entry];
    for (const o of victims) this.remove(o);
    return victims.length;
  }

  /** Every primary key that has at least one stored variant. */
  keys(): string[] {
    return [...this.map.keys()];
  }

  /** The least recently used object. */
  oldest(): CacheObject | undefined {
    for (const o of this.lru) return o;
    return undefined;
  }

  /** All objects, for the ban lurker and expiry sweeps (a snapshot: removal while iterating is safe). */
  all(): CacheObject[] {
    return [...this.lru];
  }

  sweep(now: number, banSeq: number, banned: ((obj: CacheObject) => boolean) | null): number {
    let oldest = banSeq;
    for (const obj of this.all()) {
      if (expired(obj.life, now) || (banned !== null && obj.banSeq < banSeq && banned(obj))) {
        this.remove(obj);
        continue;
      }
      if (obj.banSeq < oldest) oldest = obj.banSeq;
    }
    this.sweepHitForMiss(now);
    return oldest;
  }

  /** Remembers for `untilMs` that `key` gave an uncacheable answer (Varnish hit-for-miss). */
  markHitForMiss(key: string, untilMs: number): void {
    if (this.hitForMiss.has(key)) { this.hitForMiss.set(key, untilMs); return; }
    this.hitForMiss.set(key, untilMs);
    const cost = HIT_FOR_MISS_BYTES + key.length;
    this.hitForMissBytes += cost;
    this.charge(cost);
    this.trimHitForMiss();
    this.fit();
  }

  isHitForMiss(key: string, now: number): boolean {
    const until = this.hitForMiss.get(key);
    if (until === undefined) return false;
    if (now < until) return true;
    this.clearHitForMiss(key);
    return false;
  }

  clearHitForMiss(key: string): void {
    if (!this.hitForMiss.delete(key)) return;
    const cost = HIT_FOR_MISS_BYTES + key.length;
    this.hitForMissBytes -= cost;
    this.charge(-cost);
  }

  /** Forgets expired hit-for-miss markers (called by the periodic sweep). */
  sweepHitForMiss(now: number): void {
    for (const [k, until] of this.hitForMiss) if (now >= until) this.clearHitForMiss(k);
  }

  /** Drops everything in this namespace. */
  clear(): void {
    for (const o of this.all()) this.remove(o);
    for (const k of [...this.hitForMiss.keys()]) this.clearHitForMiss(k);
  }

  private charge(delta: number): void {
    this.bytes += delta;
    this.storage.bytes += delta;
  }

  /** Evicts least recently used objects until the quota holds, then lets the storage reclaim. */
  private fit(): void {
    while (this.bytes > this.maxBytes) {
      const victim = this.oldest();
      if (victim === undefined) break;
      this.remove(victim);
      this.storage.evictions++;
    }
    this.storage.reclaim();
  }

  /** Forgets the oldest hit-for-miss markers while they take more than their share of the quota. */
  private trimHitForMiss(): void {
    const limit = this.maxBytes * HIT_FOR_MISS_SHARE;
    for (const k of this.hitForMiss.keys()) {
      if (this.hitForMissBytes <= limit) break;
      this.clearHitForMiss(k);
    }
  }

  private indexTag(tag: string, obj: CacheObject): void {
    const entry = this.tagIndex.get(tag);
    if (entry === undefined) {
      // A tag split from a field value is a slice that keeps the whole value alive; the index can
      // outlive that object, so its key is a string of its own.
      this.tagIndex.set(JSON.parse(JSON.stringify(tag)) as string, obj);
      this.charge(TAG_ENTRY_BYTES + tag.length);
    } else if (entry instanceof Set) {
      entry.add(obj);
      this.charge(TAG_MEMBER_BYTES);
    } else {
      this.tagIndex.set(tag, new Set([entry, obj]));
      this.charge(TAG_SET_BYTES + 2 * TAG_MEMBER_BYTES);
    }
  }

  private unindexTag(tag: string, obj: CacheObject): void {
    const entry = this.tagIndex.get(tag);
    if (entry === obj) {
      this.tagIndex.delete(tag);
      this.charge(-(TAG_ENTRY_BYTES + tag.length));
    } else if (entry instanceof Set && entry.delete(obj)) {
      this.charge(-TAG_MEMBER_BYTES);
      if (entry.size === 1) {
        for (const last of entry) this.tagIndex.set(tag, last);
        this.charge(-(TAG_SET_BYTES + TAG_MEMBER_BYTES));
      }
    }
  }
}

/**
 * True when `next` supersedes `old`: same secondary key, or either does not vary (then the two
 * would answer the same requests and only the newer is right).
 */
function replaces(next: CacheObject, old: CacheObject): boolean {
  const a = next;
  const b = old;
  if (a.varyNames === null || b.varyNames === null) return true;
  if (a.varyNames.length !== b.varyNames.length) return false;
  for (let i = 0; i < a.varyNames.length; i++) {
    if (a.varyNames[i] !== b.varyNames[i] || a.varyValues[i] !== b.varyValues[i]) return false;
  }
  return true;
}
