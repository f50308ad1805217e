// Cache-Control request and response directives (RFC 9111 §5.2) and Authorization (§3.5).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { CacheOptions } from '../../src/cache/index.ts';
import { get, startOrigin, startProxy, type TestOrigin, type TestProxy } from './helpers.ts';

async function setup(
  handler: OutgoingHttpHeaders | ((req: IncomingMessage, res: ServerResponse, n: number) => void),
  options: Partial<CacheOptions> = {},
): Promise<{ origin: TestOrigin; proxy: TestProxy; done: () => Promise<void> }> {
  const origin = await startOrigin(typeof handler === 'function' ? handler : (_req, res, n) => { res.writeHead(200, handler); res.end(`body ${n}`); });
  const proxy = await startProxy(origin, { defaultGraceSec: 0, defaultKeepSec: 0, ...options });
  return { origin, proxy, done: async () => { await proxy.close(); await origin.close(); } };
}

test('does not store a no-store response', async () => {
  const { origin, proxy, done } = await setup({ 'cache-control': 'no-store, max-age=60' });
  await get(proxy.url, '/ns');
  await get(proxy.url, '/ns');
  assert.equal(origin.hits, 2);
  assert.equal(proxy.cache.stats().objects, 0);
  await done();
});

test('does not store a private response in the shared cache', async () => {
  const { origin, proxy, done } = await setup({ 'cache-control': 'private, max-age=60' });
  await get(proxy.url, '/p');
  await get(proxy.url, '/p');
  assert.equal(origin.hits, 2);
  await done();
});

test('stores a private="field" response without that field', async () => {
  const { origin, proxy, done } = await setup({ 'cache-control': 'max-age=60, private="x-user"', 'x-user': 'alice', 'x-other': 'kept' });
  await get(proxy.url, '/pf');
  const hit = await get(proxy.url, '/pf');
  assert.equal(hit.headers['x-cache'], 'HIT');
  assert.equal(hit.headers['x-user'], undefined);
  assert.equal(hit.headers['x-other'], 'kept');
  assert.equal(origin.hits, 1);
  await done();
});

test('revalidates an unqualified no-cache response on every reuse', async () => {
  const { origin, proxy, done } = await setup((req, res) => {
    if (req.headers['if-none-match'] === '"e"') { res.writeHead(304, { etag: '"e"', 'cache-control': 'no-cache, max-age=60' }); res.end(); return; }
    res.writeHead(200, { etag: '"e"', 'cache-control': 'no-cache, max-age=60' });
    res.end('nc');
  }, { defaultKeepSec: 30 });
  await get(proxy.url, '/nc');
  const r = await get(proxy.url, '/nc');
  assert.equal(r.headers['x-cache'], 'REVALIDATED');
  assert.equal(r.body, 'nc');
  assert.equal(origin.hits, 2);
  assert.equal(origin.requests[1]?.headers['if-none-match'], '"e"');
  await done();
});

test('strips no-cache="field" fields when serving without revalidation', async () => {
  const { origin, proxy, done } = await setup({ 'cache-control': 'max-age=60, no-cache="set-token, x-debug"', 'x-debug': 'd', 'set-token': 't', 'x-keep': 'k' });
  const miss = await get(proxy.url, '/ncf');
  assert.equal(miss.headers['x-debug'], 'd');
  const hit = await get(proxy.url, '/ncf');
  assert.equal(hit.headers['x-cache'], 'HIT');
  assert.equal(hit.headers['x-debug'], undefined);
  assert.equal(hit.headers['set-token'], undefined);
  assert.equal(hit.headers['x-keep'], 'k');
  assert.equal(origin.hits, 1);
  await done();
});

for (const directive of ['must-revalidate', 'proxy-revalidate']) {
  test(`never serves a ${directive} response stale, even inside grace or when the origin fails`, async () => {
    let up = true;
    const { origin, proxy, done } = await setup((_req, res) => {
      if (!up) { res.writeHead(503); res.end('down'); return; }
      res.writeHead(200, { 'cache-control': `max-age=10, ${directive}, stale-if-error=600, stale-while-revalidate=600` });
      res.end('strict');
    }, { defaultGraceSec: 100 });
    await get(proxy.url, '/mr');
    proxy.clock.advance(11);
    up = false;
    const r = await get(proxy.url, '/mr');
    assert.equal(r.status, 503);
    assert.equal(r.body, 'down');
    assert.equal(origin.hits, 2);
    await done();
  });
}

