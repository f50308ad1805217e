// tinyedge/node's Fastify plugin in a real Fastify app: the program answers every method under the
// prefix it is registered with, gets request bodies of any type as sent, and its failures reach
// the client as their class only, with the details in the request's Fastify log.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { buildExample } from '../../guest/build.ts';
import { tinyedgePlugin } from '../../src/node/index.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

interface Echo {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
  requests_since_boot: number;
}

describe('the Fastify plugin', needsKvm(), () => {
  let app: FastifyInstance;
  let url: string;
  /** A second app with the misbehaving program at its root: the program sees whole paths. */
  let bad: FastifyInstance;
  let badUrl: string;
  const logLines: string[] = [];

  before(async () => {
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(chunk.toString());
        done();
      },
    });
    app = Fastify({ logger: { level: 'warn', stream } });
    app.get('/', async () => ({ own: true }));
    await app.register(tinyedgePlugin, { prefix: '/edge', program: buildExample('echo') });
    url = await app.listen({ port: 0, host: '127.0.0.1' });
    bad = Fastify({ logger: { level: 'warn', stream } });
    await bad.register(tinyedgePlugin, { program: buildGuest('sdk_misbehave'), timeoutMs: 300, maxRequestBytes: 4096 });
    badUrl = await bad.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    await Promise.all([app.close(), bad.close()]);
  });

  test('answers every method under its prefix with the program, the prefix itself included', async () => {
    for (const [method, path] of [['GET', '/edge'], ['PUT', '/edge/items/3?x=1'], ['DELETE', '/edge/a'], ['PATCH', '/edge/'], ['OPTIONS', '/edge/o']] as const) {
      const r = await request(`${url}${path}`, { method });
      assert.equal(r.statusCode, 200, `${method} ${path}`);
      assert.equal(r.headers['x-echo'], 'tinyedge');
      const got = JSON.parse(await r.body.text()) as Echo;
      assert.deepEqual([got.method, got.url, got.requests_since_boot], [method, path, 0]);
    }
  });

  test('leaves the app own routes and everything outside its prefix to the app', async () => {
    const own = await request(`${url}/`);
    assert.deepEqual(await own.body.json(), { own: true });
    const outside = await request(`${url}/edgeways`);
    assert.equal(outside.statusCode, 404);
    await outside.body.text();
  });

  test('hands the program request bodies of any content type exactly as sent, even ones Fastify would refuse', async () => {
    for (const [type, body] of [['application/json', '{not json'], ['application/x-www-form-urlencoded', 'a=1&b=2'], ['image/png', '\x89PNG'], ['text/plain', 'plain']]) {
      const r = await request(`${url}/edge/upload`, { method: 'POST', headers: { 'content-type': type }, body });
      assert.equal(r.statusCode, 200, type);
      const got = JSON.parse(await r.body.text()) as Echo;
      assert.deepEqual([got.headers['content-type'], got.body], [type, body]);
    }
  });

  test('a program fault gets the client a 502 with a fixed text, and the request log the details', async () => {
    const r = await request(`${badUrl}/crash`);
    assert.equal(r.statusCode, 502);
    assert.equal(await r.body.text(), 'program fault\n');
    const entry = logLines.map((l) => JSON.parse(l) as { url?: string; status?: number; reqId?: string; msg: string }).find((l) => l.url === '/crash');
    assert.equal(entry?.status, 502);
    assert.ok(entry?.reqId, 'logged through the request logger');
    assert.match(entry?.msg ?? '', /0x[0-9a-f]+/);
  });

  test('a program past its time limit gets the client a 504 with a fixed text', async () => {
    const r = await request(`${badUrl}/loop`);
    assert.equal(r.statusCode, 504);
    assert.equal(await r.body.text(), 'program timed out\n');
  });

  test('a body larger than the limit gets a 413 with a fixed text', async () => {
    const r = await request(`${badUrl}/up`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.alloc(5000) });
    assert.equal(r.statusCode, 413);
    assert.equal(await r.body.text(), 'request too large for the program\n');
  });

  test('registration fails when the program cannot be loaded', async () => {
    const other = Fastify();
    try {
      await assert.rejects(async () => {
        await other.register(tinyedgePlugin, { prefix: '/x', program: Buffer.from('not a program') });
      }, /not an ELF executable/);
    } finally {
      await other.close();
    }
  });
});
