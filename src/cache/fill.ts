// A miss for an object another shard is fetching into shared storage right now: its body is
// streamed from shared memory as that shard writes it (`ObjectStore.filling`), through a local
// BusyFetch, so this shard's other requests for the key join it as they would join an origin
// fetch. When the other shard's fetch fails, the record goes and the clients here see the body
// break, as clients of the failing shard do.
import type { BusyFetch } from './coalesce.ts';
import type { EngineParts } from './context.ts';
import type { RemoteFill } from './object-store.ts';

/** How long a fill may make no progress before its followers give up on it (its writer died). */
const STALL_MS = 30_000;
/** How long one wait for progress lasts before the follower looks again. */
const POLL_MS = 1000;

/** Drives `busy` from `fill` until the body is whole, gone or stalled, or nobody follows any more. */
export function pumpFill(e: EngineParts, busy: BusyFetch, fill: RemoteFill): void {
  const obj = fill.obj;
  busy.emitHead({
    status: obj.status, head: fill.head, originHeaders: fill.head, shareable: true, varyNames: obj.varyNames,
    ageSec: Math.floor(Math.max(0, e.now() - obj.life.t0) / 1000),
  });
  let stopped = false;
  let paused = false;
  let wake: (() => void) | null = null;
  const nudge = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  busy.cancel = () => { stopped = true; nudge(); };
  busy.pause = () => { paused = true; };
  busy.resume = () => { paused = false; nudge(); };
  const run = async (): Promise<void> => {
    let sent = 0;
    let quietSince = Date.now();
    let lastSeq = -1;
    while (!stopped) {
      const p = fill.read(sent);
      if (p.chunk !== null) {
        // A body of unknown length past the largest object: not kept for later joiners, as at its fetch.
        if (busy.chunks !== null && busy.bytes + p.chunk.length > e.maxObjectBytes) busy.stopBuffering();
        busy.emitData(p.chunk);
        sent += p.chunk.length;
      }
      if (p.state === 'whole') { busy.emitEnd(); return; }
      if (p.state === 'gone') { busy.emitError(new Error('the fetch of another shard failed')); return; }
      if (p.seq !== lastSeq) { lastSeq = p.seq; quietSince = Date.now(); }
      else if (Date.now() - quietSince > STALL_MS) { busy.emitError(new Error('the fetch of another shard stalled')); return; }
      if (paused) await new Promise<void>((resolve) => { wake = resolve; });
      else if (p.chunk === null) await Promise.race([fill.wait(p.seq, POLL_MS), new Promise<void>((resolve) => { wake = resolve; })]);
    }
  };
  void run().finally(() => {
    wake = null;
    e.coalescer.finish(busy);
    fill.close();
  });
}
