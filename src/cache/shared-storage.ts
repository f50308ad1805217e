// Cache storage in shared memory (issue 12): one store (shared/store.ts) for every shard thread,
// so an object fetched by one shard is a hit on all of them, a tenant's quota is global, and a
// purge by any shard is seen by all. Each thread turns the records it serves into CacheObjects
// once (their bodies stay views of shared memory: no copy) and keeps them while the record lives;
// every lookup asks the store, so a record another thread removed is never served.
import type { BodyLease, ObjectInit } from './object.ts';
import { buildHead, CacheObject } from './object.ts';
import type { FillWriter, NamespaceOptions, ObjectStorage, ObjectStore, RemoteFill } from './object-store.ts';
import type { Lifetime } from './policy.ts';
import { MAX_VARIANTS } from './storage.ts';
import { MAX_STORED_BODY_BYTES, ReserveError, SharedStore, type RecordInit, type RecordRef, type SharedRecord, type SharedStoreHandle, type StoreStats } from './shared/store.ts';

export { MAX_STORED_BODY_BYTES, ReserveError, type SharedStoreHandle, type StoreStats };

/** How long another thread's fetch of a key may keep this thread's requests for it waiting. */
const CLAIM_WAIT_MS = 10_000;

/** What a record's meta holds: the object's fields but its key, body and ban position. */
type ObjectMeta = Omit<ObjectInit, 'key' | 'body' | 'banSeq' | 'bodyIsView'>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);

function encodeMeta(obj: CacheObject): Uint8Array {
  const meta: ObjectMeta = {
    host: obj.host, url: obj.url, status: obj.status, headers: obj.headers, life: obj.life, noCacheFields: obj.noCacheFields,
    varyNames: obj.varyNames, varyValues: obj.varyValues, authOk: obj.authOk, via: obj.via,
  };
  return encoder.encode(JSON.stringify(meta));
}

/** The secondary key a variant is stored under: '' for an object that does not vary. */
function secondaryOf(obj: CacheObject): string {
  return obj.varyNames === null ? '' : JSON.stringify([obj.varyNames, obj.varyValues]);
}

/** When an object's record may go: the end of its keep (policy.ts `expired`). */
function expiryOf(life: Lifetime): number {
  return life.t0 + life.ttl + Math.max(life.grace, life.errorWindow) + life.keep;
}

/** The object a pinned record holds; its body is a view valid while the record is pinned. */
function decode(r: SharedRecord, key: string): CacheObject {
  const meta = JSON.parse(decoder.decode(r.meta)) as ObjectMeta;
  return new CacheObject({
    key, host: meta.host, url: meta.url, status: meta.status, headers: meta.headers, life: meta.life, noCacheFields: meta.noCacheFields,
    varyNames: meta.varyNames, varyValues: meta.varyValues, authOk: meta.authOk, via: meta.via, banSeq: r.banSeq,
    body: Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength), bodyIsView: true,
  });
}

/**
 * The writer of a reserved record: it pins the record while it writes, so that a purge meanwhile
 * cannot let its memory be reused under it. `write` and `complete` run while it is open.
 */
function pinnedWriter(store: SharedStore, ref: RecordRef, write: (chunk: Uint8Array) => boolean, complete: () => boolean): FillWriter | null {
  const pin = store.pin(ref.id, ref.gen);
  if (pin === null) return null;
  let open = true;
  const end = (): void => {
    if (open) { open = false; pin.unpin(); }
  };
  return {
    write: (chunk) => open && write(chunk),
    complete: () => {
      const done = open && complete();
      end();
      return done;
    },
    abort: () => {
      if (open) store.abandon(ref.id, ref.gen);
      end();
    },
    followed: () => open && store.followed(ref.id, ref.gen),
  };
}

/** The budget every shard's caches share, in shared memory; made on the main thread, attached by the others. */
export class SharedStorage implements ObjectStorage {
  readonly store: SharedStore;
  private readonly spaces = new Map<string, SharedNamespace>();

  private constructor(store: SharedStore) {
    this.store = store;
  }

