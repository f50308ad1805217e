// The raw fast path for fresh hits: it answers exactly what the full path would, and only the
// plain cases; everything else (variants, stale objects, directives, conditionals) goes the long
// way. The cache counts fast hits apart, which is how these tests tell the two paths apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { get, send, startOrigin, startProxy } from './helpers.ts';


test('a plain fresh hit takes the fast path with the same status, headers and body as the full path', async () => {
  const origin = await startOrigin((_req, res) => { res.writeHead(200, { 'cache-control': 'max-age=60', etag: '"v1"', 'content-type': 'text/plain' }); res.end('hello'); });
  const proxy = await startProxy(origin);
  const miss = await get(proxy.url, '/a');
  assert.equal(miss.headers['x-cache'], 'MISS');
  proxy.clock.advance(3);
  const fast = await get(proxy.url, '/a');
  assert.equal(proxy.cache.stats().fastHits, 1, 'plain hit via the fast path');
  const full = await get(proxy.url, '/a', { pragma: 'x-anything' });
  assert.equal(proxy.cache.stats().fastHits, 1, 'a request with Pragma goes the full way');
  const strip = (h: Record<string, unknown>): Record<string, unknown> => {
    const { connection: _c, 'keep-alive': _k, ...rest } = h;
    return rest;
  };
  assert.deepEqual(strip(fast.headers), strip(full.headers));
  assert.equal(fast.headers.age, '3');
  assert.equal(fast.headers['x-cache'], 'HIT');
  assert.equal(fast.body, 'hello');
  assert.equal(proxy.cache.stats().hits, 2);
  await proxy.close();
  await origin.close();
});

test("a hot object's fast hits say their own Age: the head they share within a second is made again when it changes", async () => {
  const origin = await startOrigin((_req, res) => { res.writeHead(200, { 'cache-control': 'max-age=60' }); res.end('hot'); });
  const proxy = await startProxy(origin);
  await get(proxy.url, '/hot');
  // Whole seconds only: where the object's age starts within a second depends on the wall clock
  // (its Date field has whole seconds), so the test asserts ages relative to the first.
  const ages: number[] = [];
  for (const step of [1, 0, 0, 1, 2, 0]) {
    proxy.clock.advance(step);
    const hit = await get(proxy.url, '/hot');
    assert.equal(hit.body, 'hot');
    assert.equal(hit.headers['x-cache'], 'HIT');
    ages.push(Number(hit.headers.age));
  }
  const first = ages[0]!;
  assert.ok(first >= 1, `age ${first} after a second`);
  assert.deepEqual(ages, [first, first, first, first + 1, first + 3, first + 3]);
  const head = await send(`${proxy.url}/hot`, { method: 'HEAD' });
  assert.equal(head.headers.age, String(first + 3));
  assert.equal(head.body, '');
  assert.equal(proxy.cache.stats().fastHits, 7);
  await proxy.close();
  await origin.close();
});

test('a HEAD on a fresh object takes the fast path and gets the headers without the body', async () => {
  const origin = await startOrigin((_req, res) => { res.writeHead(200, { 'cache-control': 'max-age=60' }); res.end('0123456789'); });
  const proxy = await startProxy(origin);
  await get(proxy.url, '/h');
  const head = await send(`${proxy.url}/h`, { method: 'HEAD' });
  assert.equal(proxy.cache.stats().fastHits, 1);
  assert.equal(head.headers['content-length'], '10');
  assert.equal(head.body, '');
  await proxy.close();
  await origin.close();
});

test('variants, stale objects, conditionals and ranges take the full path', async () => {
  const origin = await startOrigin((req, res) => {
    if (req.url === '/vary') res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'accept-language' });
    else res.writeHead(200, { 'cache-control': 'max-age=10, stale-while-revalidate=60', etag: '"e"' });
    res.end('body');
  });
  const proxy = await startProxy(origin);
  await get(proxy.url, '/vary');
  const varied = await get(proxy.url, '/vary');
  assert.equal(varied.headers['x-cache'], 'HIT');
  await get(proxy.url, '/s');
  const conditional = await get(proxy.url, '/s', { 'if-none-match': '"e"' });
  assert.equal(conditional.status, 304);
  const range = await get(proxy.url, '/s', { range: 'bytes=0-1' });
  assert.equal(range.status, 206);
  assert.equal(range.body, 'bo');
  proxy.clock.advance(20);
  const stale = await get(proxy.url, '/s');
  assert.equal(stale.headers['x-cache'], 'STALE');
  assert.equal(proxy.cache.stats().fastHits, 0, 'none of these took the fast path');
  await proxy.close();
  await origin.close();
});

test('a purged or banned object is never served by the fast path', async () => {
  let n = 0;
  const origin = await startOrigin((_req, res) => { res.writeHead(200, { 'cache-control': 'max-age=60' }); res.end(`v${++n}`); });
  const proxy = await startProxy(origin);
  await get(proxy.url, '/p');
  assert.equal((await get(proxy.url, '/p')).body, 'v1');
  proxy.cache.ban('req.url ~ ^/p');
  assert.equal((await get(proxy.url, '/p')).body, 'v2');
  proxy.cache.purge('/p');
  assert.equal((await get(proxy.url, '/p')).body, 'v3');
  await proxy.close();
  await origin.close();
});

test('pipelined fast hits to a client that reads late all arrive, in order, after backpressure', { timeout: 10_000 }, async () => {
  const big = Buffer.alloc(2 * 1024 * 1024, 'b');
  const origin = await startOrigin((_req, res) => { res.writeHead(200, { 'cache-control': 'max-age=60' }); res.end(big); });
  const proxy = await startProxy(origin);
  await get(proxy.url, '/big');
  const { port } = new URL(proxy.url);
  const socket = connect(Number(port), '127.0.0.1');
  socket.pause();
  await new Promise((r) => socket.once('connect', r));
  socket.write(`GET /big HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`.repeat(8));
  await new Promise((r) => setTimeout(r, 300)); // the server's writes back up meanwhile
  const chunks: Buffer[] = [];
  let total = 0;
  const expected = 8 * big.length;
  await new Promise<void>((resolve) => {
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      total += c.length;
      if (total >= expected) resolve();
    });
    socket.resume();
  });
  socket.destroy();
  const text = Buffer.concat(chunks).toString('latin1');
  assert.equal(text.split('HTTP/1.1 200 OK\r\n').length - 1, 8);
  assert.equal(proxy.cache.stats().fastHits, 8);
  await proxy.close();
  await origin.close();
});
