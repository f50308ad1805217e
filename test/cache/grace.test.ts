// Grace, keep and revalidation: the Varnish object lifetime (ttl + grace + keep) over loopback HTTP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get, httpDate, startOrigin, startProxy, until } from './helpers.ts';

test('serves stale within grace while one background fetch refreshes', async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  const origin = await startOrigin((_req, res, n) => {
    void (async () => {
      if (n === 2) await released;
      res.writeHead(200, { 'cache-control': 'max-age=10' });
      res.end(`v${n}`);
    })();
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 10 });
  assert.equal((await get(proxy.url, '/g')).body, 'v1');
  proxy.clock.advance(15);
  const stale = await Promise.all(Array.from({ length: 5 }, () => get(proxy.url, '/g')));
  for (const r of stale) {
    assert.equal(r.headers['x-cache'], 'STALE');
    assert.equal(r.body, 'v1');
    assert.equal(r.headers.age, '15');
  }
  // Five stale deliveries, one refresh in flight.
  assert.equal(origin.hits, 2);
  assert.equal(proxy.cache.stats().backgroundFetches, 1);
  release();
  await until(() => proxy.cache.inFlight(new URL(proxy.url).host, '/g') === undefined);
  const fresh = await get(proxy.url, '/g');
  assert.equal(fresh.headers['x-cache'], 'HIT');
  assert.equal(fresh.body, 'v2');
  assert.equal(origin.hits, 2);
  assert.equal(proxy.cache.stats().staleHits, 5);
  await proxy.close();
  await origin.close();
});

test('past grace a stale object is not served; the request waits for the origin', async () => {
  const origin = await startOrigin((_req, res, n) => {
    res.writeHead(200, { 'cache-control': 'max-age=10' });
    res.end(`v${n}`);
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 5, defaultKeepSec: 0 });
  await get(proxy.url, '/pg');
  proxy.clock.advance(16);
  const r = await get(proxy.url, '/pg');
  assert.equal(r.headers['x-cache'], 'MISS');
  assert.equal(r.body, 'v2');
  await proxy.close();
  await origin.close();
});

test('revalidates a kept object with If-None-Match and a 304 refreshes its headers and freshness', async () => {
  const origin = await startOrigin((req, res) => {
    if (req.headers['if-none-match'] === '"v1"') {
      res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=20', 'x-version': '2' });
      res.end();
      return;
    }
    res.writeHead(200, { etag: '"v1"', 'cache-control': 'max-age=10', 'x-version': '1', 'content-type': 'text/plain' });
    res.end('kept body');
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 0, defaultKeepSec: 60 });
  await get(proxy.url, '/k');
  proxy.clock.advance(15);
  const r = await get(proxy.url, '/k');
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-cache'], 'REVALIDATED');
  assert.equal(r.headers['x-version'], '2');
  assert.equal(r.headers['cache-control'], 'max-age=20');
  assert.equal(r.headers['content-type'], 'text/plain');
  assert.equal(r.headers['content-length'], '9');
  assert.equal(r.headers.age, '0');
  assert.equal(r.body, 'kept body');
  assert.equal(origin.requests[1]?.headers['if-none-match'], '"v1"');
  assert.equal(proxy.cache.stats().revalidations, 1);
  proxy.clock.advance(19);
  const hit = await get(proxy.url, '/k');
  assert.equal(hit.headers['x-cache'], 'HIT');
  assert.equal(hit.headers['x-version'], '2');
  assert.equal(hit.headers.age, '19');
  assert.equal(origin.hits, 2);
  await proxy.close();
  await origin.close();
});

test('revalidates with If-Modified-Since when the object has only Last-Modified', async () => {
  const lm = httpDate(Date.now() - 3600_000);
  const origin = await startOrigin((req, res) => {
    if (req.headers['if-modified-since'] === lm) { res.writeHead(304); res.end(); return; }
    res.writeHead(200, { 'last-modified': lm, 'cache-control': 'max-age=10' });
    res.end('lm body');
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 0, defaultKeepSec: 60 });
  await get(proxy.url, '/ims');
  proxy.clock.advance(12);
  const r = await get(proxy.url, '/ims');
  assert.equal(r.headers['x-cache'], 'REVALIDATED');
  assert.equal(r.body, 'lm body');
  assert.equal(origin.requests[1]?.headers['if-modified-since'], lm);
  await proxy.close();
  await origin.close();
});

test('a 200 answer to a revalidation replaces the kept object', async () => {
  const origin = await startOrigin((_req, res, n) => {
    res.writeHead(200, { etag: `"v${n}"`, 'cache-control': 'max-age=10' });
    res.end(`body ${n}`);
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 0, defaultKeepSec: 60 });
  await get(proxy.url, '/rep');
  proxy.clock.advance(12);
  const r = await get(proxy.url, '/rep');
  assert.equal(r.headers['x-cache'], 'MISS');
  assert.equal(r.body, 'body 2');
  assert.equal((await get(proxy.url, '/rep')).body, 'body 2');
  assert.equal(proxy.cache.stats().objects, 1);
  await proxy.close();
  await origin.close();
});

test('drops an object once ttl + grace + keep have passed', async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { etag: '"d"', 'cache-control': 'max-age=10' });
    res.end('d');
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 5, defaultKeepSec: 20 });
  await get(proxy.url, '/drop');
  proxy.clock.advance(34);
  proxy.cache.lurk();
  assert.equal(proxy.cache.stats().objects, 1);
  proxy.clock.advance(2);
  proxy.cache.lurk();
  assert.equal(proxy.cache.stats().objects, 0);
  await proxy.close();
  await origin.close();
});
