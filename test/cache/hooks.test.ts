// Tenant hooks between the named states: recv decides lookup / pass / synth, deliver edits the response.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get, send, startOrigin, startProxy } from './helpers.ts';

test('a recv hook can pass a request, answer it directly, or let it be looked up', async () => {
  const origin = await startOrigin((_req, res, n) => { res.writeHead(200, { 'cache-control': 'max-age=60' }); res.end(`n${n}`); });
  const proxy = await startProxy(origin, {
    hooks: {
      recv(req) {
        if (req.url.startsWith('/live')) return { action: 'pass' };
        if (req.url === '/blocked') return { action: 'synth', status: 403, body: 'forbidden', headers: { 'X-Reason': 'hook' } };
        return undefined;
      },
    },
  });
  await get(proxy.url, '/live');
  const live = await get(proxy.url, '/live');
  assert.equal(live.headers['x-cache'], 'PASS');
  const blocked = await get(proxy.url, '/blocked');
  assert.equal(blocked.status, 403);
  // A hook's synthetic answer goes out exactly as the hook made it.
  assert.equal(blocked.body, 'forbidden');
  assert.equal(blocked.headers['x-reason'], 'hook');
  assert.equal(blocked.headers['x-cache'], 'SYNTH');
  await get(proxy.url, '/cached');
  assert.equal((await get(proxy.url, '/cached')).headers['x-cache'], 'HIT');
  assert.equal(origin.hits, 3);
  await proxy.close();
  await origin.close();
});

test('an asynchronous recv hook cannot make an unsafe method cacheable', async () => {
  const origin = await startOrigin((_req, res) => { res.writeHead(200, { 'cache-control': 'max-age=60' }); res.end('x'); });
  const proxy = await startProxy(origin, { hooks: { recv: async () => ({ action: 'lookup' }) } });
  await send(`${proxy.url}/p`, { method: 'POST', body: 'a' });
  const r = await send(`${proxy.url}/p`, { method: 'POST', body: 'a' });
  assert.equal(r.headers['x-cache'], 'PASS');
  assert.equal(origin.hits, 2);
  await proxy.close();
  await origin.close();
});

test('a deliver hook sees how the response was produced and can edit status and headers', async () => {
  const origin = await startOrigin((_req, res) => { res.writeHead(200, { 'cache-control': 'max-age=60', 'x-internal': '1' }); res.end('body'); });
  const seen: string[] = [];
  const proxy = await startProxy(origin, {
    hooks: {
      async deliver(_req, resp) {
        seen.push(resp.cache);
        resp.headers = resp.headers.filter((_, i, a) => a[i - (i % 2)] !== 'x-internal');
        resp.headers.push('x-tenant', 'demo');
        await new Promise((r) => setTimeout(r, 5));
      },
    },
  });
  const miss = await get(proxy.url, '/d');
  const hit = await get(proxy.url, '/d');
  for (const r of [miss, hit]) {
    assert.equal(r.headers['x-tenant'], 'demo');
    assert.equal(r.headers['x-internal'], undefined);
    assert.equal(r.body, 'body');
  }
  assert.deepEqual(seen, ['MISS', 'HIT']);
  await proxy.close();
  await origin.close();
});
