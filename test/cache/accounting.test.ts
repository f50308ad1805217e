// What a tenant's cache really costs the host is what its quota counts: surrogate keys and their
// index entries, hit-for-miss markers, bans and variants are charged and bounded, and freeing
// objects frees their index entries. Sizes asserted against the heap are the costs V8 (Node 20,
// x64) was measured to spend, so a cheaper accounting fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BanSyntaxError, MAX_BANS, MAX_BAN_EXPRESSION_BYTES, MAX_OBJECT_TAGS, MAX_OBJECT_TAG_BYTES, MAX_VARIANTS, Storage, type Backend, type HeaderList } from '../../src/cache/index.ts';
import { CacheObject } from '../../src/cache/object.ts';
import { HIT_FOR_MISS_BYTES, HIT_FOR_MISS_SHARE } from '../../src/cache/storage.ts';
import { deadOrigin, get, startOrigin, startProxy, type TestOrigin } from './helpers.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Least heap a unique surrogate key costs (measured 94 bytes for 8 characters): field, split string, Map entry, key. */
const HEAP_PER_UNIQUE_TAG = 90;

/** `count` tags unique to `id`, 10 characters each. */
const uniqueTags = (id: string, count: number): string => Array.from({ length: count }, (_, i) => `${id}-${i}`.padStart(10, 't')).join(' ');

/** Origin: GET /n/COUNT/ID → cacheable, with COUNT surrogate keys unique to ID. */
async function taggingOrigin(): Promise<TestOrigin> {
  return startOrigin((req, res) => {
    const [, , count, id] = (req.url ?? '').split('/');
    const headers: Record<string, string> = { 'cache-control': 'max-age=600', 'content-type': 'text/plain' };
    if (Number(count) > 0) headers['surrogate-key'] = uniqueTags(id ?? '', Number(count));
    res.writeHead(200, headers);
    res.end(`object ${id}`);
  });
}

test('an object is charged for every surrogate key it carries and the index entry behind it', async () => {
  const origin = await taggingOrigin();
  const proxy = await startProxy(origin);
  await get(proxy.url, '/n/0/plain');
  const plain = proxy.cache.stats().bytes;
  await get(proxy.url, '/n/1000/tagged');
  const tagged = proxy.cache.stats().bytes - plain;
  assert.equal(proxy.cache.stats().tags, 1000);
  assert.ok(tagged - plain >= 1000 * HEAP_PER_UNIQUE_TAG, `1000 tags charged ${tagged - plain} bytes`);
  assert.equal(proxy.cache.purge('/n/1000/tagged'), 1);
  assert.equal(proxy.cache.stats().tags, 0);
  assert.equal(proxy.cache.stats().bytes, plain);
  await proxy.close();
  await origin.close();
});

test('a tenant whose objects carry many unique tags stays within its quota, and freeing them empties the tag index', async () => {
  const origin = await taggingOrigin();
  const quota = MiB;
  const proxy = await startProxy(origin, { memoryBytes: quota });
  for (let i = 0; i < 150; i++) await get(proxy.url, `/n/1000/o${i}`);
  let s = proxy.cache.stats();
  assert.ok(s.bytes <= quota, `bytes ${s.bytes}`);
  assert.ok(s.evictions > 0);
  assert.equal(s.tags, s.objects * 1000);
  assert.ok(s.tags * HEAP_PER_UNIQUE_TAG <= quota, `${s.tags} tags held in a quota of ${quota} bytes`);

  // Every way out frees the object's tags: tag purge, URL purge, ban, eviction.
  const kept = proxy.cache.namespace.keys().map((k) => k.slice(k.indexOf('/')));
  assert.equal(proxy.cache.purgeTag(`${kept[0]!.split('/')[3]!}-7`.padStart(10, 't')), 1);
  assert.equal(proxy.cache.purge(kept[1]!), 1);
  s = proxy.cache.stats();
  assert.equal(s.tags, s.objects * 1000);
  proxy.cache.ban(`req.url == ${kept[2]!}`);
  proxy.cache.lurk();
  s = proxy.cache.stats();
  assert.equal(s.tags, s.objects * 1000);
  proxy.cache.storage.namespace('default', { maxBytes: 1 });
  proxy.cache.lurk();
  s = proxy.cache.stats();
  assert.deepEqual({ objects: s.objects, tags: s.tags, bans: s.bans, bytes: s.bytes }, { objects: 0, tags: 0, bans: 0, bytes: 0 });
  await proxy.close();
  await origin.close();
});

