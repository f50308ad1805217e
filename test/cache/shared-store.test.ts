// The shared store (src/cache/shared/) on its own: round trips, views into shared memory, LRU
// eviction under a quota and under the budget, quotas and claims across real worker threads, and
// a stress run of writers in workers against readers in this thread checking every byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { RECORD_OVERHEAD, SharedStore, TAG_NODE_BYTES, type RecordInit } from '../../src/cache/shared/store.ts';
import { hashKey, type Key } from '../../src/cache/shared/layout.ts';
import { checkRecord, makeRecord } from '../helpers/shared-store-records.ts';
import type { WorkerTask } from '../helpers/shared-store-worker.ts';

const WORKER = new URL('../helpers/shared-store-worker.mjs', import.meta.url);
const enc = new TextEncoder();

/** A key as the store's hash reads it. */
function keyOf(s: string): Key {
  const bytes = enc.encode(s);
  return { bytes, words: new Int32Array(0), length: bytes.length };
}

function startWorker(store: SharedStore, job: WorkerTask): Worker {
  return new Worker(WORKER, { workerData: { handle: store.handle(), job } });
}

/** The next message of a worker, failing on its error. */
async function message<T>(worker: Worker): Promise<T> {
  const [m] = await once(worker, 'message') as [T];
  return m;
}

/** Charged size of a record, as documented. */
function charged(key: string, rec: RecordInit): number {
  return rec.tags.length * TAG_NODE_BYTES + rec.meta.length + rec.body.length + enc.encode(key).length + enc.encode(rec.secondary).length + enc.encode(rec.tags.join('\n')).length + RECORD_OVERHEAD;
}

function simple(body: string, tags: readonly string[] = [], secondary = ''): RecordInit {
  return { meta: enc.encode(`m:${body}`), body: enc.encode(body), tags, secondary };
}

function bodies(store: SharedStore, ns: number, key: string): string[] {
  const found = store.lookup(ns, key);
  const out = found.map((r) => new TextDecoder().decode(r.body));
  for (const r of found) r.unpin();
  return out;
}

test('insert, lookup, replace by secondary key, remove, removeKey and removeTag', () => {
  const store = SharedStore.create({ maxBytes: 1 << 20 });
  const ns = store.namespace('tenant-a', 1 << 20);
  const other = store.namespace('tenant-b', 1 << 20);
  assert.equal(store.namespace('tenant-a', 1 << 20), ns);
  const first = store.insert(ns, 'http://h/x', simple('one', ['red', 'blue'], 'gzip'));
  assert.ok(first);
  store.insert(ns, 'http://h/x', simple('two', ['blue'], 'br'));
  store.insert(other, 'http://h/x', simple('elsewhere', ['red']));
  assert.deepEqual(bodies(store, ns, 'http://h/x'), ['two', 'one'], 'most recent first, per namespace');
  const [rec] = store.lookup(ns, 'http://h/x');
  assert.ok(rec);
  assert.equal(rec.secondary, 'br');
  assert.deepEqual(rec.tags, ['blue']);
  assert.equal(new TextDecoder().decode(rec.meta), 'm:two');
  rec.unpin();
  // Same secondary key: replaces.
  const replaced = store.insert(ns, 'http://h/x', simple('three', ['red'], 'gzip'));
  assert.ok(replaced);
  assert.equal(store.isLive(first.id, first.gen), false);
  assert.equal(store.isLive(replaced.id, replaced.gen), true);
  assert.deepEqual(bodies(store, ns, 'http://h/x'), ['three', 'two']);
  assert.equal(store.remove(replaced.id, replaced.gen), true);
  assert.equal(store.remove(replaced.id, replaced.gen), false, 'a record is removed once');
  assert.equal(store.remove(1 << 30, 0), false);
  assert.equal(store.isLive(-1, 0), false);
  assert.equal(store.touch(replaced.id, replaced.gen), false);
  assert.deepEqual(bodies(store, ns, 'http://h/x'), ['two']);
  store.insert(ns, 'http://h/y', simple('y', ['blue', 'green']));
  store.insert(ns, 'http://h/z', simple('z', ['bluegreen']));
  assert.equal(store.removeTag(ns, 'blue'), 2, 'whole tags only');
  assert.deepEqual(bodies(store, ns, 'http://h/z'), ['z']);
  assert.equal(store.removeTag(ns, 'blue'), 0);
  assert.deepEqual(bodies(store, other, 'http://h/x'), ['elsewhere'], 'other namespaces untouched');
  store.insert(ns, 'http://h/w', simple('w1', [], 'a'));
  store.insert(ns, 'http://h/w', simple('w2', [], 'b'));
  assert.equal(store.removeKey(ns, 'http://h/w'), 2);
  assert.deepEqual(bodies(store, ns, 'http://h/w'), []);
  assert.equal(store.clear(ns), 1);
  assert.equal(store.stats(ns).objects, 0);
  assert.equal(store.stats(ns).bytes, 0);
  assert.equal(store.globalStats().objects, 1);
});

