// Request coalescing over real loopback HTTP: one origin fetch per key, bodies streamed to every
// waiting client as they arrive, hit-for-miss after uncacheable answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { get, sleep, startOrigin, startProxy, until } from './helpers.ts';

interface Streamed { status: number; xcache: string | undefined; body: Promise<string>; firstChunk: Promise<void> }

/** GET that exposes the moment the first body chunk arrives. */
function streamGet(url: string): Streamed {
  let firstResolve!: () => void;
  const firstChunk = new Promise<void>((r) => { firstResolve = r; });
  const out = { status: 0, xcache: undefined as string | undefined, firstChunk, body: Promise.resolve('') };
  out.body = new Promise<string>((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      out.status = res.statusCode ?? 0;
      out.xcache = res.headers['x-cache'] as string | undefined;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => { chunks.push(c); firstResolve(); });
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  return out;
}

const CHUNKS = Array.from({ length: 8 }, (_, i) => `chunk-${i}-${'x'.repeat(1000)}\n`);
const FULL = CHUNKS.join('');

test('1000 concurrent misses for one key make exactly one origin request and stream identical bodies to all', async () => {
  let originDone = false;
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  const origin = await startOrigin((_req, res) => {
    void (async () => {
      await until(() => proxy.cache.inFlight(host, '/big')?.listeners === 1000, 20_000, '1000 clients attached');
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(Buffer.byteLength(FULL)) });
      res.write(CHUNKS[0]);
      await released;
      for (const c of CHUNKS.slice(1)) { await sleep(5); res.write(c); }
      originDone = true;
      res.end();
    })();
  });
  const proxy = await startProxy(origin);
  const host = new URL(proxy.url).host;
  const clients = Array.from({ length: 1000 }, () => streamGet(`${proxy.url}/big`));
  // Some client holds the first chunk while the origin has not sent the last one yet.
  await Promise.race(clients.map((c) => c.firstChunk));
  assert.equal(originDone, false);
  release();
  const bodies = await Promise.all(clients.map((c) => c.body));
  assert.equal(origin.hits, 1);
  for (const c of clients) {
    assert.equal(c.status, 200);
    assert.equal(c.xcache, 'MISS');
  }
  for (const b of bodies) assert.equal(b, FULL);
  assert.equal(proxy.cache.stats().coalesced, 999);
  const after = await get(proxy.url, '/big');
  assert.equal(after.headers['x-cache'], 'HIT');
  assert.equal(after.body, FULL);
  assert.equal(origin.hits, 1);
  await proxy.close();
  await origin.close();
});

test('a client joining mid-stream gets the buffered start and then the rest', async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  const origin = await startOrigin((_req, res) => {
    void (async () => {
      res.writeHead(200, { 'cache-control': 'max-age=60' });
      res.write(CHUNKS[0]);
      res.write(CHUNKS[1]);
      await released;
      for (const c of CHUNKS.slice(2)) { await sleep(2); res.write(c); }
      res.end();
    })();
  });
  const proxy = await startProxy(origin);
  const first = streamGet(`${proxy.url}/late`);
  await first.firstChunk;
  const host = new URL(proxy.url).host;
  await until(() => (proxy.cache.inFlight(host, '/late')?.bytes ?? 0) >= CHUNKS[0]!.length + CHUNKS[1]!.length);
  const late = streamGet(`${proxy.url}/late`);
  await until(() => proxy.cache.inFlight(host, '/late')?.listeners === 2);
  release();
  assert.equal(await first.body, FULL);
  assert.equal(await late.body, FULL);
  assert.equal(origin.hits, 1);
  await proxy.close();
  await origin.close();
});

