// Streams in the shared store (src/cache/shared/streams.ts): bodies of unknown length appended in
// extents while readers follow them, completed into ordinary records; past their limit, out of
// the cache and round a ring for their readers; purged, evicted or abandoned as filling records
// are; their memory and charge given back every time. Then across threads: a reader here gets a
// stream's first bytes before another thread writes its last, and a stress run of a writer
// against two followers checking every byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { RECORD_OVERHEAD, SharedStore, TAG_NODE_BYTES, type RecordInit, type RecordRef, type SharedRecord } from '../../src/cache/shared/store.ts';
import { random } from '../helpers/random.ts';
import { isStreamAt, streamBytes } from '../helpers/stream-bytes.ts';
import type { FollowResult, StreamPlan, StreamTask } from '../helpers/shared-stream-worker.ts';

const WORKER = new URL('../helpers/shared-stream-worker.mjs', import.meta.url);
const enc = new TextEncoder();
const KiB = 1024;
const MiB = 1024 * KiB;

function init(tags: readonly string[] = []): RecordInit {
  return { meta: enc.encode('meta'), body: new Uint8Array(0), tags, secondary: '' };
}

/** Appends chunks of these sizes of stream `seed` from position `at`; answers the new position. */
function appendAll(store: SharedStore, ref: RecordRef, seed: number, at: number, sizes: readonly number[]): number {
  for (const size of sizes) {
    assert.equal(store.append(ref.id, ref.gen, streamBytes(seed, at, size)), true, `append at ${at}`);
    at += size;
  }
  return at;
}

/** A reader of one stream record: reads what is new and checks it is the stream's bytes. */
class Reader {
  at = 0;
  /** The progress sequence of the last read: what to wait on for more. */
  seq = 0;
  constructor(private readonly store: SharedStore, readonly rec: SharedRecord, private readonly seed: number) {}

  read(): 'gone' | 'filling' | 'whole' {
    const r = this.store.readStream(this.rec.id, this.rec.gen, this.at);
    this.seq = r.seq;
    if (r.chunk !== null) {
      assert.ok(isStreamAt(this.seed, this.at, r.chunk), `the bytes at ${this.at} are the stream's`);
      this.at += r.chunk.length;
    }
    return r.state;
  }
}

/** The stream record of `key`, pinned, as a follower finds it. */
function follow(store: SharedStore, ns: number, key: string, seed: number): Reader {
  const found = store.lookup(ns, key);
  assert.equal(found.length, 1);
  assert.ok(found[0]!.filling && found[0]!.stream && found[0]!.body.length === 0);
  return new Reader(store, found[0]!, seed);
}

/** Everything is let go: no record, nothing charged, no arena block in use. */
function assertEmpty(store: SharedStore, ns: number): void {
  store.clear(ns);
  assert.deepEqual({ ...store.stats(ns), evictions: 0 }, { objects: 0, bytes: 0, quotaBytes: store.stats(ns).quotaBytes, evictions: 0 });
  assert.equal(store.globalStats().arenaUsedBytes, 0, 'every block, extents included, is freed');
}

test('a stream grows in extents as it is read; completed, it is an ordinary record, and its memory and charge go back', () => {
  const store = SharedStore.create({ maxBytes: 8 * MiB, touchIntervalMs: 0 });
  const ns = store.namespace('t', 8 * MiB);
  const ref = store.reserveStream(ns, 'k', init(['tag']), MiB)!;
  const writer = store.pin(ref.id, ref.gen)!;
  const early = follow(store, ns, 'k', 1);
  const late = follow(store, ns, 'k', 1);
  let at = 0;
  for (const size of [1, 4095, 4096, 5000, 70_000, 3, 100_000, 16]) {
    at = appendAll(store, ref, 1, at, [size]);
    assert.equal(early.read(), 'filling');
    assert.equal(early.at, at, 'a reader gets every byte written so far');
    const held = store.stats(ns).bytes;
    assert.ok(held >= at && held <= 2 * at + 4 * KiB + 1024, `${held} bytes charged for ${at} written`);
  }
  assert.equal(store.stats(ns).objects, 1);
  assert.equal(store.completeStream(ref.id, ref.gen, 'k', init(['tag'])), true);
  writer.unpin();
  assert.equal(early.read(), 'whole');
  assert.equal(late.read(), 'whole', 'a reader that had read nothing gets it all at once');
  assert.equal(late.at, at);
  const [rec] = store.lookup(ns, 'k');
  assert.ok(rec && !rec.filling && !rec.stream);
  assert.ok(isStreamAt(1, 0, rec.body) && rec.body.length === at, 'the stored body is the stream');
  assert.deepEqual([new TextDecoder().decode(rec.meta), rec.tags], ['meta', ['tag']]);
  rec.unpin();
  assert.deepEqual(store.stats(ns), { objects: 1, bytes: RECORD_OVERHEAD + TAG_NODE_BYTES + 'k'.length + 'tag'.length + 'meta'.length + at, quotaBytes: 8 * MiB, evictions: 0 }, 'charged as an insert of it');
  early.rec.unpin();
  late.rec.unpin();
  assert.equal(store.removeTag(ns, 'tag'), 1, 'in the tag index');
  assertEmpty(store, ns);
});