test('unique tags five times the quota leave the heap within a few times the quota', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const quota = 4 * MiB;
  const storage = new Storage({ maxBytes: quota });
  const ns = storage.namespace('tenant');
  const life = { t0: Date.now(), ttl: 1e9, grace: 0, keep: 0, errorWindow: 0, noStale: false, alwaysValidate: false };
  gc();
  const before = process.memoryUsage();
  let tagBytes = 0;
  for (let i = 0; tagBytes < 5 * quota; i++) {
    const keys = uniqueTags(`k${i}`, MAX_OBJECT_TAGS);
    tagBytes += keys.length;
    const key = `tenant.test/o${i}`;
    ns.insert(new CacheObject({
      key, host: 'tenant.test', url: `/o${i}`, status: 200, headers: ['content-type', 'text/plain', 'surrogate-key', keys], body: Buffer.from('x'),
      life, noCacheFields: null, varyNames: null, varyValues: [], authOk: false, banSeq: 0, via: null,
    }), 0);
  }
  gc();
  const after = process.memoryUsage();
  const grown = after.heapUsed + after.external - before.heapUsed - before.external;
  assert.ok(ns.bytes <= quota, `bytes ${ns.bytes}`);
  assert.ok(ns.tags * HEAP_PER_UNIQUE_TAG <= quota, `${ns.tags} tags held in a quota of ${quota} bytes`);
  assert.ok(grown < 3 * quota, `heap grew by ${(grown / MiB).toFixed(1)} MiB for a ${quota / MiB} MiB quota`);
  ns.clear();
  assert.deepEqual({ objects: ns.objects, tags: ns.tags, bytes: ns.bytes }, { objects: 0, tags: 0, bytes: 0 });
});

test('a response with more surrogate keys than allowed is delivered whole but not stored, and the operator is told', async () => {
  const origin = await startOrigin((req, res) => {
    const count = req.url === '/too-many' ? MAX_OBJECT_TAGS + 1 : MAX_OBJECT_TAGS;
    res.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': Array.from({ length: count }, (_, i) => `t${i}`).join(' ') });
    res.end('body');
  });
  const warnings: string[] = [];
  const proxy = await startProxy(origin, { warn: (m) => warnings.push(m) });
  for (let i = 0; i < 2; i++) {
    const r = await get(proxy.url, '/too-many');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'body');
    assert.equal(r.headers['x-cache'], 'MISS');
  }
  assert.equal(origin.hits, 2);
  assert.equal(proxy.cache.stats().tagRefusals, 2);
  assert.equal(proxy.cache.stats().objects, 0);
  // One warning per 10 s: a tenant can trigger them at will.
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /not cached: .*\/too-many: 1025 surrogate keys \(at most 1024\)/);

  await get(proxy.url, '/at-limit');
  assert.equal((await get(proxy.url, '/at-limit')).headers['x-cache'], 'HIT');
  assert.equal(proxy.cache.stats().tags, MAX_OBJECT_TAGS);
  await proxy.close();
  await origin.close();
});

test('surrogate keys longer in total than allowed (a program can send any length) are refused too', async () => {
  const backend: Backend = {
    healthy: true,
    close: async () => undefined,
    fetch: async (req) => {
      const chars = req.path === '/long' ? MAX_OBJECT_TAG_BYTES + 1 : MAX_OBJECT_TAG_BYTES;
      const headers: HeaderList = ['cache-control', 'max-age=600', 'surrogate-key', `a ${'b'.repeat(chars - 2)}`];
      return { status: 200, headers, body: Readable.from([Buffer.from('program')]) };
    },
  };
  const warnings: string[] = [];
  const proxy = await startProxy(await deadOrigin(), { backend, warn: (m) => warnings.push(m) });
  assert.equal((await get(proxy.url, '/long')).body, 'program');
  assert.equal((await get(proxy.url, '/long')).headers['x-cache'], 'MISS');
  assert.match(warnings[0]!, /surrogate keys of 16385 bytes \(at most 16384\)/);
  await get(proxy.url, '/exact');
  assert.equal((await get(proxy.url, '/exact')).headers['x-cache'], 'HIT');
  assert.equal(proxy.cache.purgeTag('a'), 1);
  await proxy.close();
});

test('a revalidation whose 304 brings too many surrogate keys drops the stored object', async () => {
  const origin = await startOrigin((req, res, n) => {
    if (n === 1) {
      res.writeHead(200, { 'cache-control': 'max-age=0, must-revalidate', etag: '"v1"', 'surrogate-key': 'one' });
      res.end('v1');
      return;
    }
    res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=600', 'surrogate-key': Array.from({ length: MAX_OBJECT_TAGS + 1 }, (_, i) => `t${i}`).join(' ') });
    res.end();
  });
  const proxy = await startProxy(origin, { warn: () => undefined });
  await get(proxy.url, '/r');
  const r = await get(proxy.url, '/r');
  assert.equal(r.body, 'v1');
  assert.equal(r.headers['x-cache'], 'REVALIDATED');
  assert.equal(proxy.cache.stats().objects, 0);
  assert.equal(proxy.cache.stats().tags, 0);
  assert.equal(proxy.cache.stats().tagRefusals, 1);
  await proxy.close();
  await origin.close();
});