  /** `reserveBytes`: the most a later `setBudget` may raise the budget to (default `maxBytes`). */
  static create(maxBytes: number, reserveBytes?: number): SharedStorage {
    return new SharedStorage(SharedStore.create({ maxBytes, reserveBytes }));
  }

  /** The storage another thread created, through its `handle()`. */
  static attach(handle: SharedStoreHandle): SharedStorage {
    return new SharedStorage(SharedStore.attach(handle));
  }

  handle(): SharedStoreHandle {
    return this.store.handle();
  }

  get maxBytes(): number {
    return this.store.globalStats().maxBytes;
  }

  /** The whole store's figures: every tenant's objects together, the budget, the arena's memory. */
  stats(): StoreStats {
    return this.store.globalStats();
  }

  get evictions(): number {
    return this.store.globalStats().evictions;
  }

  /** The most the budget may be raised to: what was reserved at creation. */
  get reservedBytes(): number {
    return this.store.globalStats().reservedBytes;
  }

  /** Capped at `reservedBytes` (the store's memory is reserved at creation). */
  setBudget(maxBytes: number): void {
    this.store.setBudget(maxBytes);
  }

  namespace(name: string, options: NamespaceOptions = {}): SharedNamespace {
    let ns = this.spaces.get(name);
    if (ns === undefined) {
      ns = new SharedNamespace(this.store, name, this.store.namespace(name, options.maxBytes ?? Infinity));
      this.spaces.set(name, ns);
    } else if (options.maxBytes !== undefined) {
      ns.resize(options.maxBytes);
    }
    return ns;
  }
}

/**
 * A record as this thread serves it: the object, and the record's pin, held while the record is
 * stored and, after, until the last response writing its body is over.
 */
class Materialised implements BodyLease {
  readonly obj: CacheObject;
  readonly record: SharedRecord;
  /** The `variants` call that made it: entries made by the current call are never let go for room. */
  readonly madeIn: number;
  private uses = 0;
  private dropped = false;

  constructor(record: SharedRecord, obj: CacheObject, madeIn: number) {
    this.record = record;
    this.obj = obj;
    this.madeIn = madeIn;
    obj.lease = this;
  }

  hold(): void {
    this.uses++;
  }

  release(): void {
    this.uses--;
    if (this.dropped && this.uses === 0) this.record.unpin();
  }

  /** The record is gone (or this thread lets it go): unpin once no response writes the body. */
  drop(): void {
    if (this.dropped) return;
    this.dropped = true;
    this.obj.removed = true;
    if (this.uses === 0) this.record.unpin();
  }
}

/** One tenant's cache in the shared store, as this thread sees it. */
export class SharedNamespace implements ObjectStore {
  readonly name: string;
  private readonly store: SharedStore;
  private readonly id: number;
  /**
   * Record id → the object this thread made of it. Their heap (headers, tags: what an object's
   * `size` counts beyond its body, which stays in shared memory) is held to the namespace's quota
   * on each thread, oldest made first out: a tenant cannot grow a shard's heap past what its
   * quota allowed when every shard had a cache of its own.
   */
  private readonly local = new Map<number, Materialised>();
  private localBytes = 0;
  private quota: number;
  /** Counts `variants` and `sweep` calls (Materialised.madeIn). */
  private calls = 0;

  constructor(store: SharedStore, name: string, id: number) {
    this.store = store;
    this.name = name;
    this.id = id;
    this.quota = store.stats(id).quotaBytes;
  }

  get maxBytes(): number {
    return this.store.stats(this.id).quotaBytes;
  }

  get objects(): number {
    return this.store.stats(this.id).objects - this.hitForMissMarkers;
  }

  get bytes(): number {
    return this.store.stats(this.id).bytes;
  }

  get tags(): number {
    return this.store.tagCount(this.id);
  }

  get hitForMissMarkers(): number {
    return this.store.markerCount(this.id);
  }

  account(delta: number): void {
    if (delta !== 0) this.store.charge(this.id, delta);
  }