test('past its limit a stream leaves the cache and goes round a ring for its reader; nothing is stored', () => {
  const store = SharedStore.create({ maxBytes: 8 * MiB, touchIntervalMs: 0 });
  const ns = store.namespace('t', 8 * MiB);
  const ref = store.reserveStream(ns, 'k', init(['tag']), 64 * KiB)!;
  const writer = store.pin(ref.id, ref.gen)!;
  const reader = follow(store, ns, 'k', 2);
  let at = 0;
  for (let i = 0; i < 100; i++) {
    at = appendAll(store, ref, 2, at, [10_000 + i]);
    assert.equal(reader.read(), 'filling');
    assert.equal(reader.at, at);
  }
  assert.deepEqual(store.lookup(ns, 'k'), [], 'out of the cache');
  const s = store.stats(ns);
  assert.equal(s.objects, 0);
  assert.ok(s.bytes <= 64 * KiB + 8 * KiB, `the ring is what it holds: ${s.bytes} bytes`);
  assert.equal(store.removeTag(ns, 'tag'), 0, 'out of the tag index');
  assert.equal(store.completeStream(ref.id, ref.gen, 'k', init(['tag'])), false, 'not stored');
  assert.equal(reader.read(), 'whole');
  assert.equal(reader.at, at);
  writer.unpin();
  reader.rec.unpin();
  assertEmpty(store, ns);
});

test('a reader a whole ring behind breaks off, never reading bytes overwritten; a ring nobody follows goes at once', () => {
  const store = SharedStore.create({ maxBytes: 8 * MiB, touchIntervalMs: 0 });
  const ns = store.namespace('t', 8 * MiB);
  const ref = store.reserveStream(ns, 'k', init(), 64 * KiB)!;
  const writer = store.pin(ref.id, ref.gen)!;
  const quick = follow(store, ns, 'k', 3);
  const slow = follow(store, ns, 'k', 3);
  let at = appendAll(store, ref, 3, 0, [40_000]);
  assert.equal(slow.read(), 'filling');
  assert.equal(quick.read(), 'filling');
  // Past the limit: a ring of 64 KiB, which the quick reader never falls a whole of behind.
  for (const size of [40_000, 30_000, 40_000]) {
    at = appendAll(store, ref, 3, at, [size]);
    assert.equal(quick.read(), 'filling');
    assert.equal(quick.at, at);
  }
  assert.equal(slow.read(), 'gone');
  assert.equal(slow.at, 40_000, 'nothing read past what it had');
  // A chunk larger than the ring: nobody can have all of it.
  at = appendAll(store, ref, 3, at, [100_000]);
  assert.equal(quick.read(), 'gone');
  quick.rec.unpin();
  slow.rec.unpin();
  assert.equal(store.append(ref.id, ref.gen, streamBytes(3, at, 10)), false, 'the writer alone on it: it goes');
  assert.equal(store.completeStream(ref.id, ref.gen, 'k', init()), false);
  writer.unpin();
  assertEmpty(store, ns);

  const alone = store.reserveStream(ns, 'alone', init(), 16 * KiB)!;
  const pin = store.pin(alone.id, alone.gen)!;
  appendAll(store, alone, 4, 0, [10_000]);
  assert.equal(store.append(alone.id, alone.gen, streamBytes(4, 10_000, 10_000)), false, 'past its limit with no reader: not kept, not streamed');
  assert.deepEqual(store.lookup(ns, 'alone'), []);
  pin.unpin();
  assertEmpty(store, ns);
});

