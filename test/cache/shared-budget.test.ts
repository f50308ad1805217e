// The shared store's budget after it was made: raised at a reload up to the reserve the store was
// made with, every thread's inserts may fill it; lowered, it evicts; past the reserve it stays at
// the reserve. A reserve the store cannot address is refused with a clear error, and a large one
// costs the memory of its buckets, not of its record slots, until records use them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { MAX_RESERVE_BYTES, ReserveError, SharedStore } from '../../src/cache/shared/store.ts';
import type { WorkerTask } from '../helpers/shared-store-worker.ts';

const WORKER = new URL('../helpers/shared-store-worker.mjs', import.meta.url);
const KiB = 1024;
const MiB = 1024 * KiB;

/** Runs one task in a worker thread attached to the store; answers its report. */
async function inWorker<T>(store: SharedStore, job: WorkerTask): Promise<T> {
  const worker = new Worker(WORKER, { workerData: { handle: store.handle(), job } });
  const [m] = await once(worker, 'message') as [T];
  await worker.terminate();
  return m;
}

interface Filled { over: number; stored: number; most: number }

test('a budget raised up to the reserve lets every thread store more; lowered it evicts; past the reserve it stays at the reserve', async () => {
  const store = SharedStore.create({ maxBytes: 256 * KiB, reserveBytes: 4 * MiB });
  const ns = store.namespace('t', 4 * MiB);
  assert.equal(store.stats(ns).quotaBytes, 256 * KiB, 'a quota is capped at the budget');
  const before = await inWorker<Filled>(store, { task: 'fill', ns, prefix: 'a', count: 400, bodyBytes: 1000 });
  assert.equal(before.over, 0);
  assert.ok(before.most <= 256 * KiB, `held ${before.most} in a budget of 256 KiB`);
  // The reload: the budget first, then the quota.
  store.setBudget(2 * MiB);
  store.resize(ns, 2 * MiB);
  assert.equal(store.stats(ns).quotaBytes, 2 * MiB);
  const after = await inWorker<Filled>(store, { task: 'fill', ns, prefix: 'b', count: 1500, bodyBytes: 1000 });
  assert.equal(after.over, 0);
  assert.ok(after.most > 1.5 * MiB && after.most <= 2 * MiB, `another thread held ${after.most} once the budget was 2 MiB`);
  const global = store.globalStats();
  assert.equal(global.maxBytes, 2 * MiB);
  assert.equal(global.reservedBytes, 4 * MiB);
  assert.ok(global.arenaBytes <= global.arenaMaxBytes && global.arenaUsedBytes <= global.bytes);
  store.setBudget(64 * MiB);
  assert.equal(store.globalStats().maxBytes, 4 * MiB, 'past the reserve, the budget is the reserve');
  store.setBudget(128 * KiB);
  assert.ok(store.globalStats().bytes <= 128 * KiB, 'lowered, it evicts down to it');
  assert.ok(store.stats(ns).evictions > 1500);
});

test('a reserve below the budget or past what the arena can address is refused, saying why', () => {
  assert.throws(() => SharedStore.create({ maxBytes: 2 * MiB, reserveBytes: MiB }), (e) => e instanceof ReserveError && e.message === 'a reserve of 1048576 bytes is less than the budget (2097152)');
  assert.throws(() => SharedStore.create({ maxBytes: MiB, reserveBytes: MAX_RESERVE_BYTES + 1 }), (e) => e instanceof ReserveError && /^a reserve of \d+ bytes \(25\.59 GiB\) is more than the store can address \(\d+, 25\.59 GiB\)$/.test(e.message));
});

test('a store reserved for 2 GiB costs its buckets, not its record slots, until records use them', () => {
  const rss = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * KiB;
  const start = rss();
  const store = SharedStore.create({ maxBytes: MiB, reserveBytes: 2048 * MiB });
  const grown = rss() - start;
  // 2 Mi slots of 96 bytes (192 MiB) untouched; 2 Mi key and 2 Mi tag buckets (16 MiB) touched.
  assert.ok(grown < 64 * MiB, `RSS grew ${(grown / MiB).toFixed(1)} MiB`);
  const ns = store.namespace('t', MiB);
  for (let i = 0; i < 100; i++) assert.ok(store.insert(ns, `k${i}`, { meta: new Uint8Array(1), body: new Uint8Array(100), tags: ['x'], secondary: '' }));
  assert.equal(store.removeTag(ns, 'x'), 100);
});
