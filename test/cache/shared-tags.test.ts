// The shared store's tag index (src/cache/shared/tags.ts): a purge by tag removes exactly the
// records carrying the tag and the count of distinct tags is exact, through inserts, replacements,
// removals, evictions, fills and clears, on one thread and with purges and writers on several;
// each record's part of the index is charged to its namespace; one namespace's tags never reach
// another's purge. The oracle is a scan of every record's tags, as the store did before the index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { RECORD_OVERHEAD, SharedStore, TAG_NODE_BYTES, type RecordInit } from '../../src/cache/shared/store.ts';
import { tagHash } from '../../src/cache/shared/layout.ts';
import { checkRecord } from '../helpers/shared-store-records.ts';
import { random } from '../helpers/random.ts';
import type { WorkerTask } from '../helpers/shared-store-worker.ts';

const WORKER = new URL('../helpers/shared-store-worker.mjs', import.meta.url);
const enc = new TextEncoder();

function record(body: string, tags: readonly string[], secondary = ''): RecordInit {
  return { meta: enc.encode('m'), body: enc.encode(body), tags, secondary };
}

/** How many live records of `ns` carry each tag, read from every record (the old scan). */
function scan(store: SharedStore, ns: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const s of store.summaries(ns)) {
    const rec = store.pin(s.id, s.gen);
    if (rec === null) continue;
    for (const tag of rec.tags) counts.set(tag, (counts.get(tag) ?? 0) + 1);
    rec.unpin();
  }
  return counts;
}

/** Checks the index against the scan: the distinct count, and each tag's carriers by purging it. */
function purgeAllChecked(store: SharedStore, ns: number, what: string): void {
  const counts = scan(store, ns);
  assert.equal(store.tagCount(ns), counts.size, `${what}: distinct tags`);
  for (const tag of counts.keys()) {
    // A record may carry tags purged before this one: count what is left.
    const left = scan(store, ns).get(tag) ?? 0;
    assert.equal(store.removeTag(ns, tag), left, `${what}: carriers of ${JSON.stringify(tag)}`);
  }
  assert.equal(store.tagCount(ns), 0, `${what}: no tag left`);
  assert.equal(scan(store, ns).size, 0, `${what}: no record carries a tag`);
}

function startWorker(store: SharedStore, job: WorkerTask): Worker {
  return new Worker(WORKER, { workerData: { handle: store.handle(), job } });
}

async function message<T>(worker: Worker): Promise<T> {
  const [m] = await once(worker, 'message') as [T];
  return m;
}

test('a tag purge removes exactly the records carrying the tag, and the tag count is exact, through every way a record goes', () => {
  const rnd = random(7);
  // A small quota: inserts evict all along; 64 tag buckets for 39 tags: chains of several heads.
  const store = SharedStore.create({ maxBytes: 1 << 20, maxRecords: 64, touchIntervalMs: 0 });
  const ns = store.namespace('t', 24_000);
  const other = store.namespace('u', 1 << 20);
  const pool = ['a', 'b', 'c', 'd', 'e', '', 'é', 'a b', 'long-'.repeat(40), ...Array.from({ length: 30 }, (_, i) => `p${i}`)];
  const pick = (): string[] => pool.filter(() => rnd() < 0.1);
  store.insert(other, 'k0', record('other', ['a', 'b']));
  const filling: Array<{ id: number; gen: number }> = [];
  for (let i = 0; i < 3000; i++) {
    const key = `k${Math.floor(rnd() * 60)}`;
    const r = rnd();
    if (r < 0.45) store.insert(ns, key, record('x'.repeat(Math.floor(rnd() * 400)), [...pick(), ...pick()], `v${Math.floor(rnd() * 3)}`));
    else if (r < 0.5) store.insert(ns, key, record('y', pick()));
    else if (r < 0.55) {
      const reserved = store.reserve(ns, key, record('', pick(), 'f'), 10);
      if (reserved !== null) filling.push(reserved.ref);
    } else if (r < 0.6 && filling.length > 0) {
      const ref = filling.splice(Math.floor(rnd() * filling.length), 1)[0]!;
      if (rnd() < 0.5) store.complete(ref.id, ref.gen);
      else store.abandon(ref.id, ref.gen);
    } else if (r < 0.65) store.removeKey(ns, key);
    else if (r < 0.7) {
      for (const rec of store.lookup(ns, key)) {
        if (rnd() < 0.5) store.remove(rec.id, rec.gen);
        rec.unpin();
      }
    } else if (r < 0.72) store.removeExpired(ns, Date.now() + (rnd() < 0.5 ? -1000 : 1000));
    else if (r < 0.73) store.clear(ns);
    else if (r < 0.74) store.resize(ns, rnd() < 0.5 ? 4_000 : 24_000);
    else {
      const tag = pool[Math.floor(rnd() * pool.length)]!;
      const expected = scan(store, ns).get(tag) ?? 0;
      assert.equal(store.removeTag(ns, tag), expected, `step ${i}: purge of ${JSON.stringify(tag)}`);
      assert.equal(scan(store, ns).has(tag), false, `step ${i}: nothing carries ${JSON.stringify(tag)} after its purge`);
    }
    assert.equal(store.tagCount(ns), scan(store, ns).size, `step ${i}: distinct tags`);
  }
  assert.ok(store.stats(ns).evictions > 100, 'evictions took tagged records');
  for (const ref of filling) store.abandon(ref.id, ref.gen);
  purgeAllChecked(store, ns, 'after the churn');
  assert.equal(store.tagCount(other), 2, 'the other namespace keeps its tags');
  assert.equal(store.removeTag(other, 'a'), 1);
});