test('positions past 4 GiB: a ring read across the 32-bit wrap stays exact', () => {
  const store = SharedStore.create({ maxBytes: 8 * MiB, touchIntervalMs: 0 });
  const ns = store.namespace('t', 8 * MiB);
  const ref = store.reserveStream(ns, 'k', init(), MiB)!;
  const writer = store.pin(ref.id, ref.gen)!;
  const [rec] = store.lookup(ns, 'k');
  const chunk = MiB - 4096;
  const total = 2 ** 32 + 3 * chunk;
  // The body is one chunk's bytes over and over: what is checked is where each read starts and ends.
  const bytes = streamBytes(5, 0, chunk);
  let at = 0;
  let from = 0;
  for (; at < total; at += chunk) {
    assert.ok(store.append(ref.id, ref.gen, bytes));
    const r = store.readStream(rec!.id, rec!.gen, from);
    assert.equal(r.state, 'filling');
    assert.equal(r.chunk?.length, chunk);
    if (at > 2 ** 32 - 4 * chunk) assert.deepEqual(r.chunk, Buffer.from(bytes), `at ${at}`);
    from += chunk;
  }
  assert.ok(store.completeStream(ref.id, ref.gen, 'k', init()) === false);
  assert.deepEqual(store.readStream(rec!.id, rec!.gen, from), { state: 'whole', chunk: null, seq: store.progress(rec!.id, rec!.gen).seq });
  writer.unpin();
  rec!.unpin();
  assertEmpty(store, ns);
});

test('a stream purged while it is written stays whole for its reader; evicted or abandoned, it is gone', () => {
  const store = SharedStore.create({ maxBytes: 8 * MiB, touchIntervalMs: 0 });
  const ns = store.namespace('t', 200 * KiB);
  for (const how of ['removeKey', 'removeTag', 'clear', 'removeExpired'] as const) {
    const ref = store.reserveStream(ns, how, { ...init(['tag']), expiresAt: Date.now() }, MiB)!;
    const writer = store.pin(ref.id, ref.gen)!;
    const reader = follow(store, ns, how, 6);
    let at = appendAll(store, ref, 6, 0, [5000]);
    if (how === 'removeKey') assert.equal(store.removeKey(ns, how), 1);
    else if (how === 'removeTag') assert.equal(store.removeTag(ns, 'tag'), 1);
    else if (how === 'clear') assert.equal(store.clear(ns), 1);
    else assert.equal(store.removeExpired(ns, Date.now() + 10_000), 1);
    assert.deepEqual(store.lookup(ns, how), [], how);
    at = appendAll(store, ref, 6, at, [20_000, 30_000]);
    assert.equal(store.completeStream(ref.id, ref.gen, how, init(['tag'])), false, `${how}: the purge holds`);
    assert.equal(reader.read(), 'whole', how);
    assert.equal(reader.at, at, how);
    writer.unpin();
    reader.rec.unpin();
    assertEmpty(store, ns);
  }
  for (const how of ['evict', 'abandon'] as const) {
    const ref = store.reserveStream(ns, how, init(), MiB)!;
    const writer = store.pin(ref.id, ref.gen)!;
    const reader = follow(store, ns, how, 7);
    appendAll(store, ref, 7, 0, [50_000]);
    if (how === 'evict') assert.ok(store.insert(ns, 'big', { ...init(), body: new Uint8Array(180 * KiB) }), 'fits only without the stream');
    else store.abandon(ref.id, ref.gen);
    assert.equal(reader.read(), 'gone', how);
    assert.equal(store.append(ref.id, ref.gen, new Uint8Array(10)), false, how);
    assert.equal(store.completeStream(ref.id, ref.gen, how, init()), false, how);
    writer.unpin();
    reader.rec.unpin();
    assertEmpty(store, ns);
  }
});

