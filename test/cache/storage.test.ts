// Storage over loopback HTTP: byte budget with LRU eviction, namespaces with their own quotas.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Storage } from '../../src/cache/index.ts';
import { get, startOrigin, startProxy, type TestOrigin } from './helpers.ts';

const BODY = 'b'.repeat(1000);

async function sizedOrigin(): Promise<TestOrigin> {
  return startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': String(BODY.length) });
    res.end(BODY);
  });
}

/** Storage bytes one object of this origin takes (paths of equal length). */
async function objectSize(origin: TestOrigin): Promise<number> {
  const probe = await startProxy(origin);
  await get(probe.url, '/a');
  const size = probe.cache.stats().bytes;
  await probe.close();
  return size;
}

test('evicts the least recently used object when the byte budget is exceeded', async () => {
  const origin = await sizedOrigin();
  const size = await objectSize(origin);
  const proxy = await startProxy(origin, { memoryBytes: Math.floor(3.5 * size) });
  for (const p of ['/a', '/b', '/c']) await get(proxy.url, p);
  assert.equal(proxy.cache.stats().objects, 3);
  proxy.clock.advance(2);
  assert.equal((await get(proxy.url, '/a')).headers['x-cache'], 'HIT');
  await get(proxy.url, '/d');
  assert.equal(proxy.cache.stats().evictions, 1);
  assert.equal(proxy.cache.stats().objects, 3);
  assert.ok(proxy.cache.stats().bytes <= 3.5 * size);
  for (const p of ['/a', '/c', '/d']) assert.equal((await get(proxy.url, p)).headers['x-cache'], 'HIT', p);
  assert.equal((await get(proxy.url, '/b')).headers['x-cache'], 'MISS');
  await proxy.close();
  await origin.close();
});

test('each namespace evicts within its own quota without touching another namespace', async () => {
  const origin = await sizedOrigin();
  const size = await objectSize(origin);
  const storage = new Storage({ maxBytes: 100 * size });
  const small = await startProxy(origin, { storage, namespace: 'small', namespaceMaxBytes: Math.floor(2.5 * size) });
  const large = await startProxy(origin, { storage, namespace: 'large' });
  for (const p of ['/a', '/b', '/c']) await get(large.url, p);
  for (const p of ['/a', '/b', '/c']) await get(small.url, p);
  assert.equal(small.cache.stats().objects, 2);
  assert.equal(large.cache.stats().objects, 3);
  assert.equal(storage.objects, 5);
  assert.equal((await get(small.url, '/a')).headers['x-cache'], 'MISS');
  for (const p of ['/a', '/b', '/c']) assert.equal((await get(large.url, p)).headers['x-cache'], 'HIT');
  await small.close();
  await large.close();
  await origin.close();
});

test('the global budget evicts the oldest object across namespaces', async () => {
  const origin = await sizedOrigin();
  const size = await objectSize(origin);
  const storage = new Storage({ maxBytes: Math.floor(3.5 * size) });
  const one = await startProxy(origin, { storage, namespace: 'one' });
  const two = await startProxy(origin, { storage, namespace: 'two' });
  two.clock.t = one.clock.t + 10_000;
  await get(one.url, '/a');
  await get(two.url, '/a');
  await get(two.url, '/b');
  await get(two.url, '/c');
  assert.equal(storage.objects, 3);
  assert.equal(one.cache.stats().objects, 0);
  assert.equal(two.cache.stats().objects, 3);
  await one.close();
  await two.close();
  await origin.close();
});
