// The cache engine over shared storage (src/cache/shared-storage.ts), as the shards of `serve` use
// it: two caches of one namespace (two shards, here on one thread; test/server/shards.test.ts
// runs real shard threads) see one set of objects — an object either fetched is a hit on the
// other, and purges, tag purges, bans and hit-for-miss markers made through one hold for both. A
// body being written to a slow client stays intact while its record is purged and its memory
// is wanted for new objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { SharedStorage } from '../../src/cache/index.ts';
import { get as getAny, startOrigin, startProxy, type Reply, type TestProxy } from './helpers.ts';

/** A request for site.test, as every shard of `serve` sees the same Host. */
const get = (base: string, path: string): Promise<Reply> => getAny(base, path, { host: 'site.test' });

/** Two caches of namespace `site` in one shared storage: shard A and shard B. */
async function twoShards(origin: Parameters<typeof startProxy>[0], maxBytes = 16 * 2 ** 20): Promise<[TestProxy, TestProxy]> {
  const storage = SharedStorage.create(maxBytes);
  const a = await startProxy(origin, { storage, namespace: 'site' });
  const b = await startProxy(origin, { storage, namespace: 'site' });
  return [a, b];
}

test('an object fetched through one cache is a hit on the other; a purge through either holds for both', async () => {
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': `all ${req.url!.slice(1)}` });
    res.end(`body of ${req.url}`);
  });
  const [a, b] = await twoShards(origin);
  assert.equal((await get(a.url, '/x')).headers['x-cache'], 'MISS');
  const hit = await get(b.url, '/x');
  assert.equal(hit.headers['x-cache'], 'HIT');
  assert.equal(hit.body, 'body of /x');
  assert.equal(origin.requests.length, 1);
  assert.equal(b.cache.purge('http://site.test/x'), 1);
  assert.equal((await get(a.url, '/x')).headers['x-cache'], 'MISS');
  assert.equal(b.cache.purgeTag('x'), 1);
  assert.equal((await get(b.url, '/x')).headers['x-cache'], 'MISS');
  assert.equal((await get(a.url, '/x')).headers['x-cache'], 'HIT');
  assert.equal(a.cache.stats().objects, 1);
  assert.equal(b.cache.stats().objects, 1);
  await Promise.all([a.close(), b.close(), origin.close()]);
});

test('a ban added to both caches drops an object either of them stored, at lookup and by the lurker', async () => {
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': req.url!.endsWith('.png') ? 'image/png' : 'text/plain' });
    res.end('x');
  });
  const [a, b] = await twoShards(origin);
  await get(a.url, '/img/1.png');
  await get(a.url, '/doc');
  // serve adds a ban to every shard: the same list, in the same order.
  for (const c of [a, b]) c.cache.ban('obj.http.content-type ~ png');
  b.cache.lurk();
  assert.equal(b.cache.stats().objects, 1);
  assert.equal((await get(a.url, '/img/1.png')).headers['x-cache'], 'MISS');
  assert.equal((await get(b.url, '/doc')).headers['x-cache'], 'HIT');
  for (const c of [a, b]) c.cache.ban('req.url ~ ^/doc');
  assert.equal((await get(a.url, '/doc')).headers['x-cache'], 'MISS');
  assert.equal((await get(b.url, '/doc')).headers['x-cache'], 'HIT');
  await Promise.all([a.close(), b.close(), origin.close()]);
});

test('a hit-for-miss marker made by one cache sends the other straight to the origin', async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'private' });
    res.end('mine');
  });
  const [a, b] = await twoShards(origin);
  await get(a.url, '/p');
  await get(b.url, '/p');
  assert.equal(b.cache.stats().hitForMiss, 1);
  assert.equal(b.cache.stats().objects, 0);
  await Promise.all([a.close(), b.close(), origin.close()]);
});

test('a body a slow client is still reading stays intact while its record is purged and its memory reused', async () => {
  const BIG = 4 * 2 ** 20;
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': String(BIG) });
    res.end(Buffer.alloc(BIG, req.url!.charCodeAt(1)));
  });
  // Room for two such bodies: every new one needs the memory of an old one.
  const [a, b] = await twoShards(origin, 2 * BIG + 2 ** 20);
  await get(a.url, '/a');
  const received: Buffer[] = [];
  let paused = true;
  const done = new Promise<Buffer>((resolve, reject) => {
    const req = httpRequest(`${a.url}/a`, { agent: false, headers: { host: 'site.test' } }, (res) => {
      assert.equal(res.headers['x-cache'], 'HIT');
      res.pause();
      res.on('data', (c: Buffer) => received.push(c));
      res.on('end', () => resolve(Buffer.concat(received)));
      res.on('error', reject);
      const resume = setInterval(() => { if (!paused) { clearInterval(resume); res.resume(); } }, 10);
    });
    req.on('error', reject);
    req.end();
  });
  // Let the server hand its write to the socket, then free the record and fill the store anew.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(b.cache.purge('/a'), 1);
  // A's sweep lets go of the objects it made of records gone: only the response still holds /a.
  a.cache.lurk();
  for (const p of ['/b', '/c', '/d', '/e']) await get(b.url, p);
  paused = false;
  const body = await done;
  assert.equal(body.length, BIG);
  assert.ok(body.every((x) => x === 'a'.charCodeAt(0)), 'every byte is the one that was stored');
  await Promise.all([a.close(), b.close(), origin.close()]);
});

test('the quota holds for both caches together', async () => {
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600' });
    res.end(Buffer.alloc(10_000, req.url!.length));
  });
  const storage = SharedStorage.create(2 ** 20);
  const a = await startProxy(origin, { storage, namespace: 'small', namespaceMaxBytes: 50_000 });
  const b = await startProxy(origin, { storage, namespace: 'small', namespaceMaxBytes: 50_000 });
  for (let i = 0; i < 10; i++) await get(i % 2 === 0 ? a.url : b.url, `/o/${i}`);
  const stats = a.cache.stats();
  assert.ok(stats.bytes <= 50_000, `${stats.bytes} bytes`);
  assert.equal(stats.objects, 4);
  assert.equal(b.cache.stats().objects, 4);
  assert.equal((await get(a.url, '/o/9')).headers['x-cache'], 'HIT');
  assert.equal((await get(b.url, '/o/0')).headers['x-cache'], 'MISS');
  await Promise.all([a.close(), b.close(), origin.close()]);
});