test('waiters coalesced on an uncacheable answer each refetch it, and the key becomes hit-for-miss', async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  const origin = await startOrigin((_req, res, n) => {
    void (async () => {
      if (n === 1) await released;
      res.writeHead(200, { 'cache-control': 'private', 'content-type': 'text/plain' });
      res.end(`answer ${n}`);
    })();
  });
  const proxy = await startProxy(origin, { hitForMissSec: 30 });
  const host = new URL(proxy.url).host;
  const replies = [get(proxy.url, '/me'), get(proxy.url, '/me'), get(proxy.url, '/me')];
  await until(() => proxy.cache.inFlight(host, '/me')?.listeners === 3);
  release();
  const bodies = (await Promise.all(replies)).map((r) => r.body).sort();
  // The first client got the first answer; the two waiters each got an answer of their own.
  assert.equal(origin.hits, 3);
  assert.deepEqual(new Set(bodies).size, 3);
  assert.ok(bodies.includes('answer 1'));
  // Hit-for-miss: concurrent requests now go to the origin in parallel, without queueing.
  const before = origin.hits;
  const parallel = await Promise.all([get(proxy.url, '/me'), get(proxy.url, '/me')]);
  assert.equal(origin.hits, before + 2);
  for (const r of parallel) assert.equal(r.headers['x-cache'], 'MISS');
  assert.equal(proxy.cache.stats().hitForMiss, 2);
  await proxy.close();
  await origin.close();
});

test('hit-for-miss lasts its configured time, and a key that turns cacheable is cached again', async () => {
  let cacheable = false;
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': cacheable ? 'max-age=60' : 'no-store' });
    res.end('v');
  });
  const proxy = await startProxy(origin, { hitForMissSec: 5 });
  await get(proxy.url, '/flip');
  await get(proxy.url, '/flip');
  assert.equal(proxy.cache.stats().hitForMiss, 1);
  proxy.clock.advance(6);
  await get(proxy.url, '/flip');
  // The marker ran out: that request was an ordinary (coalescing) miss, which marked the key again.
  assert.equal(proxy.cache.stats().hitForMiss, 1);
  cacheable = true;
  // During hit-for-miss a cacheable answer is still stored (hit-for-miss, not hit-for-pass).
  const r = await get(proxy.url, '/flip');
  assert.equal(r.headers['x-cache'], 'MISS');
  assert.equal(proxy.cache.stats().hitForMiss, 2);
  const h = await get(proxy.url, '/flip');
  assert.equal(h.headers['x-cache'], 'HIT');
  assert.equal(origin.hits, 4);
  await proxy.close();
  await origin.close();
});

test('a body larger than the object limit without Content-Length streams through but is not stored', async () => {
  const big = 'y'.repeat(64 * 1024);
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    for (let i = 0; i < 4; i++) res.write(big);
    res.end();
  });
  const proxy = await startProxy(origin, { maxObjectBytes: 100 * 1024 });
  const a = await get(proxy.url, '/huge');
  assert.equal(a.status, 200);
  assert.equal(a.raw.length, 4 * big.length);
  const b = await get(proxy.url, '/huge');
  assert.equal(b.raw.length, 4 * big.length);
  assert.equal(b.headers['x-cache'], 'MISS');
  assert.equal(origin.hits, 2);
  assert.equal(proxy.cache.stats().objects, 0);
  await proxy.close();
  await origin.close();
});

test('a body larger than the object limit with Content-Length is shared by coalesced clients but not stored', async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  const body = 'z'.repeat(50_000);
  const origin = await startOrigin((_req, res) => {
    void (async () => {
      await released;
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(body.length) });
      res.end(body);
    })();
  });
  const proxy = await startProxy(origin, { maxObjectBytes: 10_000 });
  const host = new URL(proxy.url).host;
  const replies = [get(proxy.url, '/cl'), get(proxy.url, '/cl')];
  await until(() => proxy.cache.inFlight(host, '/cl')?.listeners === 2);
  release();
  for (const r of await Promise.all(replies)) assert.equal(r.body, body);
  assert.equal(origin.hits, 1);
  assert.equal(proxy.cache.stats().objects, 0);
  await proxy.close();
  await origin.close();
});

test('an origin body that breaks off never becomes a cached object', async () => {
  const origin = await startOrigin((_req, res, n) => {
    if (n === 1) {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '1000' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '4' });
    res.end('full');
  });
  const proxy = await startProxy(origin);
  await assert.rejects(get(proxy.url, '/broken'));
  assert.equal(proxy.cache.stats().objects, 0);
  const r = await get(proxy.url, '/broken');
  assert.equal(r.body, 'full');
  assert.equal(r.headers['x-cache'], 'MISS');
  assert.equal(origin.hits, 2);
  await proxy.close();
  await origin.close();
});
