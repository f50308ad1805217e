// Header handling between client, cache and origin: hop-by-hop removal both ways, Via, X-Cache,
// Host forwarding, pass-through of request bodies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get, send, startOrigin, startProxy } from './helpers.ts';

test('removes hop-by-hop fields, and those Connection names, in both directions', async () => {
  const origin = await startOrigin((_req, res) => {
    res.setHeader('connection', 'x-resp-hop');
    res.writeHead(200, {
      'cache-control': 'max-age=60', 'x-resp-hop': 'secret', 'proxy-authenticate': 'Basic', 'x-end-to-end': 'yes', 'keep-alive': 'timeout=99',
    });
    res.end('h');
  });
  const proxy = await startProxy(origin);
  const miss = await get(proxy.url, '/hop', { connection: 'x-req-hop', 'x-req-hop': 'secret', 'proxy-authorization': 'Basic eA==', te: 'trailers', 'x-kept': 'k' });
  const seen = origin.requests[0]?.headers ?? {};
  assert.equal(seen['x-req-hop'], undefined);
  assert.equal(seen['proxy-authorization'], undefined);
  assert.equal(seen.te, undefined);
  assert.equal(seen['x-kept'], 'k');
  const hit = await get(proxy.url, '/hop');
  for (const r of [miss, hit]) {
    assert.equal(r.headers['x-resp-hop'], undefined);
    assert.equal(r.headers['proxy-authenticate'], undefined);
    assert.notEqual(r.headers['keep-alive'], 'timeout=99');
    assert.equal(r.headers['x-end-to-end'], 'yes');
  }
  assert.equal(hit.headers['x-cache'], 'HIT');
  await proxy.close();
  await origin.close();
});

test('a Connection header cannot strip Host or Content-Length from the forwarded request', async () => {
  const origin = await startOrigin((_req, res) => { res.writeHead(200); res.end(); });
  const proxy = await startProxy(origin);
  await send(`${proxy.url}/p`, { method: 'POST', body: 'abc', headers: { connection: 'content-length, host' } });
  assert.equal(origin.requests[0]?.headers['content-length'], '3');
  assert.equal(origin.requests[0]?.body, 'abc');
  assert.ok(origin.requests[0]?.headers.host?.startsWith('127.0.0.1:'));
  await proxy.close();
  await origin.close();
});

test('adds Via towards the origin and the client, and X-Forwarded-For towards the origin', async () => {
  const origin = await startOrigin((_req, res) => { res.writeHead(200, { 'cache-control': 'max-age=60', via: '1.1 upstream' }); res.end('v'); });
  const proxy = await startProxy(origin);
  const r = await get(proxy.url, '/via');
  assert.equal(origin.requests[0]?.headers.via, '1.1 tinyedge');
  assert.equal(origin.requests[0]?.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(r.headers.via, '1.1 upstream, 1.1 tinyedge');
  assert.equal((await get(proxy.url, '/via')).headers.via, '1.1 upstream, 1.1 tinyedge');
  await proxy.close();
  await origin.close();
});

test("forwards the client's Host header unless a Host header is configured", async () => {
  const origin = await startOrigin((req, res) => { res.writeHead(200); res.end(req.headers.host); });
  const a = await startProxy(origin);
  assert.equal((await get(a.url, '/h', { host: 'www.example.com' })).body, 'www.example.com');
  await a.close();
  const b = await startProxy(origin, { hostHeader: 'origin.internal' });
  assert.equal((await get(b.url, '/h', { host: 'www.example.com' })).body, 'origin.internal');
  await b.close();
  await origin.close();
});

test('keys the cache by Host: the same path on two hosts is two objects', async () => {
  const origin = await startOrigin((req, res) => { res.writeHead(200, { 'cache-control': 'max-age=60' }); res.end(req.headers.host); });
  const proxy = await startProxy(origin);
  assert.equal((await get(proxy.url, '/', { host: 'a.example' })).body, 'a.example');
  assert.equal((await get(proxy.url, '/', { host: 'b.example' })).body, 'b.example');
  const a = await get(proxy.url, '/', { host: 'A.EXAMPLE' });
  assert.equal(a.body, 'a.example');
  assert.equal(a.headers['x-cache'], 'HIT');
  assert.equal(origin.hits, 2);
  await proxy.close();
  await origin.close();
});

test('passes other methods through with their bodies and status, marked X-Cache: PASS', async () => {
  const origin = await startOrigin((req, res, n) => {
    res.writeHead(req.method === 'OPTIONS' ? 204 : 201, { 'cache-control': 'max-age=60' });
    res.end(req.method === 'OPTIONS' ? undefined : `${req.method} ${n}`);
  });
  const proxy = await startProxy(origin);
  const big = 'p'.repeat(200_000);
  const r = await send(`${proxy.url}/form`, { method: 'POST', body: big });
  assert.equal(r.status, 201);
  assert.equal(r.headers['x-cache'], 'PASS');
  assert.equal(origin.requests[0]?.body, big);
  const o = await send(`${proxy.url}/form`, { method: 'OPTIONS' });
  assert.equal(o.status, 204);
  // A pass never stores, whatever the response says.
  const again = await send(`${proxy.url}/form`, { method: 'POST', body: 'x' });
  assert.equal(again.body, 'POST 3');
  await proxy.close();
  await origin.close();
});