test('stale-while-revalidate sets the grace period', async () => {
  const { origin, proxy, done } = await setup((_req, res, n) => {
    res.writeHead(200, { 'cache-control': 'max-age=10, stale-while-revalidate=30' });
    res.end(`v${n}`);
  });
  await get(proxy.url, '/swr');
  proxy.clock.advance(35);
  const stale = await get(proxy.url, '/swr');
  assert.equal(stale.headers['x-cache'], 'STALE');
  assert.equal(stale.body, 'v1');
  assert.equal(stale.headers.age, '35');
  proxy.clock.advance(6);
  const past = await get(proxy.url, '/swr');
  assert.notEqual(past.headers['x-cache'], 'STALE');
  await done();
  assert.ok(origin.hits >= 2);
});

test('stale-if-error serves the stale object when the origin answers 5xx, and passes the error on after the window', async () => {
  let up = true;
  const { origin, proxy, done } = await setup((_req, res) => {
    if (!up) { res.writeHead(500, { 'content-type': 'text/plain' }); res.end('boom'); return; }
    res.writeHead(200, { 'cache-control': 'max-age=10, stale-if-error=60', etag: '"s"' });
    res.end('good');
  }, { defaultKeepSec: 600 });
  await get(proxy.url, '/sie');
  up = false;
  proxy.clock.advance(30);
  const r = await get(proxy.url, '/sie');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'good');
  assert.equal(r.headers['x-cache'], 'STALE');
  assert.equal(r.headers.age, '30');
  proxy.clock.advance(60);
  const after = await get(proxy.url, '/sie');
  assert.equal(after.status, 500);
  assert.equal(after.body, 'boom');
  assert.equal(origin.hits, 3);
  await done();
});

test('a request max-age=0 forces a fetch even for a fresh object', async () => {
  const { origin, proxy, done } = await setup({ 'cache-control': 'max-age=600' });
  await get(proxy.url, '/rmax');
  const r = await get(proxy.url, '/rmax', { 'cache-control': 'max-age=0' });
  assert.equal(r.headers['x-cache'], 'MISS');
  assert.equal(origin.hits, 2);
  proxy.clock.advance(5);
  assert.equal((await get(proxy.url, '/rmax', { 'cache-control': 'max-age=10' })).headers['x-cache'], 'HIT');
  assert.equal((await get(proxy.url, '/rmax', { 'cache-control': 'max-age=3' })).headers['x-cache'], 'MISS');
  await done();
});

test('a request max-stale accepts a stale object still in storage, within its limit', async () => {
  // The ETag and keep hold the object in storage past its ttl (no grace: only max-stale serves it).
  const { origin, proxy, done } = await setup({ 'cache-control': 'max-age=10', etag: '"ms"' }, { defaultKeepSec: 600 });
  await get(proxy.url, '/ms');
  proxy.clock.advance(20);
  const ok = await get(proxy.url, '/ms', { 'cache-control': 'max-stale=15' });
  assert.equal(ok.headers['x-cache'], 'STALE');
  assert.equal(origin.hits, 1);
  const any = await get(proxy.url, '/ms', { 'cache-control': 'max-stale' });
  assert.equal(any.headers['x-cache'], 'STALE');
  const tooOld = await get(proxy.url, '/ms', { 'cache-control': 'max-stale=5' });
  assert.equal(tooOld.headers['x-cache'], 'MISS');
  assert.equal(origin.hits, 2);
  await done();
});

test('a request min-fresh refuses an object that will not stay fresh long enough', async () => {
  const { origin, proxy, done } = await setup({ 'cache-control': 'max-age=60' });
  await get(proxy.url, '/mf');
  proxy.clock.advance(50);
  assert.equal((await get(proxy.url, '/mf', { 'cache-control': 'min-fresh=5' })).headers['x-cache'], 'HIT');
  assert.equal((await get(proxy.url, '/mf', { 'cache-control': 'min-fresh=20' })).headers['x-cache'], 'MISS');
  assert.equal(origin.hits, 2);
  await done();
});

test('a request no-cache, or Pragma: no-cache without Cache-Control, goes to the origin', async () => {
  const { origin, proxy, done } = await setup({ 'cache-control': 'max-age=600' });
  await get(proxy.url, '/rnc');
  assert.equal((await get(proxy.url, '/rnc', { 'cache-control': 'no-cache' })).headers['x-cache'], 'MISS');
  assert.equal((await get(proxy.url, '/rnc', { pragma: 'no-cache' })).headers['x-cache'], 'MISS');
  // Cache-Control present: Pragma is ignored (RFC 9111 §5.4).
  assert.equal((await get(proxy.url, '/rnc', { pragma: 'no-cache', 'cache-control': 'max-stale=1' })).headers['x-cache'], 'HIT');
  assert.equal(origin.hits, 3);
  await done();
});