  variants(key: string): readonly CacheObject[] | undefined {
    const records = this.store.lookup(this.id, key);
    if (records.length === 0) return undefined;
    this.calls++;
    let out: CacheObject[] | undefined;
    for (const r of records) {
      // Markers are no objects; a body still being written is followed (`filling`), not served whole.
      if (r.marker || r.filling) { r.unpin(); continue; }
      (out ??= []).push(this.materialise(r, key));
    }
    return out;
  }

  touch(obj: CacheObject): void {
    // A record gone meanwhile is let go by the sweep, not here: the caller is about to write it.
    const m = obj.lease;
    if (m instanceof Materialised) this.store.touch(m.record.id, m.record.gen);
  }

  insert(obj: CacheObject): boolean {
    if (obj.tagError !== null) return false;
    const secondary = secondaryOf(obj);
    this.makeRoomFor(obj.key, secondary);
    const ref = this.store.insert(this.id, obj.key, {
      meta: encodeMeta(obj), body: obj.body, tags: obj.tags, secondary, expiresAt: expiryOf(obj.life), banSeq: obj.banSeq,
    });
    return ref !== null;
  }

  reserve(obj: CacheObject, bodyLength: number | null, maxBodyBytes: number): FillWriter | null {
    if (obj.tagError !== null) return null;
    const secondary = secondaryOf(obj);
    this.makeRoomFor(obj.key, secondary);
    const init: RecordInit = { meta: encodeMeta(obj), body: EMPTY, tags: obj.tags, secondary, expiresAt: expiryOf(obj.life), banSeq: obj.banSeq };
    const store = this.store;
    if (bodyLength === null) {
      // Of unknown length: a stream record, appended chunk by chunk, copied into an object at its end.
      const ref = store.reserveStream(this.id, obj.key, init, maxBodyBytes);
      return ref === null ? null : pinnedWriter(store, ref, (chunk) => store.append(ref.id, ref.gen, chunk), () => store.completeStream(ref.id, ref.gen, obj.key, init));
    }
    const r = store.reserve(this.id, obj.key, init, bodyLength);
    if (r === null) return null;
    const { id, gen } = r.ref;
    let at = 0;
    return pinnedWriter(store, r.ref, (chunk) => {
      if (at + chunk.length > bodyLength) return false;
      r.body.set(chunk, at);
      at += chunk.length;
      return store.fill(id, gen, at);
    }, () => at === bodyLength && store.complete(id, gen));
  }

  filling(key: string): RemoteFill | null {
    let found: SharedRecord | null = null;
    for (const r of this.store.lookup(this.id, key)) {
      if (found === null && r.filling && !r.marker) found = r;
      else r.unpin();
    }
    if (found === null) return null;
    const record = found;
    const store = this.store;
    const obj = decode(record, key);
    return {
      obj,
      // A stream's length is not known: its head has none, as the fetching shard's has not.
      head: record.stream ? buildHead(obj.headers, obj.status, null, obj.via) : obj.head,
      read(from: number) {
        if (record.stream) return store.readStream(record.id, record.gen, from);
        const p = store.progress(record.id, record.gen);
        const to = p.state === 'whole' ? record.body.length : p.filled;
        return { state: p.state, seq: p.seq, chunk: p.state !== 'gone' && to > from ? Buffer.from(record.body.subarray(from, to)) : null };
      },
      wait: (seq, timeoutMs) => store.waitProgress(record.id, seq, timeoutMs),
      close: () => record.unpin(),
    };
  }

  /**
   * Before storing a variant of `key` under `secondary`: an object that does not vary answers
   * every request of its key, so it replaces them all; one that varies replaces the one that does
   * not and the hit-for-miss marker, and the oldest variant past MAX_VARIANTS.
   */
  private makeRoomFor(key: string, secondary: string): void {
    if (secondary === '') {
      this.store.removeKey(this.id, key);
      return;
    }
    let variants = 0;
    for (const r of this.store.lookup(this.id, key)) {
      if (r.marker || r.secondary === '') this.store.remove(r.id, r.gen);
      else if (r.secondary !== secondary && ++variants >= MAX_VARIANTS) this.store.remove(r.id, r.gen);
      r.unpin();
    }
  }

  remove(obj: CacheObject): void {
    const m = obj.lease;
    if (!(m instanceof Materialised)) return;
    this.store.remove(m.record.id, m.record.gen);
    this.forget(m);
  }

