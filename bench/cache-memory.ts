// What cached things really cost the heap against what the storage charges to the quota: the
// measurement behind the size constants in src/cache/object.ts, storage.ts and invalidation.ts.
// Each case fills one namespace, then compares heapUsed + external after gc with the bytes the
// namespace accounts (ratio ≤ 1: the accounting is conservative). Usage:
//   node --import tsx bench/cache-memory.ts
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Cache, type Backend } from '../src/cache/index.ts';
import type { BanList } from '../src/cache/invalidation.ts';
import { CacheObject } from '../src/cache/object.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const backend: Backend = { fetch: () => Promise.reject(new Error('not used')), healthy: true, close: () => Promise.resolve() };
const life = { t0: Date.now(), ttl: 1e9, grace: 0, keep: 0, errorWindow: 0, noStale: false, alwaysValidate: false };

/** A fresh string with its own characters, as the HTTP parser makes them (not a shared literal). */
const own = (s: string): string => JSON.parse(JSON.stringify(s)) as string;
const baseHeaders = (i: number): string[] => ['content-type', 'text/plain', 'cache-control', 'max-age=600', 'date', new Date(1e12 + i * 1000).toUTCString()].map(own);

interface Spec { key?: string; headers?: string[]; body?: Buffer; varyNames?: string[]; varyValues?: string[] }

function heapNow(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

function report(name: string, n: number, heap: number, charged: number, extra = ''): void {
  console.log(`${name.padEnd(34)} heap ${(heap / n).toFixed(0).padStart(7)} B  charged ${(charged / n).toFixed(0).padStart(7)} B  ratio ${(heap / charged).toFixed(2)} ${extra}`);
}

/** Stores `n` objects built by `spec`; `after` runs before the measurement (e.g. fast hits). */
function objects(name: string, n: number, spec: (i: number) => Spec, after?: (cache: Cache) => void): void {
  const cache = new Cache({ backend, memoryBytes: 8 * 2 ** 30, lurkerIntervalMs: 0 });
  const ns = cache.namespace;
  const h0 = heapNow();
  for (let i = 0; i < n; i++) {
    const s = spec(i);
    const key = s.key ?? own(`example.com/path/${i}`);
    ns.insert(new CacheObject({
      key, host: 'example.com', url: key.slice('example.com'.length), status: 200, headers: s.headers ?? baseHeaders(i),
      body: s.body ?? Buffer.from(`body-${i}`.padEnd(10, '.')), life, noCacheFields: null,
      varyNames: s.varyNames ?? null, varyValues: s.varyValues ?? [], authOk: false, banSeq: 0, via: '1.1 tinyedge',
    }), 0);
  }
  after?.(cache);
  report(name, ns.objects, heapNow() - h0, ns.bytes, `(${ns.objects} objects, ${ns.tags} tags)`);
}

let serial = 0;
/** `count` tags of `len` characters that no other object carries. */
const uniqueTags = (count: number, len: number): string => Array.from({ length: count }, () => (serial++).toString(36).padStart(len, '_')).join(' ');
const fastHits = (n: number) => (cache: Cache): void => { for (let i = 0; i < n; i++) cache.fastHit('example.com', `/path/${i}`, false); };

const N = 20_000;
objects('3 headers, 10-byte body', N, () => ({}));
objects('3 headers, 10-byte body, fast hit', N, () => ({}), fastHits(N));
objects('30 headers, fast hit', N, (i) => ({ headers: [...baseHeaders(i), ...Array.from({ length: 54 }, (_, j) => own(j % 2 === 0 ? `x-h${j}` : `v${i}-${j}`))] }), fastHits(N));
objects('100 KB body', 2000, () => ({ body: Buffer.alloc(100_000, 1) }));
objects('1024 unique tags of 8', 500, (i) => ({ headers: [...baseHeaders(i), 'surrogate-key', uniqueTags(1024, 8)] }));
objects('1024 unique tags of 15', 500, (i) => ({ headers: [...baseHeaders(i), 'surrogate-key', uniqueTags(1024, 15)] }));
let pairStart = 0;
objects('1024 tags shared by 2 objects', 500, (i) => {
  if (i % 2 === 0) pairStart = serial;
  else serial = pairStart;
  return { headers: [...baseHeaders(i), 'surrogate-key', uniqueTags(1024, 8)] };
});
objects('1 tag shared by all', N, (i) => ({ headers: [...baseHeaders(i), 'surrogate-key', own('everything')] }));
objects('Vary on a 200-character value', N, (i) => ({ key: own(`example.com/v${i % 200}`), headers: [...baseHeaders(i), 'vary', 'user-agent'], varyNames: ['user-agent'], varyValues: [own(`${'ua'.repeat(100)}${i}`)] }));

{
  const cache = new Cache({ backend, memoryBytes: 8 * 2 ** 30, lurkerIntervalMs: 0 });
  const n = 1000; // well under the 1/16 share of 8 GiB
  const h0 = heapNow();
  for (let i = 0; i < n * 100; i++) cache.namespace.markHitForMiss(own(`example.com/uncacheable/${i}`), Date.now() + 120_000);
  report('hit-for-miss marker', n * 100, heapNow() - h0, cache.namespace.bytes);
}
for (const len of [20, 200, 2000]) {
  const cache = new Cache({ backend, memoryBytes: 8 * 2 ** 30, lurkerIntervalMs: 0 });
  const n = 1000;
  const h0 = heapNow();
  for (let i = 0; i < n; i++) cache.ban(own(`req.url ~ ^/${'p'.repeat(len)}${i}(a|b)+x`));
  // Lookups and the lurker compile every regular expression: test an object against all of them.
  const probe = new CacheObject({ key: 'h/x', host: 'h', url: '/x', status: 200, headers: [], body: Buffer.alloc(0), life, noCacheFields: null, varyNames: null, varyValues: [], authOk: false, banSeq: 0, via: null });
  (cache as unknown as { bans: BanList }).bans.bannedByLurker(probe);
  report(`ban with a ${len}-character regex`, n, heapNow() - h0 - probe.size, cache.namespace.bytes);
}
