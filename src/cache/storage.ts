// Object storage: a global byte budget split into namespaces (one per tenant) with their own
// quotas, LRU eviction, variants per primary key, a Surrogate-Key index and hit-for-miss markers.
// An object enters storage only once complete, so readers never see a partial body.
import type { CacheObject } from './object.ts';

export interface StorageOptions {
  /** Byte budget for all namespaces together. */
  maxBytes: number;
}

export interface NamespaceOptions {
  /** Quota of this namespace; defaults to the whole budget. */
  maxBytes?: number;
}

/** LRU bumps closer together than this are skipped: ordering stays useful, hits stay cheap. */
const LRU_BUMP_MS = 1000;

export class Storage {
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

  namespaces(): IterableIterator<Namespace> {
    return this.spaces.values();
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

export class Namespace {
  readonly name: string;
  maxBytes: number;
  bytes = 0;
  objects = 0;
  private readonly storage: Storage;
  private readonly map = new Map<string, CacheObject[]>();
  /** Insertion order of a Set is the LRU order: re-adding moves an object to the young end. */
  private readonly lru = new Set<CacheObject>();
  private readonly tagIndex = new Map<string, Set<CacheObject>>();
  private readonly hitForMiss = new Map<string, number>();

  constructor(storage: Storage, name: string, maxBytes: number) {
    this.storage = storage;
    this.name = name;
    this.maxBytes = maxBytes;
  }

  /** A new quota (tenant config reload); evicts the oldest objects if it shrank. */
  resize(maxBytes: number): void {
    this.maxBytes = maxBytes;
    for (const victim of this.lru) {
      if (this.bytes <= this.maxBytes) break;
      this.remove(victim);
      this.storage.evictions++;
    }
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
    if (obj.size > this.maxBytes || obj.size > this.storage.maxBytes) return false;
    const list = this.map.get(obj.key);
    if (list !== undefined) {
      for (const old of [...list]) if (replaces(obj, old)) this.remove(old);
    }
    obj.lastUse = now;
    const fresh = this.map.get(obj.key);
    if (fresh === undefined) this.map.set(obj.key, [obj]);
    else fresh.unshift(obj);
    this.lru.add(obj);
    for (const tag of obj.tags) {
      let set = this.tagIndex.get(tag);
      if (set === undefined) { set = new Set(); this.tagIndex.set(tag, set); }
      set.add(obj);
    }
    this.bytes += obj.size;
    this.objects++;
    this.storage.bytes += obj.size;
    this.storage.objects++;
    this.hitForMiss.delete(obj.key);
    while (this.bytes > this.maxBytes) {
      const victim = this.oldest();
      if (victim === undefined) break;
      this.remove(victim);
      this.storage.evictions++;
    }
    this.storage.reclaim();
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
    for (const tag of obj.tags) {
      const set = this.tagIndex.get(tag);
      if (set !== undefined) { set.delete(obj); if (set.size === 0) this.tagIndex.delete(tag); }
    }
    this.bytes -= obj.size;
    this.objects--;
    this.storage.bytes -= obj.size;
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
    const set = this.tagIndex.get(tag);
    if (set === undefined) return 0;
    const victims = [...set];
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

  /** Remembers for `untilMs` that `key` gave an uncacheable answer (Varnish hit-for-miss). */
  markHitForMiss(key: string, untilMs: number): void {
    this.hitForMiss.set(key, untilMs);
  }

  isHitForMiss(key: string, now: number): boolean {
    const until = this.hitForMiss.get(key);
    if (until === undefined) return false;
    if (now < until) return true;
    this.hitForMiss.delete(key);
    return false;
  }

  clearHitForMiss(key: string): void {
    this.hitForMiss.delete(key);
  }

  /** Forgets expired hit-for-miss markers (called by the periodic sweep). */
  sweepHitForMiss(now: number): void {
    for (const [k, until] of this.hitForMiss) if (now >= until) this.hitForMiss.delete(k);
  }

  /** Drops everything in this namespace. */
  clear(): void {
    for (const o of this.all()) this.remove(o);
    this.hitForMiss.clear();
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
