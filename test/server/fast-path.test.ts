// The front's raw fast path under `serve`: a tenant without recv/deliver programs answers its
// fresh plain GET hits from raw bytes, as `tinyedge proxy` does; a tenant with a hook program
// never does (its hook must see every request), and its hits are still right.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const N = 20;

describe('serve: the raw fast path', needsKvm(), () => {
  let edge: EdgeServer;
  let origin: Server;
  let originHits = 0;
  let lastOriginHeaders: Record<string, unknown> = {};
  const agent = new Agent({ connections: 1 });

  /**
   * One connection for every request (`connections: 1`). A request the fast path declines, as a
   * miss, hands its connection to the hardened path for good: `once` sends it on a connection of
   * its own, closed after it, so the hits that follow start on a fresh raw one.
   */
  const get = async (host: string, path: string, once = false) => {
    const r = await request(`${edge.front.url}${path}`, { headers: { host }, dispatcher: agent, reset: once });
    return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
  };
  type Stats = { cache: { hits: number; fastHits: number }; counters: { vmCalls: number } };
  const stats = async (tenant: string): Promise<Stats> => {
    const r = await request(`${edge.admin.url}/v1/tenants/${tenant}/stats`, { headers: { authorization: `Bearer ${tenant}-token-0123456789` }, dispatcher: agent });
    assert.equal(r.statusCode, 200);
    return (await r.body.json()) as Stats;
  };
  const cacheStats = async (tenant: string): Promise<Stats['cache']> => (await stats(tenant)).cache;

  before(async () => {
    origin = createServer((req, res) => {
      originHits++;
      lastOriginHeaders = req.headers;
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
      res.end(`origin ${req.url}\n`);
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    const yaml = `
server:
  listen: 127.0.0.1:0
  admin: 127.0.0.1:0
  operatorToken: operator-token-0123456789
tenants:
  - name: plain
    hosts: [plain.test]
    token: plain-token-0123456789
    origins: [{ name: default, url: "${originUrl}" }]
    programs:
      - { name: gen, file: ${buildGuest('sdk_headers')}, roles: [generate], routes: [{ prefix: /gen }] }
  - name: hooked
    hosts: [hooked.test]
    token: hooked-token-0123456789
    origins: [{ name: default, url: "${originUrl}" }]
    programs:
      - { name: recv, file: ${buildGuest('sdk_hostcalls')}, roles: [recv] }
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-fast-path-test.yaml' }), { logger: pino({ level: 'silent' }) });
  });

  after(async () => {
    await edge?.close();
    await agent.close();
    origin?.close();
  });

  test(`a tenant without hook programs answers ${N} plain GET hits of an origin's object on the fast path`, async () => {
    const before = await cacheStats('plain');
    const answers = [await get('plain.test', '/page', true)];
    for (let i = 1; i < N; i++) answers.push(await get('plain.test', '/page'));
    assert.deepEqual(new Set(answers.map((a) => `${a.status} ${a.body}`)), new Set(['200 origin /page\n']));
    assert.deepEqual(answers.map((a) => a.headers['x-cache']), ['MISS', ...Array<string>(N - 1).fill('HIT')]);
    // Node's server says `Keep-Alive: timeout=…`; the fast path does not: each hit came raw.
    assert.deepEqual(answers.slice(1).filter((a) => a.headers['keep-alive'] !== undefined), []);
    const after = await cacheStats('plain');
    assert.equal(after.fastHits - before.fastHits, N - 1);
  });

  test("and so are the hits of a program's response", async () => {
    const before = await cacheStats('plain');
    const first = await get('plain.test', '/gen/item', true);
    for (let i = 1; i < N; i++) {
      const hit = await get('plain.test', '/gen/item');
      assert.deepEqual([hit.status, hit.headers['x-cache'], hit.headers['x-program'], hit.body], [201, 'HIT', 'sdk_headers', first.body]);
    }
    assert.equal((await cacheStats('plain')).fastHits - before.fastHits, N - 1);
  });

  test('a tenant with a recv program takes no fast hit, and its hits are still served through the hook', async () => {
    const hitsBefore = originHits;
    const answers = [await get('hooked.test', '/hooked-page', true)];
    for (let i = 1; i < N; i++) answers.push(await get('hooked.test', '/hooked-page'));
    assert.deepEqual(new Set(answers.map((a) => `${a.status} ${a.body}`)), new Set(['200 origin /hooked-page\n']));
    assert.deepEqual(answers.map((a) => a.headers['x-cache']), ['MISS', ...Array<string>(N - 1).fill('HIT')]);
    assert.equal(originHits, hitsBefore + 1);
    assert.equal(lastOriginHeaders['x-recv'], 'seen', 'the recv program saw the miss');
    const after = await stats('hooked');
    assert.equal(after.cache.fastHits, 0);
    assert.equal(after.cache.hits, N - 1);
    // The hook saw every request, hit or miss (the warm-up ran on the loader, not counted here).
    assert.equal(after.counters.vmCalls, N);
  });
});