  removeKey(key: string): number {
    const markers = this.store.lookup(this.id, key).filter((r) => { r.unpin(); return r.marker; }).length;
    return this.store.removeKey(this.id, key) - markers;
  }

  removeTag(tag: string): number {
    return this.store.removeTag(this.id, tag);
  }

  keys(): string[] {
    const keys = new Set<string>();
    for (const r of this.store.summaries(this.id)) if (!r.marker) keys.add(r.key);
    return [...keys];
  }

  sweep(now: number, banSeq: number, banned: ((obj: CacheObject) => boolean) | null): number {
    this.store.removeExpired(this.id, now);
    for (const m of [...this.local.values()]) if (!this.store.isLive(m.record.id, m.record.gen)) this.forget(m);
    let oldest = banSeq;
    // No ban pending: no record to test, and nothing to prune (the walk decodes every key).
    if (banned === null) return oldest;
    for (const r of this.store.summaries(this.id)) {
      if (r.marker || r.banSeq >= banSeq) {
        if (!r.marker && r.banSeq < oldest) oldest = r.banSeq;
        continue;
      }
      const m = this.local.get(r.id);
      let obj: CacheObject;
      if (m !== undefined && m.record.gen === r.gen) obj = m.obj;
      else {
        // Tested and let go: the sweep does not fill this thread's heap with objects nobody asked for.
        const pinned = this.store.pin(r.id, r.gen);
        if (pinned === null) continue;
        obj = decode(pinned, r.key);
        pinned.unpin();
      }
      if (banned(obj)) {
        this.store.remove(r.id, r.gen);
        if (m !== undefined) this.forget(m);
        continue;
      }
      // The bans it passed hold for every thread: record the position in the store.
      if (obj.banSeq > r.banSeq) this.store.setBanSeq(r.id, r.gen, obj.banSeq);
      if (obj.banSeq < oldest) oldest = obj.banSeq;
    }
    return oldest;
  }

  markHitForMiss(key: string, untilMs: number): void {
    this.store.insert(this.id, key, { meta: EMPTY, body: EMPTY, tags: [], secondary: '\u0000hit-for-miss', expiresAt: untilMs, marker: true });
  }

  isHitForMiss(key: string, now: number): boolean {
    let found = false;
    for (const r of this.store.lookup(this.id, key)) {
      if (r.marker && r.expiresAt > now) found = true;
      r.unpin();
    }
    return found;
  }

  clearHitForMiss(key: string): void {
    for (const r of this.store.lookup(this.id, key)) {
      if (r.marker) this.store.remove(r.id, r.gen);
      r.unpin();
    }
  }

  resize(maxBytes: number): void {
    this.store.resize(this.id, maxBytes);
    this.quota = this.store.stats(this.id).quotaBytes;
  }

  clear(): void {
    this.store.clear(this.id);
    for (const m of [...this.local.values()]) this.forget(m);
  }

  claim(key: string): true | Promise<void> {
    return this.store.claim(this.id, key, { ttlMs: CLAIM_WAIT_MS, timeoutMs: CLAIM_WAIT_MS });
  }

  release(key: string): void {
    this.store.release(this.id, key);
  }

  /** This thread's object for a pinned record: the one made before, or a new one keeping the pin. */
  private materialise(r: SharedRecord, key: string): CacheObject {
    const known = this.local.get(r.id);
    if (known !== undefined) {
      if (known.record.gen === r.gen) { r.unpin(); return known.obj; }
      this.forget(known);
    }
    const obj = decode(r, key);
    const heap = obj.size - obj.body.length;
    for (const oldest of this.local.values()) {
      if (this.localBytes + heap <= this.quota || oldest.madeIn === this.calls) break;
      this.forget(oldest);
    }
    this.local.set(r.id, new Materialised(r, obj, this.calls));
    this.localBytes += heap;
    return obj;
  }

  private forget(m: Materialised): void {
    if (this.local.get(m.record.id) !== m) return;
    this.local.delete(m.record.id);
    this.localBytes -= m.obj.size - m.obj.body.length;
    m.drop();
  }
}
