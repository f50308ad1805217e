// The one hop-by-hop list (src/cache/hop-by-hop.ts) and everything that asks it: the request
// vetting, the raw fast path's refusals, and `tinyedge proxy`'s cache towards origin and client,
// including a hit answered on the fast path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connectionTokens, endToEndList, isFixedHopByHop, isFraming } from '../../src/cache/hop-by-hop.ts';
import { parseSimpleHead } from '../../src/http/fast-path.ts';
import { send, startOrigin, startProxy } from '../cache/helpers.ts';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization'];

test('the hop-by-hop list is RFC 9110 §7.6.1 plus Trailer and the proxy credentials, in any case', () => {
  for (const name of HOP_BY_HOP) {
    assert.ok(isFixedHopByHop(name), name);
    assert.ok(isFixedHopByHop(name.toUpperCase()), name.toUpperCase());
  }
  for (const name of ['host', 'content-length', 'authorization', 'www-authenticate', 'cache-control', 'te-x', 'upgrades', 'x-connection']) {
    assert.equal(isFixedHopByHop(name), false, name);
  }
});

test('framing is its own fact: Content-Length and Transfer-Encoding', () => {
  assert.deepEqual(['Content-Length', 'transfer-encoding', 'TE', 'content-type', 'connection'].map(isFraming), [true, true, false, false, false]);
});

test('a Connection value names hop-by-hop fields, but never Host or Content-Length', () => {
  assert.deepEqual(connectionTokens('X-A, x-b ,Host, content-length, keep-alive, , X-A', undefined), ['x-a', 'x-b']);
  assert.equal(connectionTokens('close', undefined), undefined);
  assert.equal(connectionTokens('Keep-Alive', undefined), undefined);
});

test('endToEndList drops the fixed names and what Connection lists, and framing only when asked', () => {
  const list = ['Connection', 'X-Private, close', 'X-Private', '1', 'Upgrade', 'h2c', 'Content-Length', '9', 'X-Public', 'yes', 'Proxy-Authenticate', 'Basic'];
  assert.deepEqual(endToEndList(list), ['content-length', '9', 'x-public', 'yes']);
  assert.deepEqual(endToEndList(list, true), ['x-public', 'yes']);
});

test('the raw fast path declines a request carrying any hop-by-hop field but a plain Connection', () => {
  const limits = { maxUrlBytes: 1024, maxHeaderBytes: 4096 };
  const parse = (extra: string): ReturnType<typeof parseSimpleHead> => {
    const head = Buffer.from(`GET /a HTTP/1.1\r\nHost: x\r\n${extra}`, 'latin1');
    return parseSimpleHead(head, head.length, limits);
  };
  const plain = { method: 'GET', url: '/a', host: 'x', cacheControl: undefined, clientIp: undefined };
  assert.deepEqual(parse('Connection: close'), { ...plain, close: true, fields: ['host', 'x', 'connection', 'close'] });
  assert.deepEqual(parse('Connection: keep-alive'), { ...plain, close: false, fields: ['host', 'x', 'connection', 'keep-alive'] });
  for (const field of ['Connection: X-Private', 'Keep-Alive: timeout=5', 'Proxy-Connection: keep-alive', 'TE: trailers', 'Trailer: X-T', 'Upgrade: h2c', 'Proxy-Authorization: Basic eA==', 'Proxy-Authenticate: Basic']) {
    assert.equal(parse(field), null, field);
  }
});

test("the proxy's fast hits carry none of the fields the origin's Connection listed", async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { connection: 'x-resp-hop', 'x-resp-hop': 'secret', 'proxy-authenticate': 'Basic', 'cache-control': 'max-age=60', 'x-end-to-end': 'yes' });
    res.end('h');
  });
  const proxy = await startProxy(origin);
  await send(`${proxy.url}/hop`);
  const hit = await send(`${proxy.url}/hop`);
  assert.equal(proxy.cache.stats().fastHits, 1);
  assert.equal(hit.headers['x-resp-hop'], undefined);
  assert.equal(hit.headers['proxy-authenticate'], undefined);
  assert.equal(hit.headers['x-end-to-end'], 'yes');
  await proxy.close();
  await origin.close();
});

test('a chunked request body reaches the origin whole through the proxy', async () => {
  const origin = await startOrigin((_req, res) => { res.writeHead(200); res.end('ok'); });
  const proxy = await startProxy(origin);
  // Node's client frames a body written in parts, without a length, as chunked.
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(`${proxy.url}/upload`, { method: 'POST', headers: { 'x-kept': 'k' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.write('abc');
    req.end('def');
  });
  assert.equal(status, 200);
  assert.equal(origin.requests[0]?.body, 'abcdef');
  assert.equal(origin.requests[0]?.headers['x-kept'], 'k');
  await proxy.close();
  await origin.close();
});
