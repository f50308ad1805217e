// The origin client seen through the proxy: keep-alive, 502/504 with a reason, timeouts, health
// checks, and stale objects standing in for a failing or sick origin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Origin } from '../../src/cache/index.ts';
import { deadOrigin, get, startOrigin, startProxy, until } from './helpers.ts';

test('reuses one keep-alive connection to the origin for sequential misses', async () => {
  const origin = await startOrigin((_req, res) => { res.writeHead(200, { 'content-length': '2' }); res.end('ok'); });
  const proxy = await startProxy(origin);
  for (let i = 0; i < 5; i++) assert.equal((await get(proxy.url, `/ka${i}`)).body, 'ok');
  assert.equal(origin.hits, 5);
  assert.equal(origin.connections, 1);
  await proxy.close();
  await origin.close();
});

test('answers 502 with a plain-text reason when the origin refuses connections', async () => {
  const proxy = await startProxy(await deadOrigin());
  const r = await get(proxy.url, '/x');
  assert.equal(r.status, 502);
  assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(r.body, 'origin connection refused\n');
  const p = await get(proxy.url, '/x', { 'cache-control': 'no-store' });
  assert.equal(p.status, 502);
  assert.equal(p.headers['x-cache'], 'PASS');
  await proxy.close();
});

test('answers 504 when the origin sends no response head before the first-byte timeout', async () => {
  const origin = await startOrigin(() => { /* never answers */ });
  const proxy = await startProxy('unused', { origin: { url: origin.url, headersTimeoutMs: 150 } });
  const started = Date.now();
  const r = await get(proxy.url, '/slow');
  assert.equal(r.status, 504);
  assert.equal(r.body, 'origin response timeout\n');
  assert.ok(Date.now() - started < 2000);
  await proxy.close();
  await origin.close();
});

test('cuts a response whose origin body stalls past the idle timeout, and stores nothing', async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '100' });
    res.write('first bytes');
  });
  const proxy = await startProxy('unused', { origin: { url: origin.url, bodyTimeoutMs: 150 } });
  await assert.rejects(get(proxy.url, '/stall'));
  assert.equal(proxy.cache.stats().objects, 0);
  assert.equal(proxy.cache.stats().fetchErrors, 1);
  await proxy.close();
  await origin.close();
});

test('serves a stale object within grace when the origin is down', async () => {
  let up = true;
  const origin = await startOrigin((_req, res) => {
    if (!up) { res.socket?.destroy(); return; }
    res.writeHead(200, { 'cache-control': 'max-age=10' });
    res.end('cached');
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 30 });
  await get(proxy.url, '/down');
  up = false;
  proxy.clock.advance(20);
  const r = await get(proxy.url, '/down');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'cached');
  assert.equal(r.headers['x-cache'], 'STALE');
  await until(() => proxy.cache.stats().fetchErrors === 1);
  // The failed refresh left the stale object in place.
  assert.equal((await get(proxy.url, '/down')).body, 'cached');
  await proxy.close();
  await origin.close();
});

test('serves a stale object on a connection error inside stale-if-error, and 502 after it', async () => {
  let up = true;
  const origin = await startOrigin((_req, res) => {
    if (!up) { res.socket?.destroy(); return; }
    res.writeHead(200, { 'cache-control': 'max-age=10, stale-if-error=100', etag: '"x"' });
    res.end('cached');
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 0, defaultKeepSec: 1000 });
  await get(proxy.url, '/sie');
  up = false;
  proxy.clock.advance(50);
  const r = await get(proxy.url, '/sie');
  assert.equal(r.headers['x-cache'], 'STALE');
  assert.equal(r.body, 'cached');
  proxy.clock.advance(100);
  const after = await get(proxy.url, '/sie');
  assert.equal(after.status, 502);
  assert.equal(after.body, 'origin connection reset\n');
  await proxy.close();
  await origin.close();
});

test('the periodic health check marks a failing origin sick, and a sick origin serves stale without being asked', async () => {
  let healthy = true;
  const origin = await startOrigin((req, res) => {
    if (req.url === '/health') { res.writeHead(healthy ? 200 : 503); res.end(); return; }
    res.writeHead(200, { 'cache-control': 'max-age=10, stale-if-error=100', etag: '"h"' });
    res.end('content');
  });
  const proxy = await startProxy('unused', {
    origin: { url: origin.url, healthCheck: { path: '/health', intervalMs: 20, threshold: 2 } },
    defaultGraceSec: 0, defaultKeepSec: 1000,
  });
  const backend = proxy.cache.backend as Origin;
  await get(proxy.url, '/page');
  healthy = false;
  await until(() => !backend.healthy, 3000, 'origin marked sick');
  proxy.clock.advance(30);
  const before = origin.requests.filter((r) => r.url === '/page').length;
  const r = await get(proxy.url, '/page');
  assert.equal(r.headers['x-cache'], 'STALE');
  assert.equal(r.body, 'content');
  assert.equal(origin.requests.filter((q) => q.url === '/page').length, before);
  healthy = true;
  await until(() => backend.healthy, 3000, 'origin healthy again');
  const fresh = await get(proxy.url, '/page');
  assert.equal(fresh.headers['x-cache'], 'MISS');
  await proxy.close();
  await origin.close();
});