test('a growing stream evicts others for room under its quota, never itself; past what the quota holds it is a ring', () => {
  const store = SharedStore.create({ maxBytes: 8 * MiB, touchIntervalMs: 0 });
  const ns = store.namespace('t', 100 * KiB);
  for (let i = 0; i < 5; i++) store.insert(ns, `o${i}`, { ...init(), body: new Uint8Array(15 * KiB) });
  const ref = store.reserveStream(ns, 'k', init(), MiB)!;
  const writer = store.pin(ref.id, ref.gen)!;
  const reader = follow(store, ns, 'k', 8);
  // The others used since: the stream is the least recently used record, and growing must not evict it.
  for (const r of [0, 1, 2, 3, 4].flatMap((i) => store.lookup(ns, `o${i}`))) {
    store.touch(r.id, r.gen);
    r.unpin();
  }
  let at = 0;
  for (let i = 0; i < 12; i++) {
    at = appendAll(store, ref, 8, at, [5000]);
    assert.equal(reader.read(), 'filling');
    assert.ok(store.stats(ns).bytes <= 100 * KiB, `${store.stats(ns).bytes} bytes held under a quota of ${100 * KiB}`);
  }
  assert.equal(store.lookup(ns, 'k').map((r) => { r.unpin(); return r.stream; }).length, 1, 'still in the cache');
  assert.ok(store.stats(ns).evictions > 0, 'others went for its room');
  at = appendAll(store, ref, 8, at, [60_000]);
  assert.deepEqual(store.lookup(ns, 'k'), [], 'more than the quota holds: out of the cache');
  assert.equal(reader.read(), 'filling');
  assert.equal(reader.at, at, 'and still streamed');
  assert.ok(store.stats(ns).bytes <= 100 * KiB);
  assert.equal(store.completeStream(ref.id, ref.gen, 'k', init()), false);
  writer.unpin();
  reader.rec.unpin();
  assertEmpty(store, ns);
});

test('a stream its quota holds is stored even when doubling its extents would not fit', () => {
  const store = SharedStore.create({ maxBytes: 8 * MiB, touchIntervalMs: 0 });
  const ns = store.namespace('t', 100 * KiB);
  const ref = store.reserveStream(ns, 'k', init(), MiB)!;
  const writer = store.pin(ref.id, ref.gen)!;
  let at = 0;
  for (let i = 0; i < 14; i++) {
    at = appendAll(store, ref, 11, at, [5000]);
    assert.ok(store.stats(ns).bytes <= 100 * KiB, `${store.stats(ns).bytes} bytes held under a quota of ${100 * KiB}`);
  }
  assert.equal(store.completeStream(ref.id, ref.gen, 'k', init()), true);
  writer.unpin();
  const [rec] = store.lookup(ns, 'k');
  assert.ok(rec && isStreamAt(11, 0, rec.body) && rec.body.length === 70_000);
  rec.unpin();
  assertEmpty(store, ns);
});

test('hostile sizes and misuse: bounded, refused or a clear error', () => {
  const store = SharedStore.create({ maxBytes: MiB, touchIntervalMs: 0 });
  const ns = store.namespace('t', MiB);
  for (const bad of [0, -1, Number.NaN]) assert.throws(() => store.reserveStream(ns, 'k', init(), bad), RangeError);
  // A limit past what the store could ever hold: the first extent is still a few KiB.
  const huge = store.reserveStream(ns, 'huge', init(), 2 ** 52)!;
  assert.ok(store.stats(ns).bytes < 8 * KiB, `${store.stats(ns).bytes} bytes`);
  assert.throws(() => store.complete(huge.id, huge.gen), TypeError);
  assert.throws(() => store.fill(huge.id, huge.gen, 10), TypeError);
  const { ref } = store.reserve(ns, 'known', init(), 10)!;
  assert.throws(() => store.completeStream(ref.id, ref.gen, 'known', init()), TypeError);
  assert.equal(store.append(-1, 0, new Uint8Array(1)), false);
  assert.equal(store.readStream(huge.id, huge.gen + 1, 0).state, 'gone');
  // The limit is the store's, whatever was asked: a body past the quota leaves the cache.
  const pin = store.pin(huge.id, huge.gen)!;
  const reader = follow(store, ns, 'huge', 9);
  appendAll(store, huge, 9, 0, [2 * MiB]);
  assert.deepEqual(store.lookup(ns, 'huge'), []);
  assert.ok(store.stats(ns).bytes <= MiB);
  assert.equal(reader.read(), 'gone', 'one chunk larger than all it may hold is not streamed');
  store.abandon(huge.id, huge.gen);
  pin.unpin();
  reader.rec.unpin();
  store.abandon(ref.id, ref.gen);
  assertEmpty(store, ns);
});

