// What a lookup in the shared store costs a thread that did not create it: a 100-byte record
// looked up (pinned, views made, unpinned) from a worker thread, beside a JS Map.get of the same
// keys in the same thread and run (ns per operation). The store is filled by the main thread.
//   node --import tsx bench/shared-store.ts [-n 1000000]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { SharedStore, type SharedStoreHandle } from '../src/cache/shared/store.ts';
import { machineLine, printTable } from './lib.ts';

const KEYS = 1000;
const key = (i: number): string => `http://example.com/objects/${i}?v=1`;

interface Job { handle: SharedStoreHandle; ns: number; n: number }

/** ns per call of `f(i)` over `n` calls, after a warm-up of a tenth. */
function time(n: number, f: (i: number) => void): number {
  for (let i = 0; i < n / 10; i++) f(i);
  const t = performance.now();
  for (let i = 0; i < n; i++) f(i);
  return ((performance.now() - t) * 1e6) / n;
}

if (isMainThread) {
  const { values } = parseArgs({ options: { n: { type: 'string', short: 'n', default: '1000000' } } });
  const store = SharedStore.create({ maxBytes: 64 << 20 });
  const ns = store.namespace('bench', 64 << 20);
  for (let i = 0; i < KEYS; i++) store.insert(ns, key(i), { meta: new Uint8Array(32), body: new Uint8Array(100).fill(i), tags: [], secondary: '' });
  // The worker runs this file again, through tsx's loader registered in its own thread.
  const shim = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); });`;
  const worker = new Worker(shim, { eval: true, workerData: { handle: store.handle(), ns, n: Number(values.n) } satisfies Job });
  const rows = await new Promise<Array<[string, number]>>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();
  console.log(machineLine());
  printTable(['operation (in a worker thread)', 'ns/op'], rows);
} else {
  const { handle, ns, n } = workerData as Job;
  const store = SharedStore.attach(handle);
  const map = new Map<string, Uint8Array>();
  for (let i = 0; i < KEYS; i++) map.set(key(i), new Uint8Array(100));
  const keys = Array.from({ length: KEYS }, (_, i) => key(i));
  let sink = 0;
  const mapGet = time(n, (i) => { sink += map.get(keys[i % KEYS]!)!.length; });
  const lookup = time(n, (i) => {
    const [rec] = store.lookup(ns, keys[i % KEYS]!);
    sink += rec!.body.length;
    rec!.unpin();
  });
  const ids = keys.map((k) => {
    const [rec] = store.lookup(ns, k);
    rec!.unpin();
    return rec!;
  });
  const live = time(n, (i) => { sink += store.isLive(ids[i % KEYS]!.id, ids[i % KEYS]!.gen) ? 1 : 0; });
  const touch = time(n, (i) => { sink += store.touch(ids[i % KEYS]!.id, ids[i % KEYS]!.gen) ? 1 : 0; });
  if (sink === 0) throw new Error('nothing was read');
  parentPort!.postMessage([['Map.get (baseline)', mapGet], ['store.lookup + unpin, 100 B body', lookup], ['store.isLive', live], ['store.touch (throttled)', touch]]);
}
