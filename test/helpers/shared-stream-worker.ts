// A worker thread of test/cache/shared-stream.test.ts: attaches the store from its handle and
// writes streams into it (`SharedStore.reserveStream`, `append`) or follows them (`readStream`),
// checking every byte it reads, as the test's messages direct.
import { parentPort, workerData } from 'node:worker_threads';
import { SharedStore, type SharedStoreHandle } from '../../src/cache/shared/store.ts';
import { isStreamAt, streamBytes } from './stream-bytes.ts';

/** A stream to write: its body is stream `seed` (stream-bytes.ts), cut into chunks of these sizes. */
export interface StreamPlan {
  key: string;
  seed: number;
  chunks: readonly number[];
  limit: number;
}

/** What the test starts a worker with. */
export type StreamTask =
  /** Writes each plan in turn: reserves it, reports its ref, waits for a message, appends and completes it, reports. With `holdLast`, reports `held` and waits again before the last chunk. */
  | { task: 'write'; ns: number; plans: readonly StreamPlan[]; holdLast?: boolean }
  /** For each message `{ id, gen, seed }`: pins that stream, reports `pinned`, follows it to its end and reports how. */
  | { task: 'follow' };

/** How a followed stream ended, as a follower reports it. */
export interface FollowResult {
  state: 'whole' | 'gone';
  bytes: number;
  /** Chunks that were not the stream's bytes at their position. */
  bad: number;
}

const port = parentPort!;
const { handle, job } = workerData as { handle: SharedStoreHandle; job: StreamTask };
const store = SharedStore.attach(handle);
const inbox: unknown[] = [];
let waiting: ((m: unknown) => void) | null = null;
port.on('message', (m: unknown) => {
  if (waiting !== null) { const w = waiting; waiting = null; w(m); } else inbox.push(m);
});

/** The test's next message. */
function next(): Promise<unknown> {
  return inbox.length > 0 ? Promise.resolve(inbox.shift()) : new Promise((resolve) => { waiting = resolve; });
}

if (job.task === 'write') {
  for (const plan of job.plans) {
    const ref = store.reserveStream(job.ns, plan.key, { meta: new Uint8Array(4), body: new Uint8Array(0), tags: [], secondary: '' }, plan.limit)!;
    const pin = store.pin(ref.id, ref.gen)!;
    port.postMessage({ ref });
    await next();
    let at = 0;
    let appended = true;
    for (const [i, size] of plan.chunks.entries()) {
      if (job.holdLast === true && i === plan.chunks.length - 1) {
        port.postMessage({ held: at });
        await next();
      }
      appended &&= store.append(ref.id, ref.gen, streamBytes(plan.seed, at, size));
      at += size;
    }
    const stored = appended && store.completeStream(ref.id, ref.gen, plan.key, { meta: new Uint8Array(4), body: new Uint8Array(0), tags: [], secondary: '' });
    pin.unpin();
    port.postMessage({ done: true, appended, stored, total: at });
  }
} else {
  for (;;) {
    const { id, gen, seed } = await next() as { id: number; gen: number; seed: number };
    const rec = store.pin(id, gen);
    port.postMessage({ pinned: rec !== null });
    if (rec === null) continue;
    let from = 0;
    let bad = 0;
    let state: 'whole' | 'gone' | 'filling' = 'filling';
    while (state === 'filling') {
      const r = store.readStream(id, gen, from);
      if (r.chunk !== null) {
        if (!isStreamAt(seed, from, r.chunk)) bad++;
        from += r.chunk.length;
      }
      state = r.state;
      if (state === 'filling' && r.chunk === null) await store.waitProgress(id, r.seq, 1000);
    }
    rec.unpin();
    port.postMessage({ state, bytes: from, bad } satisfies FollowResult);
  }
}