test('views are views into the shared arena, and a pinned view outlives its record unchanged', () => {
  const store = SharedStore.create({ maxBytes: 1 << 20, touchIntervalMs: 0 });
  const ns = store.namespace('t', 1 << 20);
  store.insert(ns, 'k', simple('hello'));
  const [rec] = store.lookup(ns, 'k');
  assert.ok(rec);
  assert.equal(rec.body.buffer, store.handle().arena[0]);
  new Uint8Array(store.handle().arena[0]!)[rec.body.byteOffset] = 'j'.charCodeAt(0);
  assert.deepEqual(bodies(store, ns, 'k'), ['jello'], 'a write through the buffer is what readers see');
  // Removed and its memory wanted by others: the pinned view keeps its bytes.
  store.removeKey(ns, 'k');
  const used = store.globalStats().arenaUsedBytes;
  for (let i = 0; i < 50; i++) store.insert(ns, `o${i}`, simple('x'.repeat(5)));
  assert.equal(new TextDecoder().decode(rec.body), 'jello');
  rec.unpin();
  rec.unpin();
  store.clear(ns);
  assert.ok(store.globalStats().arenaUsedBytes < used, 'the unpinned block is freed by the next write');
  assert.equal(store.globalStats().arenaUsedBytes, 0);
});

test('a record purged while filling leaves every lookup at once, stays whole for the reader following it, and goes when it is complete', () => {
  const store = SharedStore.create({ maxBytes: 1 << 20, touchIntervalMs: 0 });
  const ns = store.namespace('t', 1 << 20);
  const purges: Array<[string, (key: string) => void]> = [
    ['removeKey', (key) => { assert.equal(store.removeKey(ns, key), 1); }],
    ['removeTag', () => { assert.equal(store.removeTag(ns, 'tagged'), 1); }],
    ['remove', (key) => { const [r] = store.lookup(ns, key); assert.ok(r && store.remove(r.id, r.gen)); r.unpin(); }],
    ['clear', () => { assert.equal(store.clear(ns), 1); }],
    ['removeExpired', () => { assert.equal(store.removeExpired(ns, Date.now() + 10_000), 1); }],
  ];
  for (const [how, purge] of purges) {
    const key = `k-${how}`;
    const { ref, body } = store.reserve(ns, key, { ...simple(''), tags: ['tagged'], expiresAt: Date.now() }, 10)!;
    const writer = store.pin(ref.id, ref.gen)!;
    const [reader] = store.lookup(ns, key);
    assert.ok(reader?.filling, how);
    body.set(enc.encode('hello'), 0);
    store.fill(ref.id, ref.gen, 5);
    purge(key);
    assert.deepEqual(bodies(store, ns, key), [], `${how}: no lookup finds it`);
    assert.equal(store.stats(ns).objects, 0, how);
    assert.equal(store.removeKey(ns, key), 0, `${how}: a second purge finds nothing`);
    assert.equal(store.touch(ref.id, ref.gen), false, `${how}: a hit cannot bring it back`);
    assert.deepEqual(store.progress(reader.id, reader.gen).state, 'filling', how);
    body.set(enc.encode('world'), 5);
    assert.equal(store.fill(ref.id, ref.gen, 10), true, `${how}: the writer goes on`);
    assert.equal(store.complete(ref.id, ref.gen), false, `${how}: complete says it is not kept`);
    assert.deepEqual(store.progress(reader.id, reader.gen), { state: 'whole', filled: 10, seq: store.progress(reader.id, reader.gen).seq }, how);
    assert.equal(new TextDecoder().decode(reader.body), 'helloworld', how);
    writer.unpin();
    reader.unpin();
    store.insert(ns, 'other', simple('x'));
    store.clear(ns);
    assert.equal(store.globalStats().arenaUsedBytes, 0, `${how}: its block is freed once unpinned`);
    assert.equal(store.stats(ns).bytes, 0, `${how}: and uncharged`);
  }
});

