// Purge, bans, Surrogate-Key tags, and invalidation after unsafe methods.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BanSyntaxError } from '../../src/cache/index.ts';
import { get, send, startOrigin, startProxy, type TestOrigin, type TestProxy } from './helpers.ts';

/** Origin: GET /path → cacheable body "path n" (tags and type from the path); unsafe methods → per `status`. */
async function setup(unsafe: { status: number; headers?: Record<string, string> } = { status: 200 }): Promise<{ origin: TestOrigin; proxy: TestProxy; done: () => Promise<void> }> {
  const origin = await startOrigin((req, res, n) => {
    if (req.method !== 'GET') { res.writeHead(unsafe.status, unsafe.headers); res.end('done'); return; }
    const url = req.url ?? '/';
    const type = url.endsWith('.png') ? 'image/png' : 'text/html';
    const tags = url.startsWith('/product/') ? `product-${url.split('/')[2]} all-products` : 'misc';
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': type, 'surrogate-key': tags, vary: 'accept-language' });
    res.end(`${url} ${n}`);
  });
  const proxy = await startProxy(origin);
  return { origin, proxy, done: async () => { await proxy.close(); await origin.close(); } };
}

const xcache = async (proxy: TestProxy, path: string, headers?: Record<string, string>): Promise<string | undefined> =>
  (await get(proxy.url, path, headers)).headers['x-cache'] as string | undefined;

test('purge of a URL drops all its Vary variants and nothing else', async () => {
  const { proxy, done } = await setup();
  const host = new URL(proxy.url).host;
  await get(proxy.url, '/page', { 'accept-language': 'en' });
  await get(proxy.url, '/page', { 'accept-language': 'fr' });
  await get(proxy.url, '/other');
  assert.equal(proxy.cache.purge(`http://${host}/page`), 2);
  assert.equal(await xcache(proxy, '/page', { 'accept-language': 'en' }), 'MISS');
  assert.equal(await xcache(proxy, '/page', { 'accept-language': 'fr' }), 'MISS');
  assert.equal(await xcache(proxy, '/other'), 'HIT');
  assert.equal(proxy.cache.purge('/other'), 1);
  assert.equal(await xcache(proxy, '/other'), 'MISS');
  await done();
});

test('a URL regex ban invalidates matching objects fetched before it, not those fetched after', async () => {
  const { proxy, done } = await setup();
  await get(proxy.url, '/img/a.png');
  await get(proxy.url, '/img/b.png');
  await get(proxy.url, '/text/c');
  proxy.cache.ban('req.url ~ ^/img/');
  assert.equal(await xcache(proxy, '/img/a.png'), 'MISS');
  assert.equal(await xcache(proxy, '/img/a.png'), 'HIT');
  assert.equal(await xcache(proxy, '/text/c'), 'HIT');
  assert.equal(await xcache(proxy, '/img/b.png'), 'MISS');
  await done();
});

test('bans on object headers and conjunctions', async () => {
  const { proxy, done } = await setup();
  await get(proxy.url, '/x/a.png');
  await get(proxy.url, '/x/b.html');
  await get(proxy.url, '/y/c.png');
  proxy.cache.ban('obj.http.content-type == "image/png" && req.url ~ ^/x/');
  assert.equal(await xcache(proxy, '/x/a.png'), 'MISS');
  assert.equal(await xcache(proxy, '/x/b.html'), 'HIT');
  assert.equal(await xcache(proxy, '/y/c.png'), 'HIT');
  await done();
});

test('a catastrophic ban regex cannot stall the thread, and backtracking-only constructs are refused', async () => {
  const { proxy, done } = await setup();
  const evil = '/' + 'a'.repeat(40) + '!';
  await get(proxy.url, evil);
  // Backtracking alone would take years on this URL; the linear-time engine answers at once.
  proxy.cache.ban('req.url ~ (a+)+$');
  assert.equal(await xcache(proxy, evil), 'HIT');
  assert.throws(() => proxy.cache.ban('req.url ~ (a)\\1'), BanSyntaxError);
  assert.throws(() => proxy.cache.ban('req.url ~ ^(?=/x)'), BanSyntaxError);
  assert.throws(() => proxy.cache.ban('req.url ~ (?<!b)a'), BanSyntaxError);
  await done();
});

test('a req.http ban is tested at lookup against the request', async () => {
  const { proxy, done } = await setup();
  await get(proxy.url, '/r', { 'accept-language': 'en' });
  proxy.cache.ban('req.http.accept-language ~ ^en');
  assert.equal(await xcache(proxy, '/r', { 'accept-language': 'en' }), 'MISS');
  await done();
});