function startWorker(store: SharedStore, job: StreamTask): Worker {
  return new Worker(WORKER, { workerData: { handle: store.handle(), job } });
}

async function message<T>(worker: Worker): Promise<T> {
  const [m] = await once(worker, 'message') as [T];
  return m;
}

test('across threads: a reader here gets the first bytes of a stream before the writer thread writes the last', async (t) => {
  const store = SharedStore.create({ maxBytes: 8 * MiB });
  const ns = store.namespace('t', 8 * MiB);
  const plan: StreamPlan = { key: 'k', seed: 10, chunks: [3000, 50_000, 7, 200_000, 1234], limit: MiB };
  const writer = startWorker(store, { task: 'write', ns, plans: [plan], holdLast: true });
  t.after(() => writer.terminate());
  await message<{ ref: RecordRef }>(writer);
  const reader = follow(store, ns, 'k', 10);
  writer.postMessage('go');
  const held = (await message<{ held: number }>(writer)).held;
  // Everything but the last chunk, read while the writer holds it back.
  while (reader.at < held) {
    const before = reader.at;
    assert.equal(reader.read(), 'filling');
    if (reader.at === before) await store.waitProgress(reader.rec.id, reader.seq, 1000);
  }
  assert.equal(reader.at, held);
  const done = message<{ stored: boolean; total: number }>(writer);
  writer.postMessage('go');
  assert.deepEqual(await done, { done: true, appended: true, stored: true, total: 254_241 });
  while (reader.read() === 'filling') await store.waitProgress(reader.rec.id, reader.seq, 1000);
  assert.equal(reader.at, 254_241);
  reader.rec.unpin();
  const [rec] = store.lookup(ns, 'k');
  assert.ok(rec && isStreamAt(10, 0, rec.body) && rec.body.length === 254_241);
  rec.unpin();
  assertEmpty(store, ns);
});

test('stress: a writer thread streams bodies of random sizes, some past their limit, to two follower threads that check every byte', async (t) => {
  const store = SharedStore.create({ maxBytes: 16 * MiB });
  const ns = store.namespace('t', 4 * MiB);
  const rnd = random(12);
  const plans: StreamPlan[] = Array.from({ length: 40 }, (_, i) => {
    const chunks: number[] = [];
    const total = Math.floor(rnd() * 400 * KiB);
    for (let sum = 0; sum < total;) {
      const size = 1 + Math.floor(rnd() * 30_000);
      chunks.push(size);
      sum += size;
    }
    return { key: `s${i}`, seed: 100 + i, chunks, limit: 64 * KiB + Math.floor(rnd() * 256 * KiB) };
  });
  const writer = startWorker(store, { task: 'write', ns, plans });
  const followers = [startWorker(store, { task: 'follow' }), startWorker(store, { task: 'follow' })];
  t.after(() => Promise.all([writer, ...followers].map((w) => w.terminate())));
  let stored = 0;
  let broken = 0;
  for (const plan of plans) {
    const { ref } = await message<{ ref: RecordRef }>(writer);
    for (const f of followers) f.postMessage({ id: ref.id, gen: ref.gen, seed: plan.seed });
    assert.deepEqual(await Promise.all(followers.map((f) => message(f))), [{ pinned: true }, { pinned: true }]);
    const results = followers.map((f) => message<FollowResult>(f));
    writer.postMessage('go');
    const done = await message<{ appended: boolean; stored: boolean; total: number }>(writer);
    const total = plan.chunks.reduce((a, b) => a + b, 0);
    const past = total > plan.limit;
    assert.equal(done.stored, !past, `${plan.key}: stored when within its limit`);
    for (const r of await Promise.all(results)) {
      assert.equal(r.bad, 0, `${plan.key}: every byte read was the stream's`);
      if (r.state === 'gone') broken++;
      else assert.equal(r.bytes, total, `${plan.key}: whole`);
      assert.ok(r.state === 'whole' || past, `${plan.key}: only a ring may be fallen behind`);
    }
    if (done.stored) stored++;
  }
  assert.ok(stored > 0);
  assert.ok(store.stats(ns).bytes <= 4 * MiB);
  assert.equal(store.stats(ns).objects, stored - store.stats(ns).evictions, `${broken} followers broke off`);
  assertEmpty(store, ns);
});