test('a filling record its writer abandons, or that is evicted, is gone for its reader', () => {
  const store = SharedStore.create({ maxBytes: 1 << 20, touchIntervalMs: 0 });
  const ns = store.namespace('t', 8192);
  for (const how of ['abandon', 'evict'] as const) {
    const { ref } = store.reserve(ns, how, simple(''), 1000)!;
    const [reader] = store.lookup(ns, how);
    store.fill(ref.id, ref.gen, 100);
    if (how === 'abandon') store.abandon(ref.id, ref.gen);
    else assert.ok(store.insert(ns, 'big', simple('x'.repeat(3500))), 'fits only without the filling record');
    assert.equal(store.progress(reader!.id, reader!.gen).state, 'gone', how);
    assert.equal(store.complete(ref.id, ref.gen), false, how);
    reader!.unpin();
    store.clear(ns);
  }
  assert.equal(store.globalStats().arenaUsedBytes, 0);
});

test('evicts least recently used first under a namespace quota', () => {
  const one = charged('a', simple('x'.repeat(100)));
  const store = SharedStore.create({ maxBytes: 1 << 20, touchIntervalMs: 0 });
  const ns = store.namespace('t', Math.floor(3.5 * one));
  const other = store.namespace('u', 1 << 20);
  store.insert(other, 'z', simple('x'.repeat(100)));
  const refs = ['a', 'b', 'c'].map((k) => store.insert(ns, k, simple('x'.repeat(100))));
  assert.equal(store.stats(ns).bytes, 3 * one);
  assert.ok(refs[0]);
  assert.equal(store.touch(refs[0].id, refs[0].gen), true);
  store.insert(ns, 'd', simple('x'.repeat(100)));
  assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => bodies(store, ns, k).length), [1, 0, 1, 1]);
  assert.deepEqual(store.stats(ns), { objects: 3, bytes: 3 * one, quotaBytes: Math.floor(3.5 * one), evictions: 1 });
  assert.equal(bodies(store, other, 'z').length, 1, 'another namespace is not evicted for a quota');
  store.resize(ns, 2 * one);
  assert.deepEqual(['a', 'c', 'd'].map((k) => bodies(store, ns, k).length), [1, 0, 1], 'shrinking evicts the oldest');
});

test('evicts least recently used first across namespaces under the global budget', () => {
  const one = charged('a', simple('x'.repeat(100)));
  const store = SharedStore.create({ maxBytes: Math.floor(3.5 * one), touchIntervalMs: 0 });
  const n1 = store.namespace('one', 1 << 20);
  const n2 = store.namespace('two', 1 << 20);
  assert.equal(store.stats(n1).quotaBytes, Math.floor(3.5 * one), 'quotas are capped at the budget');
  const a = store.insert(n1, 'a', simple('x'.repeat(100)));
  store.insert(n2, 'b', simple('x'.repeat(100)));
  store.insert(n1, 'c', simple('x'.repeat(100)));
  assert.ok(a);
  store.touch(a.id, a.gen);
  store.insert(n2, 'd', simple('x'.repeat(100)));
  assert.deepEqual([bodies(store, n1, 'a').length, bodies(store, n2, 'b').length, bodies(store, n1, 'c').length, bodies(store, n2, 'd').length], [1, 0, 1, 1]);
  assert.equal(store.globalStats().evictions, 1);
  assert.equal(store.stats(n2).evictions, 1);
});