test('the ban lurker removes banned objects in the background and retires the ban', async () => {
  const { proxy, done } = await setup();
  await get(proxy.url, '/l/1');
  await get(proxy.url, '/l/2');
  await get(proxy.url, '/keep');
  proxy.cache.ban('req.url ~ ^/l/');
  assert.equal(proxy.cache.stats().objects, 3);
  assert.equal(proxy.cache.stats().bans, 1);
  proxy.cache.lurk();
  assert.equal(proxy.cache.stats().objects, 1);
  assert.equal(proxy.cache.stats().bans, 0);
  assert.equal(await xcache(proxy, '/keep'), 'HIT');
  await done();
});

test('the lurker runs on its own timer', async () => {
  const origin = await startOrigin((_req, res) => { res.writeHead(200, { 'cache-control': 'max-age=600' }); res.end('x'); });
  const proxy = await startProxy(origin, { lurkerIntervalMs: 10 });
  await get(proxy.url, '/t');
  proxy.cache.ban('obj.status == 200');
  const deadline = Date.now() + 3000;
  while (proxy.cache.stats().objects > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(proxy.cache.stats().objects, 0);
  await proxy.close();
  await origin.close();
});

test('rejects a malformed ban expression with a precise error', async () => {
  const { proxy, done } = await setup();
  assert.throws(() => proxy.cache.ban('url ~ foo'), BanSyntaxError);
  assert.throws(() => proxy.cache.ban('req.url ~ ('), /invalid regular expression/);
  await done();
});

test('tag invalidation drops every object carrying the Surrogate-Key, which is not sent to clients', async () => {
  const { proxy, done } = await setup();
  const a = await get(proxy.url, '/product/1');
  assert.equal(a.headers['surrogate-key'], undefined);
  await get(proxy.url, '/product/2');
  await get(proxy.url, '/about');
  assert.equal(proxy.cache.purgeTag('product-1'), 1);
  assert.equal(await xcache(proxy, '/product/1'), 'MISS');
  assert.equal(await xcache(proxy, '/product/2'), 'HIT');
  assert.equal(proxy.cache.purgeTag('all-products'), 2);
  assert.equal(await xcache(proxy, '/product/1'), 'MISS');
  assert.equal(await xcache(proxy, '/product/2'), 'MISS');
  assert.equal(await xcache(proxy, '/about'), 'HIT');
  await done();
});

for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'M-SEARCH']) {
  test(`a successful ${method} passes to the origin and invalidates its target URI`, async () => {
    const { origin, proxy, done } = await setup();
    await get(proxy.url, '/doc');
    const r = await send(`${proxy.url}/doc`, { method, body: 'payload', headers: { 'content-type': 'text/plain' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-cache'], 'PASS');
    const seen = origin.requests.find((q) => q.method === method);
    assert.equal(seen?.body, 'payload');
    assert.equal(await xcache(proxy, '/doc'), 'MISS');
    await done();
  });
}

test('a successful unsafe request also invalidates same-origin Location and Content-Location, not other hosts', async () => {
  const { proxy, done } = await setup({ status: 201, headers: { location: '/items/7', 'content-location': 'http://elsewhere.example/items/8' } });
  await get(proxy.url, '/items/7');
  await get(proxy.url, '/items/8');
  await send(`${proxy.url}/items`, { method: 'POST', body: '{}' });
  assert.equal(await xcache(proxy, '/items/7'), 'MISS');
  assert.equal(await xcache(proxy, '/items/8'), 'HIT');
  await done();
});

test('a safe method that is not GET or HEAD (OPTIONS) passes through and invalidates nothing', async () => {
  const { proxy, done } = await setup();
  await get(proxy.url, '/doc');
  assert.equal((await send(`${proxy.url}/doc`, { method: 'OPTIONS' })).headers['x-cache'], 'PASS');
  assert.equal(await xcache(proxy, '/doc'), 'HIT');
  await done();
});

test('a failed unsafe request invalidates nothing', async () => {
  const { proxy, done } = await setup({ status: 500 });
  await get(proxy.url, '/doc');
  await send(`${proxy.url}/doc`, { method: 'POST', body: 'x' });
  assert.equal(await xcache(proxy, '/doc'), 'HIT');
  await done();
});

test('stats count hits, misses, passes, stale hits, objects and bytes', async () => {
  const { proxy, done } = await setup();
  await get(proxy.url, '/s1');
  await get(proxy.url, '/s1');
  await get(proxy.url, '/s1');
  await send(`${proxy.url}/s1`, { method: 'POST', body: 'x' });
  await get(proxy.url, '/s1');
  proxy.clock.advance(605);
  await get(proxy.url, '/s1');
  const s = proxy.cache.stats();
  assert.equal(s.hits, 2);
  assert.equal(s.misses, 2);
  assert.equal(s.passes, 1);
  assert.equal(s.staleHits, 1);
  assert.equal(s.objects, 1);
  assert.ok(s.bytes > '/s1 1'.length && s.bytes < 4000, `bytes ${s.bytes}`);
  await done();
});
