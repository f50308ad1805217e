// Client conditionals, HEAD and byte ranges answered from stored objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get, httpDate, send, startOrigin, startProxy, type TestOrigin, type TestProxy } from './helpers.ts';

const BODY = '0123456789abcdefghij';
const LM = httpDate(Date.now() - 86400_000);

async function setup(): Promise<{ origin: TestOrigin; proxy: TestProxy; done: () => Promise<void> }> {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', etag: '"abc"', 'last-modified': LM, 'content-type': 'text/plain' });
    res.end(BODY);
  });
  const proxy = await startProxy(origin);
  await get(proxy.url, '/o');
  return { origin, proxy, done: async () => { await proxy.close(); await origin.close(); } };
}

test('answers If-None-Match with 304 from cache using the weak comparison', async () => {
  const { origin, proxy, done } = await setup();
  proxy.clock.advance(3);
  for (const inm of ['"abc"', 'W/"abc"', '"zzz", "abc"', '*']) {
    const r = await get(proxy.url, '/o', { 'if-none-match': inm });
    assert.equal(r.status, 304, inm);
    assert.equal(r.body, '');
    assert.equal(r.headers.etag, '"abc"');
    assert.equal(r.headers['cache-control'], 'max-age=60');
    assert.equal(r.headers.age, '3');
    assert.equal(r.headers['x-cache'], 'HIT');
  }
  const other = await get(proxy.url, '/o', { 'if-none-match': '"zzz"' });
  assert.equal(other.status, 200);
  assert.equal(other.body, BODY);
  assert.equal(origin.hits, 1);
  await done();
});

test('answers If-Modified-Since with 304 when not modified since, 200 otherwise', async () => {
  const { origin, proxy, done } = await setup();
  assert.equal((await get(proxy.url, '/o', { 'if-modified-since': httpDate(Date.now()) })).status, 304);
  assert.equal((await get(proxy.url, '/o', { 'if-modified-since': LM })).status, 304);
  assert.equal((await get(proxy.url, '/o', { 'if-modified-since': httpDate(Date.now() - 2 * 86400_000) })).status, 200);
  // If-None-Match takes precedence over If-Modified-Since.
  assert.equal((await get(proxy.url, '/o', { 'if-none-match': '"nope"', 'if-modified-since': httpDate(Date.now()) })).status, 200);
  assert.equal(origin.hits, 1);
  await done();
});

test('answers a failed If-Match with 412', async () => {
  const { proxy, done } = await setup();
  assert.equal((await get(proxy.url, '/o', { 'if-match': '"other"' })).status, 412);
  assert.equal((await get(proxy.url, '/o', { 'if-match': '"abc"' })).status, 200);
  await done();
});

test('answers a client conditional on a miss with 304 once the origin response head arrives', async () => {
  const origin = await startOrigin((req, res) => {
    // The cache fills with an unconditional request.
    assert.equal(req.headers['if-none-match'], undefined);
    res.writeHead(200, { 'cache-control': 'max-age=60', etag: '"m"' });
    res.end('miss body');
  });
  const proxy = await startProxy(origin);
  const r = await get(proxy.url, '/cm', { 'if-none-match': '"m"' });
  assert.equal(r.status, 304);
  assert.equal(r.headers['x-cache'], 'MISS');
  assert.equal((await get(proxy.url, '/cm')).body, 'miss body');
  assert.equal(origin.hits, 1);
  await proxy.close();
  await origin.close();
});

test('serves HEAD from a cached GET with the GET headers and no body', async () => {
  const { origin, proxy, done } = await setup();
  const r = await send(`${proxy.url}/o`, { method: 'HEAD' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-length'], String(BODY.length));
  assert.equal(r.headers['x-cache'], 'HIT');
  assert.equal(r.body, '');
  assert.equal(origin.hits, 1);
  await done();
});

test('a HEAD miss fetches GET from the origin and caches it for later GETs', async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '5' });
    res.end('hello');
  });
  const proxy = await startProxy(origin);
  const h = await send(`${proxy.url}/hm`, { method: 'HEAD' });
  assert.equal(h.status, 200);
  assert.equal(h.body, '');
  assert.equal(origin.requests[0]?.method, 'GET');
  const g = await get(proxy.url, '/hm');
  assert.equal(g.headers['x-cache'], 'HIT');
  assert.equal(g.body, 'hello');
  assert.equal(origin.hits, 1);
  await proxy.close();
  await origin.close();
});

test('answers a single byte range with 206 and Content-Range', async () => {
  const { proxy, done } = await setup();
  const r = await get(proxy.url, '/o', { range: 'bytes=2-5' });
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], `bytes 2-5/${BODY.length}`);
  assert.equal(r.headers['content-length'], '4');
  assert.equal(r.body, '2345');
  assert.equal(r.headers['x-cache'], 'HIT');
  const suffix = await get(proxy.url, '/o', { range: 'bytes=-3' });
  assert.equal(suffix.status, 206);
  assert.equal(suffix.body, 'hij');
  assert.equal(suffix.headers['content-range'], `bytes 17-19/${BODY.length}`);
  const open = await get(proxy.url, '/o', { range: 'bytes=15-' });
  assert.equal(open.body, 'fghij');
  const clipped = await get(proxy.url, '/o', { range: 'bytes=18-1000' });
  assert.equal(clipped.headers['content-range'], `bytes 18-19/${BODY.length}`);
  await done();
});

test('answers an unsatisfiable range with 416 and Content-Range bytes */length', async () => {
  const { proxy, done } = await setup();
  const r = await get(proxy.url, '/o', { range: 'bytes=100-200' });
  assert.equal(r.status, 416);
  assert.equal(r.headers['content-range'], `bytes */${BODY.length}`);
  await done();
});

test('answers several ranges, or a range with a stale If-Range, with the full 200', async () => {
  const { proxy, done } = await setup();
  const multi = await get(proxy.url, '/o', { range: 'bytes=0-1,5-6' });
  assert.equal(multi.status, 200);
  assert.equal(multi.body, BODY);
  const ifRange = await get(proxy.url, '/o', { range: 'bytes=0-1', 'if-range': '"old"' });
  assert.equal(ifRange.status, 200);
  const ifRangeOk = await get(proxy.url, '/o', { range: 'bytes=0-1', 'if-range': '"abc"' });
  assert.equal(ifRangeOk.status, 206);
  assert.equal(ifRangeOk.body, '01');
  await done();
});

test('a range request on a miss fetches the whole object and answers 200 with it', async () => {
  const origin = await startOrigin((req, res) => {
    assert.equal(req.headers.range, undefined);
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    res.end(BODY);
  });
  const proxy = await startProxy(origin);
  const r = await get(proxy.url, '/rm', { range: 'bytes=0-3' });
  assert.equal(r.status, 200);
  assert.equal(r.body, BODY);
  const hit = await get(proxy.url, '/rm', { range: 'bytes=0-3' });
  assert.equal(hit.status, 206);
  assert.equal(hit.body, '0123');
  await proxy.close();
  await origin.close();
});