test('evicted, cleared and replaced records leave their tags\' lists; the same tag in another namespace is another list', () => {
  const store = SharedStore.create({ maxBytes: 1 << 20, touchIntervalMs: 0 });
  const one = RECORD_OVERHEAD + 2 * TAG_NODE_BYTES + 'k00'.length + 'shared\nk00'.length + 1 + 100;
  const ns = store.namespace('t', 10 * one);
  const other = store.namespace('u', 1 << 20);
  for (let i = 0; i < 5; i++) store.insert(other, `k${i}`, record('x'.repeat(100), ['shared', `k${i}`]));
  for (let i = 10; i < 40; i++) store.insert(ns, `k${i}`, record('x'.repeat(100), ['shared', `k${i}`]));
  assert.equal(store.stats(ns).objects, 10);
  assert.equal(store.stats(ns).bytes, 10 * one, 'a record is charged its tag nodes');
  assert.equal(store.stats(ns).evictions, 20);
  assert.equal(store.tagCount(ns), 11, 'the evicted records\' own tags are gone');
  assert.equal(store.removeTag(ns, 'k15'), 0, 'an evicted record is not found by its tag');
  assert.equal(store.removeTag(ns, 'k35'), 1);
  // Replacing a record moves it to its new tags.
  store.insert(ns, 'k36', record('x', ['fresh']));
  assert.equal(store.removeTag(ns, 'k36'), 0);
  assert.equal(store.removeTag(ns, 'shared'), 8);
  assert.equal(store.removeTag(ns, 'fresh'), 1);
  assert.equal(store.tagCount(ns), 0);
  for (let i = 0; i < 5; i++) store.insert(ns, `k${i}`, record('x', ['shared']));
  assert.equal(store.clear(ns), 5);
  assert.equal(store.tagCount(ns), 0, 'clear empties the index');
  assert.equal(store.removeTag(ns, 'shared'), 0);
  assert.equal(store.tagCount(other), 6, 'another namespace\'s tags are untouched');
  assert.equal(store.removeTag(other, 'shared'), 5);
  assert.equal(store.clear(other), 0);
  assert.equal(store.globalStats().arenaUsedBytes, 0, 'every block, nodes included, is freed');
});