test('a record that can never fit is refused, and an 8 MiB body fits', () => {
  const store = SharedStore.create({ maxBytes: 16 << 20 });
  const small = store.namespace('small', 1000);
  const big = store.namespace('big', 16 << 20);
  assert.equal(store.insert(small, 'k', simple('x'.repeat(1000))), null, 'over the quota');
  assert.equal(store.insert(big, 'k', { meta: new Uint8Array(0), body: new Uint8Array(17 << 20), tags: [], secondary: '' }), null, 'over the budget');
  const body = new Uint8Array(8 << 20).fill(7);
  assert.ok(store.insert(big, 'large', { meta: new Uint8Array(4), body, tags: [], secondary: '' }));
  const [rec] = store.lookup(big, 'large');
  assert.equal(rec?.body.length, 8 << 20);
  assert.equal(rec.body[(8 << 20) - 1], 7);
  rec.unpin();
  assert.throws(() => store.insert(big, 'k', simple('x', ['a\nb'])), RangeError);
});

test('the arena stays within its limit over many insert and evict cycles, and a large body still fits', () => {
  const maxBytes = 4 << 20;
  const store = SharedStore.create({ maxBytes });
  const ns = store.namespace('t', maxBytes);
  let x = 12345;
  for (let i = 0; i < 4000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const size = x % 7 === 0 ? 100_000 + (x % 200_000) : 50 + (x % 3000);
    assert.ok(store.insert(ns, `k${i}`, { meta: new Uint8Array(8), body: new Uint8Array(size), tags: [], secondary: '' }));
    assert.ok(store.globalStats().bytes <= maxBytes);
  }
  const stats = store.globalStats();
  assert.ok(stats.arenaBytes <= stats.arenaMaxBytes);
  assert.ok(stats.arenaMaxBytes <= 1.25 * maxBytes + (16 << 20) + 16);
  assert.ok(stats.arenaUsedBytes <= stats.bytes, `blocks in use ${stats.arenaUsedBytes} within the charged ${stats.bytes}`);
  assert.ok(store.insert(ns, 'large', { meta: new Uint8Array(8), body: new Uint8Array(3 << 20), tags: [], secondary: '' }));
  const objects = store.globalStats().objects;
  assert.equal(store.clear(ns), objects);
  assert.equal(store.globalStats().arenaUsedBytes, 0, 'everything merges back');
});

test('a namespace quota is global: two workers filling it together never exceed it', async () => {
  const store = SharedStore.create({ maxBytes: 1 << 20 });
  const quota = 200_000;
  const ns = store.namespace('shared', quota);
  const workers = [0, 1].map((i) => startWorker(store, { task: 'fill', ns, prefix: `w${i}-`, count: 400, bodyBytes: 1000 }));
  const results = await Promise.all(workers.map((w) => message<{ over: number; stored: number }>(w)));
  await Promise.all(workers.map((w) => w.terminate()));
  assert.deepEqual(results.map((r) => r.over), [0, 0]);
  assert.deepEqual(results.map((r) => r.stored), [400, 400]);
  const s = store.stats(ns);
  assert.ok(s.bytes <= quota);
  assert.equal(s.evictions, 800 - s.objects);
  assert.equal(store.namespace('shared', quota), ns, 'the same id from every thread');
});

