// A worker thread of test/cache/shared-store.test.ts: attaches the store from its handle and runs
// one task against it, talking to the test through messages.
import { parentPort, workerData } from 'node:worker_threads';
import { SharedStore, type SharedStoreHandle } from '../../src/cache/shared/store.ts';
import { checkRecord, makeRecord } from './shared-store-records.ts';
import { random } from './random.ts';

/** What the test starts a worker with. */
export type WorkerTask =
  | { task: 'fill'; ns: number; prefix: string; count: number; bodyBytes: number }
  | { task: 'churn'; ns: number; seed: number; keys: readonly string[]; iterations: number; purgeTags?: readonly string[] }
  | { task: 'claim'; ns: number; key: string }
  | { task: 'hold'; ns: number; key: string; ttlMs: number }
  | { task: 'purgeTags'; ns: number; tags: readonly string[]; rounds: number }
  | { task: 'words'; ns: number; prefix: string; count: number };

const port = parentPort!;
const { handle, job } = workerData as { handle: SharedStoreHandle; job: WorkerTask };
const store = SharedStore.attach(handle);

/** Waits for the test's next message. */
function next(): Promise<unknown> {
  return new Promise((resolve) => port.once('message', resolve));
}

switch (job.task) {
  case 'fill': {
    // Inserts records into one namespace; reports every time the quota was seen exceeded, and the
    // most bytes it saw the namespace hold.
    let over = 0;
    let stored = 0;
    let most = 0;
    for (let i = 0; i < job.count; i++) {
      if (store.insert(job.ns, `${job.prefix}${i}`, makeRecord(`${job.prefix}${i}`, i, job.bodyBytes)) !== null) stored++;
      const s = store.stats(job.ns);
      if (s.bytes > s.quotaBytes) over++;
      most = Math.max(most, s.bytes);
    }
    port.postMessage({ over, stored, most });
    break;
  }
  case 'churn': {
    // Inserts, replaces and removes records of a small key set (purging by tag too, given tags)
    // while checking what it reads back.
    const rnd = random(job.seed);
    const tags = job.purgeTags ?? [];
    let bad = 0;
    let reads = 0;
    let purged = 0;
    for (let i = 0; i < job.iterations; i++) {
      const key = job.keys[Math.floor(rnd() * job.keys.length)]!;
      const r = rnd();
      if (r < 0.05 && tags.length > 0) purged += store.removeTag(job.ns, tags[Math.floor(rnd() * tags.length)]!);
      else if (r < 0.5) store.insert(job.ns, key, makeRecord(key, i, 1 + Math.floor(rnd() * 4000), `v${Math.floor(rnd() * 3)}`));
      else if (r < 0.6) store.removeKey(job.ns, key);
      else {
        for (const rec of store.lookup(job.ns, key)) {
          reads++;
          if (!checkRecord(key, rec)) bad++;
          if (r < 0.65) store.remove(rec.id, rec.gen);
          rec.unpin();
        }
      }
    }
    port.postMessage({ bad, reads, purged });
    break;
  }
  case 'claim': {
    // Claims the key: the fetcher waits for the test's go, inserts and releases; the others wait
    // for the release and report what they then find.
    const claimed = store.claim(job.ns, job.key, { ttlMs: 60_000 });
    if (claimed === true) {
      port.postMessage({ role: 'fetcher' });
      await next();
      store.insert(job.ns, job.key, makeRecord(job.key, 1, 100));
      store.release(job.ns, job.key);
      port.postMessage({ done: true });
    } else {
      port.postMessage({ role: 'waiter' });
      await claimed;
      const found = store.lookup(job.ns, job.key);
      const ok = found.every((rec) => checkRecord(job.key, rec));
      for (const rec of found) rec.unpin();
      port.postMessage({ done: true, found: found.length, ok });
    }
    break;
  }
  case 'purgeTags': {
    // Purges each tag in turn, `rounds` times over; reports how many records each round removed.
    const removed: number[] = [];
    for (let round = 0; round < job.rounds; round++) {
      let n = 0;
      for (const tag of job.tags) n += store.removeTag(job.ns, tag);
      removed.push(n);
    }
    port.postMessage({ removed });
    break;
  }
  case 'words': {
    // Reads records `${prefix}${i}` whose body is the word i repeated (shared-segments.test.ts):
    // reports how many it found, how many were whole and right, and the arena segments they were in.
    const segments = new Set<number>();
    let found = 0;
    let right = 0;
    for (let i = 0; i < job.count; i++) {
      for (const rec of store.lookup(job.ns, `${job.prefix}${i}`)) {
        found++;
        segments.add(handle.arena.indexOf(rec.body.buffer as SharedArrayBuffer));
        const body = new DataView(rec.body.buffer, rec.body.byteOffset, rec.body.byteLength);
        const last = body.byteLength - 4;
        if (last >= 0 && [0, (last >>> 3) << 2, last].every((at) => body.getUint32(at, true) === i)) right++;
        rec.unpin();
      }
    }
    port.postMessage({ found, right, segments: [...segments].sort((x, y) => x - y) });
    break;
  }
  case 'hold': {
    // Claims the key and never releases it, as a thread that died while fetching.
    port.postMessage({ claimed: store.claim(job.ns, job.key, { ttlMs: job.ttlMs }) === true });
    break;
  }
}
