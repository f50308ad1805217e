// Freshness and Age (RFC 9111 §4.2) observed over loopback HTTP with a manual clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { get, httpDate, startOrigin, startProxy, type TestOrigin, type TestProxy } from './helpers.ts';

/** Origin answering every request with `headers` (and body "body"), proxy in front of it. */
async function setup(headers: OutgoingHttpHeaders | ((n: number) => OutgoingHttpHeaders), status = 200): Promise<{ origin: TestOrigin; proxy: TestProxy; done: () => Promise<void> }> {
  const origin = await startOrigin((_req, res, n) => {
    res.writeHead(status, typeof headers === 'function' ? headers(n) : headers);
    res.end('body');
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 0, defaultKeepSec: 0 });
  return { origin, proxy, done: async () => { await proxy.close(); await origin.close(); } };
}

test('serves a max-age response from cache with an Age header that grows with resident time', async () => {
  const { origin, proxy, done } = await setup({ 'cache-control': 'max-age=100' });
  const miss = await get(proxy.url, '/a');
  assert.equal(miss.headers['x-cache'], 'MISS');
  assert.equal(miss.headers.age, '0');
  proxy.clock.advance(42);
  const hit = await get(proxy.url, '/a');
  assert.equal(hit.headers['x-cache'], 'HIT');
  assert.equal(hit.headers.age, '42');
  assert.equal(hit.body, 'body');
  assert.equal(origin.hits, 1);
  proxy.clock.advance(59);
  const expired = await get(proxy.url, '/a');
  assert.equal(expired.headers['x-cache'], 'MISS');
  assert.equal(origin.hits, 2);
  await done();
});

test('computes Age from the origin Age header plus the response delay (corrected_age_value)', async () => {
  const origin = await startOrigin((_req, res) => {
    // The origin takes 2 s by the cache's clock to answer.
    proxy.clock.advance(2);
    res.writeHead(200, { 'cache-control': 'max-age=100', age: '5' });
    res.end('x');
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 0 });
  const miss = await get(proxy.url, '/aged');
  assert.equal(miss.headers.age, '7');
  proxy.clock.advance(3);
  const hit = await get(proxy.url, '/aged');
  assert.equal(hit.headers.age, '10');
  // Freshness counts from the corrected age: 100 − 10 s left, so 89 s more is still fresh, 91 s is not.
  proxy.clock.advance(89);
  assert.equal((await get(proxy.url, '/aged')).headers['x-cache'], 'HIT');
  proxy.clock.advance(2);
  assert.equal((await get(proxy.url, '/aged')).headers['x-cache'], 'MISS');
  await proxy.close();
  await origin.close();
});

test('reads the first value of Age: a folded list or repeated lines count as their first member, a parameter is dropped, junk is no Age', async () => {
  const cases: [string | string[], 'HIT' | 'MISS'][] = [
    ['7200, 0', 'MISS'], ['0, 7200', 'HIT'], [['7200', '0'], 'MISS'], [['0', '7200'], 'HIT'],
    ['7200;foo=bar', 'MISS'], ['abc', 'HIT'], ['-7200', 'HIT'], ['7200.0', 'HIT'], ['2147483648', 'MISS'],
  ];
  let age: string | string[] = '';
  const origin = await startOrigin((_req, res) => {
    res.setHeader('cache-control', 'max-age=3600');
    res.setHeader('age', age);
    res.end('x');
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 0, defaultKeepSec: 0 });
  for (const [i, [value, expected]] of cases.entries()) {
    age = value;
    await get(proxy.url, `/age-${i}`);
    assert.equal((await get(proxy.url, `/age-${i}`)).headers['x-cache'], expected, `Age: ${JSON.stringify(value)}`);
  }
  await proxy.close();
  await origin.close();
});

test('uses the apparent age when the Date header is older than the Age header says', async () => {
  const { proxy, done } = await setup(() => ({ 'cache-control': 'max-age=1000', date: httpDate(Date.now() - 300_000), age: '10' }));
  const r = await get(proxy.url, '/old');
  const age = Number(r.headers.age);
  assert.ok(age >= 299 && age <= 301, `age ${age}`);
  await done();
});

test('prefers s-maxage over max-age', async () => {
  const { origin, proxy, done } = await setup({ 'cache-control': 'max-age=1000, s-maxage=10' });
  await get(proxy.url, '/s');
  proxy.clock.advance(9);
  assert.equal((await get(proxy.url, '/s')).headers['x-cache'], 'HIT');
  proxy.clock.advance(2);
  assert.equal((await get(proxy.url, '/s')).headers['x-cache'], 'MISS');
  assert.equal(origin.hits, 2);
  await done();
});

test('prefers max-age over Expires', async () => {
  const { proxy, done } = await setup(() => ({ 'cache-control': 'max-age=10', expires: httpDate(Date.now() + 1_000_000) }));
  await get(proxy.url, '/m');
  proxy.clock.advance(11);
  assert.equal((await get(proxy.url, '/m')).headers['x-cache'], 'MISS');
  await done();
});

test('uses Expires minus Date when there is no max-age', async () => {
  const now = Date.now();
  const { origin, proxy, done } = await setup(() => ({ date: httpDate(now), expires: httpDate(now + 60_000) }));
  await get(proxy.url, '/e');
  proxy.clock.advance(55);
  assert.equal((await get(proxy.url, '/e')).headers['x-cache'], 'HIT');
  proxy.clock.advance(10);
  assert.equal((await get(proxy.url, '/e')).headers['x-cache'], 'MISS');
  assert.equal(origin.hits, 2);
  await done();
});

test('treats an invalid Expires as already expired', async () => {
  const { origin, proxy, done } = await setup({ expires: '0' });
  await get(proxy.url, '/bad');
  await get(proxy.url, '/bad');
  assert.equal(origin.hits, 2);
  assert.equal(proxy.cache.stats().objects, 0);
  await done();
});

