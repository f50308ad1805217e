// What streaming a body of unknown length through the shared store costs and gives, in one run:
//   1. CPU: storing a chunked body (16 KiB chunks) as a stream (reserveStream, append each chunk,
//      completeStream: the copy into an ordinary record included) beside storing it whole at its
//      end as before (Buffer.concat of the chunks, then insert). Medians in µs per object.
//   2. Latency: a request on a second cache of the same store for a chunked body the origin sends
//      in 8 chunks 25 ms apart, while the first cache fetches it: its first body byte and its end,
//      beside the same with streaming turned off (the namespace's reserve refuses unknown lengths,
//      as the engine did before: the second cache waits for the whole object). Medians in ms.
//   node --import tsx bench/shared-stream.ts [--reps 51] [--runs 7]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Cache, SharedStorage } from '../src/cache/index.ts';
import { SharedStore } from '../src/cache/shared/store.ts';
import { machineLine, median, printTable } from './lib.ts';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '51' }, runs: { type: 'string', default: '7' } } });
const REPS = Number(values.reps);
const RUNS = Number(values.runs);
const CHUNK = 16 * 1024;
const SIZES = [1024, 16 * 1024, 256 * 1024, 4 * 1024 * 1024];
const init = { meta: new Uint8Array(300), body: new Uint8Array(0), tags: ['a', 'b'], secondary: '' };

/** µs per call of `f`, median of REPS after a warm-up. */
function timeUs(f: (i: number) => void): number {
  for (let i = 0; i < 5; i++) f(i);
  const samples: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t = performance.now();
    f(i);
    samples.push((performance.now() - t) * 1000);
  }
  return median(samples);
}

function cpuRows(): Array<Array<string | number>> {
  const store = SharedStore.create({ maxBytes: 256 * 2 ** 20 });
  const ns = store.namespace('bench', 256 * 2 ** 20);
  const rows: Array<Array<string | number>> = [];
  for (const size of SIZES) {
    const chunks: Buffer[] = [];
    for (let at = 0; at < size; at += CHUNK) chunks.push(Buffer.alloc(Math.min(CHUNK, size - at), at & 0xff));
    const whole = timeUs((i) => {
      store.insert(ns, `whole-${size}-${i % 8}`, { ...init, body: Buffer.concat(chunks, size) });
    });
    const streamed = timeUs((i) => {
      const key = `stream-${size}-${i % 8}`;
      const ref = store.reserveStream(ns, key, init, 8 * 2 ** 20)!;
      const pin = store.pin(ref.id, ref.gen)!;
      for (const c of chunks) store.append(ref.id, ref.gen, c);
      store.completeStream(ref.id, ref.gen, key, init);
      pin.unpin();
    });
    rows.push([`${size / 1024} KiB`, whole.toFixed(1), streamed.toFixed(1), (streamed / whole).toFixed(2)]);
  }
  return rows;
}

/** A chunked origin: 8 chunks of 16 KiB, 25 ms apart. */
async function slowOrigin(): Promise<Server> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600' });
    let n = 0;
    const next = (): void => {
      res.write(Buffer.alloc(CHUNK, n));
      if (++n === 8) res.end();
      else setTimeout(next, 25);
    };
    next();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

/** ms from the request to its first body byte, and to its end. */
function timed(port: number, path: string): Promise<[number, number]> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { host: 'site.test' } }, (res) => {
      let first = -1;
      res.on('data', () => { if (first < 0) first = performance.now() - t; });
      res.on('end', () => resolve([first, performance.now() - t]));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Two caches of one store on this thread; `streaming` false: reserve refuses bodies of unknown length. */
async function followerLatency(streaming: boolean, origin: Server, run: number): Promise<[number, number]> {
  const storage = SharedStorage.create(64 * 2 ** 20);
  const ns = storage.namespace('site');
  if (!streaming) {
    const reserve = ns.reserve.bind(ns);
    ns.reserve = (obj, length, max) => (length === null ? null : reserve(obj, length, max));
  }
  const servers: Server[] = [];
  const caches: Cache[] = [];
  const ports: number[] = [];
  for (let i = 0; i < 2; i++) {
    const cache = new Cache({ origin: `http://127.0.0.1:${(origin.address() as AddressInfo).port}`, storage, namespace: 'site', lurkerIntervalMs: 0 });
    caches.push(cache);
    const server = createServer((req, res) => void cache.handle(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    ports.push((server.address() as AddressInfo).port);
  }
  const path = `/obj-${streaming}-${run}`;
  const leader = timed(ports[0]!, path);
  // The follower asks once the leader's fetch is under way (its first chunk is out).
  await new Promise((r) => setTimeout(r, 10));
  const follower = await timed(ports[1]!, path);
  await leader;
  for (const s of servers) { s.closeAllConnections(); await new Promise((r) => s.close(r)); }
  for (const c of caches) await c.close();
  return follower;
}

const cpu = cpuRows();
const origin = await slowOrigin();
const latency: Record<string, Array<[number, number]>> = { before: [], after: [] };
for (let run = 0; run < RUNS; run++) {
  latency.before!.push(await followerLatency(false, origin, run));
  latency.after!.push(await followerLatency(true, origin, run));
}
origin.closeAllConnections();
origin.close();
console.log(machineLine());
console.log('\nStoring a chunked body (16 KiB chunks), µs per object, median:');
printTable(['body', 'whole at its end (baseline)', 'streamed', 'ratio'], cpu);
console.log(`\nA request on a second cache while the first fetches a chunked body (8 × 16 KiB, 25 ms apart), ms, median of ${RUNS}:`);
printTable(['', 'first byte', 'end'], [
  ['stored whole at its end (baseline)', median(latency.before!.map((x) => x[0])).toFixed(1), median(latency.before!.map((x) => x[1])).toFixed(1)],
  ['streamed', median(latency.after!.map((x) => x[0])).toFixed(1), median(latency.after!.map((x) => x[1])).toFixed(1)],
]);
