// The shared store's arena in segments (src/cache/shared/arena.ts): a cache larger than one
// growable SharedArrayBuffer may be on Node 20 (4 GiB), filled past 4 GiB and read back from
// another thread; and, with small segments, records, tags and streams at segments' edges, blocks
// that never cross one, and what cannot fit in a segment refused without evicting anything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { SharedStore, type RecordInit } from '../../src/cache/shared/store.ts';
import { checkRecord, makeRecord } from '../helpers/shared-store-records.ts';
import { isStreamAt, streamBytes } from '../helpers/stream-bytes.ts';
import type { WorkerTask } from '../helpers/shared-store-worker.ts';

const WORKER = new URL('../helpers/shared-store-worker.mjs', import.meta.url);
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

async function run<T>(store: SharedStore, job: WorkerTask): Promise<T> {
  const worker = new Worker(WORKER, { workerData: { handle: store.handle(), job } });
  const [m] = await once(worker, 'message') as [T];
  await once(worker, 'exit');
  return m;
}

/** The arena segment a record's body is in. */
function segmentOf(store: SharedStore, body: Uint8Array): number {
  return store.handle().arena.indexOf(body.buffer as SharedArrayBuffer);
}

/** A record whose body is the 32-bit word `i` repeated, `bytes` long (a multiple of 4). */
function wordRecord(i: number, bytes: number): RecordInit {
  return { meta: new Uint8Array(8), body: new Uint8Array(new Uint32Array(bytes / 4).fill(i).buffer), tags: [`w${i % 7}`], secondary: '' };
}

test('a cache of 6 GiB is reserved whatever the Node.js: its arena is four growable segments of at most 2 GiB', () => {
  const store = SharedStore.create({ maxBytes: MiB, reserveBytes: 6 * GiB });
  const segments = store.handle().arena;
  assert.equal(segments.length, 4);
  assert.ok(segments.every((sab) => sab.growable && sab.maxByteLength <= 2 * GiB));
  const stats = store.globalStats();
  assert.equal(stats.arenaMaxBytes, segments.reduce((n, sab) => n + sab.maxByteLength, 0));
  assert.ok(stats.arenaMaxBytes >= 1.25 * 6 * GiB, 'room for the reserve and its fragments');
  assert.ok(stats.arenaBytes <= MiB, 'nothing grown but the first segment\'s first MiB');
});

test('records fill the arena past 4 GiB, each in one segment, and another thread reads each where it was written', async () => {
  // 4.5 GiB of bodies of 8 MiB and a little: past the most one growable buffer holds on Node 20.
  // Each is reserved and written where the reader checks it (its first, middle and last word), so
  // the test touches a few pages of each body rather than 4.5 GiB.
  const store = SharedStore.create({ maxBytes: 5 * GiB });
  const ns = store.namespace('big', 5 * GiB);
  const count = 560;
  for (let i = 0; i < count; i++) {
    const placed = store.reserve(ns, `r${i}`, wordRecord(i, 0), 8 * MiB + 64 * (i % 13));
    assert.ok(placed, `record ${i} stored`);
    const body = new DataView(placed.body.buffer, placed.body.byteOffset, placed.body.byteLength);
    const last = body.byteLength - 4;
    for (const at of [0, (last >>> 3) << 2, last]) body.setUint32(at, i, true);
    assert.ok(store.complete(placed.ref.id, placed.ref.gen));
  }
  const stats = store.globalStats();
  assert.equal(stats.objects, count);
  assert.equal(stats.evictions, 0);
  assert.ok(stats.arenaBytes > 4 * GiB, `the arena grew past 4 GiB (${stats.arenaBytes})`);
  const read = await run<{ found: number; right: number; segments: number[] }>(store, { task: 'words', ns, prefix: 'r', count });
  assert.deepEqual(read, { found: count, right: count, segments: [0, 1, 2] });
  // Freed, every segment gives its blocks back.
  store.clear(ns);
  assert.equal(store.globalStats().arenaUsedBytes, 0);
  for (let i = 0; i < 4; i++) assert.ok(store.insert(ns, `again${i}`, wordRecord(i, 8 * MiB)));
  assert.deepEqual(store.lookup(ns, 'again3').map((rec) => { const s = segmentOf(store, rec.body); rec.unpin(); return s; }), [0], 'the first segment is used first again');
});