test('an Expires in none of the three HTTP-date forms, or given twice, is already expired; each form is honoured', async () => {
  // Ten days ahead: every invalid form below would still be in the future if read leniently.
  const later = new Date(Date.now() + 10 * 86_400_000);
  const imf = later.toUTCString();
  const [wd, dd, mon, yyyy, time] = imf.split(' ') as [string, string, string, string, string];
  const day = { Mon: 'Monday', Tue: 'Tuesday', Wed: 'Wednesday', Thu: 'Thursday', Fri: 'Friday', Sat: 'Saturday', Sun: 'Sunday' }[wd.slice(0, 3)]!;
  const valid = [imf, `${day}, ${dd}-${mon}-${yyyy.slice(2)} ${time} GMT`, `${wd.slice(0, 3)} ${mon} ${String(Number(dd)).padStart(2, ' ')} ${time} ${yyyy}`];
  const invalid = [
    imf.replace(',', ''), `${wd} ${dd}-${mon}-${yyyy} ${time} GMT`, imf.replace(' ', '  '), imf.replace(/ \d\d:(\d\d:\d\d) GMT$/, ' 7:$1 GMT'),
    imf.replace('GMT', 'UTC'), '0', 'yesterday',
  ];
  const cases = [...valid, ...invalid];
  const origin = await startOrigin((req, res) => {
    const e = cases[Number(req.url!.slice(2))];
    // Node sends an array as one field per value: two Expires fields.
    res.writeHead(200, { expires: e ?? [imf, imf] } as unknown as OutgoingHttpHeaders);
    res.end('body');
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 0, defaultKeepSec: 0 });
  for (const [i, e] of [...cases, 'twice'].entries()) {
    await get(proxy.url, `/e${i}`);
    assert.equal((await get(proxy.url, `/e${i}`)).headers['x-cache'], valid.includes(e) ? 'HIT' : 'MISS', e);
  }
  assert.equal(origin.hits, valid.length + 2 * (invalid.length + 1));
  await proxy.close();
  await origin.close();
});

test('gives a 200 with Last-Modified heuristic freshness of 10% of Date minus Last-Modified', async () => {
  const now = Date.now();
  const { origin, proxy, done } = await setup(() => ({ date: httpDate(now), 'last-modified': httpDate(now - 1000_000) }));
  await get(proxy.url, '/h');
  proxy.clock.advance(95);
  assert.equal((await get(proxy.url, '/h')).headers['x-cache'], 'HIT');
  proxy.clock.advance(10);
  assert.equal((await get(proxy.url, '/h')).headers['x-cache'], 'MISS');
  assert.equal(origin.hits, 2);
  await done();
});

test('caps heuristic freshness', async () => {
  const now = Date.now();
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { date: httpDate(now), 'last-modified': httpDate(now - 10 * 365 * 86400_000) });
    res.end('x');
  });
  const proxy = await startProxy(origin, { heuristicCapSec: 30, defaultGraceSec: 0, defaultKeepSec: 0 });
  await get(proxy.url, '/cap');
  proxy.clock.advance(31);
  assert.equal((await get(proxy.url, '/cap')).headers['x-cache'], 'MISS');
  await proxy.close();
  await origin.close();
});

test('gives no heuristic freshness to a status that is not heuristically cacheable (302)', async () => {
  const now = Date.now();
  const { origin, proxy, done } = await setup(() => ({ location: '/x', date: httpDate(now), 'last-modified': httpDate(now - 1000_000) }), 302);
  await get(proxy.url, '/r');
  await get(proxy.url, '/r');
  assert.equal(origin.hits, 2);
  await done();
});

test('caches a 404 heuristically and a 302 with explicit freshness', async () => {
  const now = Date.now();
  const a = await setup(() => ({ date: httpDate(now), 'last-modified': httpDate(now - 1000_000) }), 404);
  await get(a.proxy.url, '/nf');
  const r = await get(a.proxy.url, '/nf');
  assert.equal(r.status, 404);
  assert.equal(r.headers['x-cache'], 'HIT');
  await a.done();
  const b = await setup({ location: '/x', 'cache-control': 'max-age=60' }, 302);
  await get(b.proxy.url, '/r');
  const r2 = await get(b.proxy.url, '/r');
  assert.equal(r2.status, 302);
  assert.equal(r2.headers['x-cache'], 'HIT');
  assert.equal(b.origin.hits, 1);
  await b.done();
});

test('never reuses a response without freshness information and without a validator', async () => {
  const { origin, proxy, done } = await setup({ 'content-type': 'text/plain' });
  await get(proxy.url, '/nofresh');
  const r = await get(proxy.url, '/nofresh');
  assert.equal(r.headers['x-cache'], 'MISS');
  assert.equal(origin.hits, 2);
  await done();
});

test('revalidates every reuse of a response that has a validator but no freshness information', async () => {
  const origin = await startOrigin((req, res) => {
    if (req.headers['if-none-match'] === '"v1"') { res.writeHead(304, { etag: '"v1"' }); res.end(); return; }
    res.writeHead(200, { etag: '"v1"' });
    res.end('validated');
  });
  const proxy = await startProxy(origin, { defaultKeepSec: 60 });
  assert.equal((await get(proxy.url, '/v')).headers['x-cache'], 'MISS');
  const r = await get(proxy.url, '/v');
  assert.equal(r.headers['x-cache'], 'REVALIDATED');
  assert.equal(r.body, 'validated');
  assert.equal(origin.requests[1]?.headers['if-none-match'], '"v1"');
  assert.equal(origin.hits, 2);
  await proxy.close();
  await origin.close();
});
