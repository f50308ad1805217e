// Vary: secondary keys per request header values, Vary: *, and coalescing across variants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get, startOrigin, startProxy, until } from './helpers.ts';

test('stores several variants of one URL, selected by the request headers Vary names', async () => {
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' });
    res.end(`lang=${req.headers['accept-language'] ?? 'none'}`);
  });
  const proxy = await startProxy(origin);
  assert.equal((await get(proxy.url, '/v', { 'accept-language': 'en' })).body, 'lang=en');
  assert.equal((await get(proxy.url, '/v', { 'accept-language': 'fr' })).body, 'lang=fr');
  assert.equal((await get(proxy.url, '/v')).body, 'lang=none');
  const en = await get(proxy.url, '/v', { 'accept-language': 'en' });
  assert.equal(en.headers['x-cache'], 'HIT');
  assert.equal(en.body, 'lang=en');
  const fr = await get(proxy.url, '/v', { 'accept-language': 'fr' });
  assert.equal(fr.headers['x-cache'], 'HIT');
  assert.equal(fr.body, 'lang=fr');
  const none = await get(proxy.url, '/v');
  assert.equal(none.headers['x-cache'], 'HIT');
  assert.equal(none.body, 'lang=none');
  assert.equal(origin.hits, 3);
  assert.equal(proxy.cache.stats().objects, 3);
  await proxy.close();
  await origin.close();
});

test('normalises whitespace in the varying header values', async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'accept-encoding' });
    res.end('x');
  });
  const proxy = await startProxy(origin);
  await get(proxy.url, '/n', { 'accept-encoding': 'gzip,br' });
  assert.equal((await get(proxy.url, '/n', { 'accept-encoding': 'gzip, br' })).headers['x-cache'], 'HIT');
  assert.equal((await get(proxy.url, '/n', { 'accept-encoding': 'br' })).headers['x-cache'], 'MISS');
  await proxy.close();
  await origin.close();
});

test('never matches Vary: * (such a response is not reused)', async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', vary: '*' });
    res.end('star');
  });
  const proxy = await startProxy(origin);
  await get(proxy.url, '/star');
  assert.equal((await get(proxy.url, '/star')).headers['x-cache'], 'MISS');
  assert.equal(origin.hits, 2);
  await proxy.close();
  await origin.close();
});

test('a coalesced waiter of another variant gets its own fetch, not the leader’s variant', async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  const origin = await startOrigin((req, res, n) => {
    void (async () => {
      if (n === 1) await released;
      res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'accept-language' });
      res.end(`lang=${req.headers['accept-language']}`);
    })();
  });
  const proxy = await startProxy(origin);
  const host = new URL(proxy.url).host;
  const en = get(proxy.url, '/cv', { 'accept-language': 'en' });
  await until(() => proxy.cache.inFlight(host, '/cv')?.listeners === 1);
  const en2 = get(proxy.url, '/cv', { 'accept-language': 'en' });
  const de = get(proxy.url, '/cv', { 'accept-language': 'de' });
  await until(() => proxy.cache.inFlight(host, '/cv')?.listeners === 3);
  release();
  assert.equal((await en).body, 'lang=en');
  assert.equal((await en2).body, 'lang=en');
  assert.equal((await de).body, 'lang=de');
  assert.equal(origin.hits, 2);
  assert.equal((await get(proxy.url, '/cv', { 'accept-language': 'de' })).headers['x-cache'], 'HIT');
  await proxy.close();
  await origin.close();
});

test('a waiter of another variant does not get the variant a coalesced revalidation refreshed', async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  const origin = await startOrigin((req, res) => {
    void (async () => {
      if (req.headers['if-none-match'] !== undefined) {
        await released;
        res.writeHead(304, { etag: '"en"', 'cache-control': 'max-age=10', vary: 'accept-language' });
        res.end();
        return;
      }
      const lang = String(req.headers['accept-language']);
      res.writeHead(200, { 'cache-control': 'max-age=10', vary: 'accept-language', etag: `"${lang}"` });
      res.end(`lang=${lang}`);
    })();
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 0, defaultKeepSec: 60 });
  const host = new URL(proxy.url).host;
  await get(proxy.url, '/rv', { 'accept-language': 'en' });
  proxy.clock.advance(15);
  const en = get(proxy.url, '/rv', { 'accept-language': 'en' });
  await until(() => proxy.cache.inFlight(host, '/rv')?.listeners === 1);
  const de = get(proxy.url, '/rv', { 'accept-language': 'de' });
  await until(() => proxy.cache.inFlight(host, '/rv')?.listeners === 2);
  release();
  const enReply = await en;
  assert.equal(enReply.headers['x-cache'], 'REVALIDATED');
  assert.equal(enReply.body, 'lang=en');
  assert.equal((await de).body, 'lang=de');
  await proxy.close();
  await origin.close();
});