test('every Surrogate-Key field of a response counts', async () => {
  const origin = await startOrigin((_req, res) => {
    res.setHeader('cache-control', 'max-age=600');
    res.setHeader('surrogate-key', ['first second', 'third']);
    res.end('x');
  });
  const proxy = await startProxy(origin);
  await get(proxy.url, '/multi');
  assert.equal(proxy.cache.stats().tags, 3);
  assert.equal(proxy.cache.purgeTag('third'), 1);
  await proxy.close();
  await origin.close();
});

test('hit-for-miss markers of unique uncacheable URLs take at most their share of the quota', async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'no-store' });
    res.end('private');
  });
  const quota = 64 * KiB;
  const proxy = await startProxy(origin, { memoryBytes: quota });
  const path = (i: number): string => `/uncacheable/${String(i).padStart(40, '0')}`;
  for (let i = 0; i < 300; i++) await get(proxy.url, path(i));
  const key = `${new URL(proxy.url).host}${path(0)}`;
  const most = Math.floor((quota * HIT_FOR_MISS_SHARE) / (HIT_FOR_MISS_BYTES + key.length));
  const markers = proxy.cache.namespace.hitForMissMarkers;
  assert.ok(markers > 0 && markers <= most, `${markers} markers (at most ${most})`);
  assert.equal(proxy.cache.stats().bytes, markers * (HIT_FOR_MISS_BYTES + key.length));
  // The newest markers are the ones kept.
  await get(proxy.url, path(299));
  assert.equal(proxy.cache.stats().hitForMiss, 1);
  await proxy.close();
  await origin.close();
});

test('bans are charged to the quota; past MAX_BANS pending, they become one ban of everything older', async () => {
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600' });
    res.end(req.url);
  });
  const warnings: string[] = [];
  const proxy = await startProxy(origin, { warn: (m) => warnings.push(m) });
  await get(proxy.url, '/a');
  await get(proxy.url, '/b');
  const objects = proxy.cache.stats().bytes;
  for (let i = 0; i < MAX_BANS; i++) proxy.cache.ban(`req.url == /nothing-${i}`);
  // Measured: a ban with one condition costs about 540 bytes of heap beyond its characters.
  assert.ok(proxy.cache.stats().bytes - objects >= MAX_BANS * 540, `${MAX_BANS} bans charged ${proxy.cache.stats().bytes - objects} bytes`);
  assert.equal(proxy.cache.stats().bans, MAX_BANS);
  assert.equal((await get(proxy.url, '/a')).headers['x-cache'], 'HIT');
  assert.deepEqual(warnings, []);

  proxy.cache.ban('req.url == /nothing-else');
  assert.equal(proxy.cache.stats().bans, 1);
  assert.match(warnings[0]!, /1024 bans pending: every object older than this ban is dropped instead/);
  assert.equal((await get(proxy.url, '/a')).headers['x-cache'], 'MISS');
  assert.equal((await get(proxy.url, '/b')).headers['x-cache'], 'MISS');
  assert.equal((await get(proxy.url, '/a')).headers['x-cache'], 'HIT');
  assert.throws(() => proxy.cache.ban(`req.url ~ ${'x'.repeat(MAX_BAN_EXPRESSION_BYTES)}`), BanSyntaxError);
  await proxy.close();
  await origin.close();
});

test('one URL keeps at most MAX_VARIANTS variants, the newest', async () => {
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600', vary: 'x-variant' });
    res.end(String(req.headers['x-variant']));
  });
  const proxy = await startProxy(origin);
  for (let i = 0; i <= MAX_VARIANTS; i++) await get(proxy.url, '/v', { 'x-variant': String(i) });
  assert.equal(proxy.cache.stats().objects, MAX_VARIANTS);
  assert.equal((await get(proxy.url, '/v', { 'x-variant': String(MAX_VARIANTS) })).headers['x-cache'], 'HIT');
  assert.equal((await get(proxy.url, '/v', { 'x-variant': '1' })).headers['x-cache'], 'HIT');
  assert.equal((await get(proxy.url, '/v', { 'x-variant': '0' })).headers['x-cache'], 'MISS');
  await proxy.close();
  await origin.close();
});

test('a stored body holds only its own bytes, not the larger buffer it arrived in', async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600', 'x-padding': 'p'.repeat(8000) });
    res.end('tiny');
  });
  const proxy = await startProxy(origin);
  await get(proxy.url, '/tiny');
  const obj = proxy.cache.namespace.variants(`${new URL(proxy.url).host}/tiny`)![0]!;
  assert.equal(obj.body.toString(), 'tiny');
  assert.equal(obj.body.buffer.byteLength, 4);
  await proxy.close();
  await origin.close();
});