test('stress: writers in three workers, readers here, every record read back whole, none missed', async () => {
  // 256 buckets, and every churned key in the chain of one steady record: each relink by a writer
  // happens in the chain the readers here walk, and the steady record must be found every time.
  const store = SharedStore.create({ maxBytes: 256 * 1024, maxRecords: 256, touchIntervalMs: 0 });
  const ns = store.namespace('stress', 200 * 1024);
  const quiet = store.namespace('quiet', 1024);
  const steadyChain = hashKey(quiet, keyOf('steady')) & 255;
  const keys: string[] = [];
  for (let i = 0; keys.length < 40; i++) if ((hashKey(ns, keyOf(`k${i}`)) & 255) === steadyChain) keys.push(`k${i}`);
  assert.ok(store.insert(quiet, 'steady', makeRecord('steady', 0, 100)));
  const workers = [1, 2, 3].map((seed) => startWorker(store, { task: 'churn', ns, seed, keys, iterations: 20_000 }));
  const results = Promise.all(workers.map((w) => message<{ bad: number; reads: number }>(w)));
  let done = false;
  void results.then(() => { done = true; });
  let reads = 0;
  let bad = 0;
  let missed = 0;
  while (!done) {
    for (let i = 0; i < 200; i++) {
      const key = keys[i % keys.length]!;
      for (const rec of store.lookup(ns, key)) {
        reads++;
        if (!checkRecord(key, rec)) bad++;
        if (i % 2 === 0) store.touch(rec.id, rec.gen);
        rec.unpin();
      }
      const steady = store.lookup(quiet, 'steady');
      if (steady.length !== 1 || !checkRecord('steady', steady[0]!)) missed++;
      for (const rec of steady) rec.unpin();
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  const worker = await results;
  await Promise.all(workers.map((w) => w.terminate()));
  assert.equal(bad, 0);
  assert.equal(missed, 0);
  assert.deepEqual(worker.map((r) => r.bad), [0, 0, 0]);
  assert.ok(reads > 0 && worker.every((r) => r.reads > 0), `reads here ${reads}, in workers ${worker.map((r) => r.reads).join(' ')}`);
  // Stats add up: namespace and global agree with what a lookup of every key finds.
  let found = 0;
  for (const key of keys) found += bodies(store, ns, key).length;
  const s = store.stats(ns);
  const g = store.globalStats();
  assert.equal(s.objects, found);
  assert.equal(g.objects, found + 1);
  assert.equal(g.bytes, s.bytes + store.stats(quiet).bytes);
  assert.ok(s.bytes <= 200 * 1024);
  store.clear(ns);
  store.clear(quiet);
  assert.equal(store.globalStats().arenaUsedBytes, 0, 'no pin was leaked');
});

test('claims coalesce across threads: one fetcher, the others wait and then find the record', async () => {
  const store = SharedStore.create({ maxBytes: 1 << 20 });
  const ns = store.namespace('t', 1 << 20);
  const workers = [0, 1, 2].map(() => startWorker(store, { task: 'claim', ns, key: 'http://h/obj' }));
  const roles = await Promise.all(workers.map((w) => message<{ role: string }>(w)));
  assert.deepEqual(roles.map((r) => r.role).sort(), ['fetcher', 'waiter', 'waiter']);
  const fetcher = workers[roles.findIndex((r) => r.role === 'fetcher')]!;
  const ended = workers.map((w) => message<{ done: boolean; found?: number; ok?: boolean }>(w));
  fetcher.postMessage('go');
  const results = await Promise.all(ended);
  await Promise.all(workers.map((w) => w.terminate()));
  for (const r of results.filter((r) => r.found !== undefined)) assert.deepEqual(r, { done: true, found: 1, ok: true });
  assert.equal(store.claim(ns, 'http://h/obj'), true, 'released: the next claim fetches');
  store.release(ns, 'http://h/obj');
});

test('a claim whose holder never releases expires at its deadline', async () => {
  const store = SharedStore.create({ maxBytes: 1 << 20 });
  const ns = store.namespace('t', 1 << 20);
  const holder = startWorker(store, { task: 'hold', ns, key: 'k', ttlMs: 300 });
  assert.deepEqual(await message(holder), { claimed: true });
  await holder.terminate();
  const waiting = store.claim(ns, 'k');
  assert.ok(waiting instanceof Promise, 'held by the dead thread');
  await waiting;
  assert.equal(store.claim(ns, 'k', { ttlMs: 1000 }), true, 'expired: taken over');
  const timed = store.claim(ns, 'k', { timeoutMs: 10 });
  assert.ok(timed instanceof Promise);
  await timed;
  store.release(ns, 'k');
  assert.equal(store.claim(ns, 'k'), true);
  store.release(ns, 'k');
});

test('a store attached in another thread is the same store', async () => {
  const store = SharedStore.create({ maxBytes: 1 << 20 });
  const ns = store.namespace('t', 1 << 20);
  const w = startWorker(store, { task: 'fill', ns, prefix: 'p', count: 3, bodyBytes: 10 });
  assert.deepEqual(await message(w), { over: 0, stored: 3, most: store.stats(ns).bytes });
  await w.terminate();
  const [rec] = store.lookup(ns, 'p2');
  assert.ok(rec && checkRecord('p2', rec));
  rec.unpin();
  assert.equal(store.globalStats().objects, 3);
});