test('a record\'s tag nodes are charged to its quota: a tenant cannot grow the index past it', () => {
  const store = SharedStore.create({ maxBytes: 8 << 20 });
  const quota = 1 << 20;
  const ns = store.namespace('t', quota);
  const tags = (i: number): string[] => Array.from({ length: 1024 }, (_, t) => `${i}.${t}`);
  const first = tags(0);
  assert.ok(store.insert(ns, 'k0', record('', [...first, ...first])), 'a tag listed twice is kept once');
  const [rec] = store.lookup(ns, 'k0');
  assert.deepEqual(rec?.tags, first);
  rec.unpin();
  assert.equal(store.stats(ns).bytes, RECORD_OVERHEAD + 1024 * TAG_NODE_BYTES + 'k0'.length + enc.encode(first.join('\n')).length + 1);
  for (let i = 1; i < 200; i++) store.insert(ns, `k${i}`, record('', tags(i)));
  const s = store.stats(ns);
  assert.ok(s.bytes <= quota, `${s.bytes} charged within the quota`);
  assert.ok(store.globalStats().arenaUsedBytes <= s.bytes, 'the arena holds no more than is charged');
  assert.equal(store.tagCount(ns), s.objects * 1024);
  assert.equal(store.removeTag(ns, '199.1023'), 1);
  assert.equal(store.removeTag(ns, '0.0'), 0, 'evicted');
});

test('the tag hash depends on the store\'s seed: tags one seed puts in one chain, another spreads', () => {
  const bucketOf = (seed: number, tag: string): number => {
    const bytes = enc.encode(tag);
    return tagHash(seed, 3, bytes, 0, bytes.length) & 1023;
  };
  // Tags that share a chain under seed 1, as a tenant who knew the hash would choose them.
  const colliding: string[] = [];
  for (let i = 0; colliding.length < 16; i++) if (bucketOf(1, `t${i}`) === bucketOf(1, 't0')) colliding.push(`t${i}`);
  const spread = new Set(colliding.map((t) => bucketOf(0x5eed, t)));
  assert.ok(spread.size >= 12, `${spread.size} chains of 16 under another seed`);
  assert.notEqual(tagHash(1, 3, enc.encode('x'), 0, 1), tagHash(1, 4, enc.encode('x'), 0, 1), 'the namespace is hashed too');
});

test('tag purges across threads: records stored by one thread are purged by another, while writers and readers go on', async () => {
  // 256 tag buckets for 65 tags of the churn: chains of several heads.
  const store = SharedStore.create({ maxBytes: 1 << 20, maxRecords: 256, touchIntervalMs: 0 });
  const ns = store.namespace('t', 1 << 20);
  // Stored by a worker, purged here.
  const filler = startWorker(store, { task: 'fill', ns, prefix: 'w', count: 50, bodyBytes: 100 });
  assert.deepEqual(await message(filler), { over: 0, stored: 50, most: store.stats(ns).bytes });
  await filler.terminate();
  assert.equal(store.tagCount(ns), 51);
  assert.equal(store.removeTag(ns, 't-w7'), 1);
  assert.equal(store.removeTag(ns, 'all'), 49);
  assert.equal(store.tagCount(ns), 0);
  // Stored here, purged by a worker.
  for (let i = 0; i < 20; i++) store.insert(ns, `h${i}`, record('x', ['here', `h${i}`]));
  const purger = startWorker(store, { task: 'purgeTags', ns, tags: ['h3', 'here'], rounds: 1 });
  assert.deepEqual(await message(purger), { removed: [20] });
  await purger.terminate();
  assert.equal(store.lookup(ns, 'h4').length, 0);
  // Three writers churn tagged records, two of them purging their tags as they go, while this
  // thread reads: every record read is whole, and the index still matches the records.
  const keys = Array.from({ length: 64 }, (_, i) => `c${i}`);
  const purgeTags = [...keys.map((k) => `t-${k}`), 'all'];
  const churners = [1, 2, 3].map((seed) => startWorker(store, { task: 'churn', ns, seed, keys, iterations: 20_000, purgeTags: seed === 3 ? undefined : purgeTags }));
  const results = Promise.all(churners.map((w) => message<{ bad: number; purged: number }>(w)));
  let running = true;
  void results.then(() => { running = false; });
  while (running) {
    for (const key of keys) {
      for (const rec of store.lookup(ns, key)) {
        assert.ok(checkRecord(key, rec), `record ${key} read whole`);
        rec.unpin();
      }
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  const done = await results;
  await Promise.all(churners.map((w) => w.terminate()));
  assert.deepEqual(done.map((r) => r.bad), [0, 0, 0]);
  assert.ok(done[0]!.purged + done[1]!.purged > 0, 'the purges found records');
  purgeAllChecked(store, ns, 'after the threads');
  store.clear(ns);
  assert.equal(store.globalStats().arenaUsedBytes, 0);
});