test('a request no-store is answered from cache when possible but its own response is not stored', async () => {
  const { origin, proxy, done } = await setup({ 'cache-control': 'max-age=600' });
  await get(proxy.url, '/rns', { 'cache-control': 'no-store' });
  assert.equal(proxy.cache.stats().objects, 0);
  await get(proxy.url, '/rns');
  const r = await get(proxy.url, '/rns', { 'cache-control': 'no-store' });
  assert.equal(r.headers['x-cache'], 'HIT');
  assert.equal(origin.hits, 2);
  await done();
});

test('only-if-cached answers 504 when nothing usable is stored, and the object when it is', async () => {
  const { origin, proxy, done } = await setup({ 'cache-control': 'max-age=10' });
  const none = await get(proxy.url, '/oic', { 'cache-control': 'only-if-cached' });
  assert.equal(none.status, 504);
  assert.equal(origin.hits, 0);
  await get(proxy.url, '/oic');
  assert.equal((await get(proxy.url, '/oic', { 'cache-control': 'only-if-cached' })).headers['x-cache'], 'HIT');
  proxy.clock.advance(20);
  assert.equal((await get(proxy.url, '/oic', { 'cache-control': 'only-if-cached' })).status, 504);
  assert.equal(origin.hits, 1);
  await done();
});

test('a response to a request with Authorization is stored only with public, s-maxage or must-revalidate', async () => {
  const { origin, proxy, done } = await setup((req, res, n) => {
    const cc = req.url === '/auth-plain' ? 'max-age=60' : req.url === '/auth-public' ? 'public, max-age=60' : req.url === '/auth-s' ? 's-maxage=60' : 'max-age=60, must-revalidate';
    res.writeHead(200, { 'cache-control': cc });
    res.end(`for ${req.headers.authorization ?? 'anonymous'} ${n}`);
  });
  const auth = { authorization: 'Bearer alice' };
  await get(proxy.url, '/auth-plain', auth);
  const again = await get(proxy.url, '/auth-plain', auth);
  assert.equal(again.headers['x-cache'], 'MISS');
  assert.equal(proxy.cache.stats().objects, 0);
  for (const path of ['/auth-public', '/auth-s', '/auth-mr']) {
    await get(proxy.url, path, auth);
    const hit = await get(proxy.url, path, { authorization: 'Bearer bob' });
    assert.equal(hit.headers['x-cache'], 'HIT', path);
  }
  assert.equal(origin.hits, 5);
  await done();
});

test('an object stored for an anonymous request is not served to a request with Authorization unless public', async () => {
  const { origin, proxy, done } = await setup((_req, res, n) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    res.end(`n${n}`);
  });
  await get(proxy.url, '/anon');
  assert.equal((await get(proxy.url, '/anon')).headers['x-cache'], 'HIT');
  const authed = await get(proxy.url, '/anon', { authorization: 'Basic eDp5' });
  assert.equal(authed.headers['x-cache'], 'MISS');
  assert.equal(origin.hits, 2);
  await done();
});

test('CDN-Cache-Control (RFC 9213) decides for the cache in place of Cache-Control and Expires; clients get every field', async () => {
  const cases: Array<[string, OutgoingHttpHeaders, 'HIT' | 'MISS']> = [
    ['cdn stores what Cache-Control forbids', { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=60' }, 'HIT'],
    ['cdn forbids what Cache-Control allows', { 'cache-control': 'max-age=60', 'cdn-cache-control': 'no-store' }, 'MISS'],
    ['cdn overrides an Expires in the future', { expires: new Date(Date.now() + 3_600_000).toUTCString(), 'cdn-cache-control': 'max-age=0' }, 'MISS'],
    ['tinyedge-cache-control comes before cdn-cache-control', { 'tinyedge-cache-control': 'max-age=60', 'cdn-cache-control': 'no-store' }, 'HIT'],
    ['an invalid targeted value is ignored', { 'cache-control': 'max-age=60', 'cdn-cache-control': 'max-age=60;;bad' }, 'HIT'],
    ['an invalid targeted value does not make a response cacheable', { 'cache-control': 'no-store', 'cdn-cache-control': '"max-age=60"' }, 'MISS'],
    ['a targeted max-age that is a String is the wrong type: the field is ignored', { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age="10000"' }, 'MISS'],
    ['so is a targeted stale-if-error that is a token', { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=60, stale-if-error=soon' }, 'MISS'],
  ];
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, cases[Number(req.url!.slice(1))]![1]);
    res.end('x');
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 0, defaultKeepSec: 0 });
  for (const [i, [what, headers, expected]] of cases.entries()) {
    const first = await get(proxy.url, `/${i}`);
    for (const name of Object.keys(headers)) assert.ok(first.headers[name] !== undefined, `${what}: ${name} reaches the client`);
    assert.equal((await get(proxy.url, `/${i}`)).headers['x-cache'], expected, what);
  }
  await proxy.close();
  await origin.close();
});