test('with 128 KiB segments, three threads inserting, replacing, purging and reading records see only whole records', async () => {
  const store = SharedStore.create({ maxBytes: 2 * MiB, segmentBytes: 128 * KiB, touchIntervalMs: 0 });
  const ns = store.namespace('churn', 2 * MiB);
  const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
  const tags = keys.slice(0, 20).map((k) => `t-${k}`);
  const results = await Promise.all([
    run<{ bad: number; reads: number }>(store, { task: 'churn', ns, seed: 11, keys, iterations: 20_000, purgeTags: tags }),
    run<{ bad: number; reads: number }>(store, { task: 'churn', ns, seed: 23, keys, iterations: 20_000 }),
    run<{ bad: number; reads: number }>(store, { task: 'churn', ns, seed: 37, keys, iterations: 20_000, purgeTags: tags }),
  ]);
  for (const r of results) {
    assert.equal(r.bad, 0);
    assert.ok(r.reads > 1000, `each thread read records (${r.reads})`);
  }
  const segments = new Set<number>();
  for (const key of keys) {
    for (const rec of store.lookup(ns, key)) {
      assert.ok(checkRecord(key, rec));
      segments.add(segmentOf(store, rec.body));
      rec.unpin();
    }
  }
  assert.ok(segments.size >= 8, `records in many segments (${[...segments].join(', ')})`);
  assert.ok(store.stats(ns).bytes <= 2 * MiB);
  store.clear(ns);
  assert.equal(store.globalStats().arenaUsedBytes, 0, 'every block given back, in every segment');
});

test('a record larger than a segment is refused without evicting anything; one that fits goes in', () => {
  const store = SharedStore.create({ maxBytes: MiB, segmentBytes: 64 * KiB });
  const ns = store.namespace('edge', MiB);
  for (let i = 0; i < 10; i++) assert.ok(store.insert(ns, `small${i}`, makeRecord(`small${i}`, i, 1000)));
  assert.equal(store.insert(ns, 'huge', makeRecord('huge', 1, 64 * KiB)), null);
  assert.equal(store.globalStats().objects, 10);
  assert.equal(store.globalStats().evictions, 0);
  assert.equal(store.reserve(ns, 'huge', makeRecord('huge', 1, 0), 64 * KiB), null);
  assert.equal(store.globalStats().evictions, 0);
  assert.ok(store.insert(ns, 'fits', makeRecord('fits', 1, 60 * KiB)));
  const [rec] = store.lookup(ns, 'fits');
  assert.ok(rec && checkRecord('fits', rec));
  rec.unpin();
});

test('with 64 KiB segments, a stream\'s extents are in many segments: a follower reads every byte, and a body that fits one segment is kept', () => {
  const store = SharedStore.create({ maxBytes: 4 * MiB, segmentBytes: 64 * KiB });
  const ns = store.namespace('streams', 4 * MiB);
  const init: RecordInit = { meta: new Uint8Array(4), body: new Uint8Array(0), tags: ['s'], secondary: '' };
  for (const [key, seed, total] of [['long', 5, 300 * KiB], ['short', 6, 40 * KiB]] as const) {
    const ref = store.reserveStream(ns, key, init, 2 * MiB);
    assert.ok(ref);
    const [rec] = store.lookup(ns, key);
    assert.ok(rec?.stream);
    let written = 0;
    let read = 0;
    while (written < total) {
      const n = Math.min(3000, total - written);
      assert.equal(store.append(ref.id, ref.gen, streamBytes(seed, written, n)), true);
      written += n;
      const r = store.readStream(rec.id, rec.gen, read);
      assert.equal(r.state, 'filling');
      assert.ok(r.chunk !== null && isStreamAt(seed, read, r.chunk), `the follower's bytes at ${read}`);
      read += r.chunk.length;
    }
    assert.equal(read, total);
    const kept = store.completeStream(ref.id, ref.gen, key, init);
    rec.unpin();
    // 300 KiB is larger than a segment: it streamed, but no block can keep it.
    assert.equal(kept, key === 'short');
  }
  assert.deepEqual(store.lookup(ns, 'long'), []);
  const [short] = store.lookup(ns, 'short');
  assert.ok(short && short.body.length === 40 * KiB && isStreamAt(6, 0, short.body));
  short.unpin();
  store.clear(ns);
  assert.equal(store.globalStats().arenaUsedBytes, 0);
  assert.equal(store.stats(ns).bytes, 0);
});
