// Two shards: each accepts connections on its own socket of the one port and serves them (cache,
// programs, host calls on its own thread); the cache is one for both (an object is fetched once,
// whichever shard asks, and a tenant's quota holds for both together); a purge, a ban and a live
// upload reach every shard before the admin call answers; the key-value store is one for all
// shards, and its increments from both at once lose nothing; stats add up the shards; a shard's
// program log lines name it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const OP = 'operator-token-0123456789';
const TOKEN = 'site-token-0123456789';
const SMALL_TOKEN = 'small-token-0123456789';
/** The small tenant's quota, and the size of the bodies it caches. */
const SMALL_QUOTA = 64 * 1024;
const BIG_BODY = 10 * 1024;
/** New connections per round: the kernel spreads them over the two sockets by a hash of their ports, so both shards get some (all on one: a chance of 2^-39). */
const CONNECTIONS = 40;

describe('serve with two shards', needsKvm(), () => {
  let edge: EdgeServer;
  let origin: Server;
  let originHits = 0;
  const records: Array<Record<string, unknown>> = [];
  const agent = new Agent({ connections: 8 });

  /** One request on a connection of its own. */
  const fresh = async (path: string): Promise<{ status: number; body: string; xcache: string | undefined }> => {
    const once = new Agent({ connections: 1, pipelining: 0 });
    try {
      const r = await request(`${edge.front.url}${path}`, { headers: { host: 'site.test' }, dispatcher: once });
      return { status: r.statusCode, body: await r.body.text(), xcache: r.headers['x-cache'] as string | undefined };
    } finally {
      await once.close();
    }
  };
  const freshRound = async (path: string): Promise<Array<Awaited<ReturnType<typeof fresh>>>> => Promise.all(Array.from({ length: CONNECTIONS }, () => fresh(path)));
  const admin = async (method: 'GET' | 'POST' | 'PUT', path: string, body?: string | Buffer) => {
    const r = await request(`${edge.admin.url}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` }, body, dispatcher: agent });
    return { status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> };
  };

  before(async () => {
    origin = createServer((req, res) => {
      originHits++;
      if (req.url!.startsWith('/big/')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=600' });
        res.end(Buffer.alloc(BIG_BODY, req.url!.length));
        return;
      }
      // Slow enough that requests on both shards arrive while the first fetch is still out.
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600', 'surrogate-key': 'all' });
        res.end(`origin ${req.url}\n`);
      }, 50);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const yaml = `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: ${OP}, shards: 2 }
tenants:
  - name: site
    hosts: [site.test]
    token: ${TOKEN}
    origins: [{ name: default, url: http://127.0.0.1:${(origin.address() as AddressInfo).port} }]
    programs:
      - { name: app, file: ${buildGuest('sdk_hostcalls')}, roles: [generate], routes: [{ prefix: /kv }], concurrency: 2, queueTimeout: 60s }
      - { name: logs, file: ${buildGuest('sdk_stdout')}, roles: [generate], routes: [{ prefix: /log }] }
      - { name: counter, file: ${buildGuest('sdk_hostcalls')}, roles: [generate], routes: [{ prefix: /kv/atomic }], concurrency: 2, queueTimeout: 60s }
  - name: small
    hosts: [small.test]
    token: ${SMALL_TOKEN}
    cache: { memory: ${SMALL_QUOTA} }
    origins: [{ name: default, url: http://127.0.0.1:${(origin.address() as AddressInfo).port} }]
`;
    const logger = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-shards-test.yaml' }), { logger });
  });

  after(async () => {
    await edge?.close();
    await agent.close();
    await new Promise<void>((r) => origin?.close(() => r()));
  });

  test('both shards accept connections, and stats add them up', async () => {
    const before = (await admin('GET', '/v1/tenants/site/stats')).json;
    const answers = await freshRound('/page');
    assert.ok(answers.every((a) => a.status === 200 && a.body === 'origin /page\n'));
    const after = (await admin('GET', '/v1/tenants/site/stats')).json;
    const perShard = (after.shards as number[]).map((n, i) => n - (before.shards as number[])[i]!);
    assert.equal(perShard.length, 2);
    assert.ok(perShard.every((n) => n > 0), `requests per shard: ${perShard.join(', ')}`);
    assert.equal((after.counters as { requests: number }).requests - (before.counters as { requests: number }).requests, CONNECTIONS);
  });

  test('one cache for both shards: an object is fetched once, whichever shard asks', async () => {
    const before = (await admin('GET', '/v1/tenants/site/stats')).json;
    const hits = originHits;
    const first = await freshRound('/once');
    assert.ok(first.every((a) => a.status === 200 && a.body === 'origin /once\n'));
    assert.equal(originHits, hits + 1, 'one origin fetch for 40 concurrent requests spread over both shards');
    const second = await freshRound('/once');
    assert.deepEqual([...new Set(second.map((a) => a.xcache))], ['HIT']);
    assert.equal(originHits, hits + 1);
    const after = (await admin('GET', '/v1/tenants/site/stats')).json;
    const perShard = (after.shards as number[]).map((n, i) => n - (before.shards as number[])[i]!);
    assert.ok(perShard.every((n) => n > 0), `requests per shard: ${perShard.join(', ')}`);
  });

  test("a tenant's quota holds for both shards together", async () => {
    const stats = async () => {
      const r = await request(`${edge.admin.url}/v1/tenants/small/stats`, { headers: { authorization: `Bearer ${SMALL_TOKEN}` }, dispatcher: agent });
      return ((await r.body.json()) as { cache: { objects: number; bytes: number; evictions: number } }).cache;
    };
    for (let i = 0; i < 4; i++) {
      await Promise.all(Array.from({ length: 10 }, async (_, j) => {
        const once = new Agent({ connections: 1, pipelining: 0 });
        const r = await request(`${edge.front.url}/big/${i * 10 + j}`, { headers: { host: 'small.test' }, dispatcher: once });
        const body = Buffer.from(await r.body.arrayBuffer());
        await once.close();
        assert.equal(body.length, BIG_BODY);
        assert.ok(body.every((b) => b === `/big/${i * 10 + j}`.length), 'each body intact');
      }));
    }
    const cache = await stats();
    assert.ok(cache.bytes <= SMALL_QUOTA, `${cache.bytes} bytes held in a quota of ${SMALL_QUOTA}`);
    assert.ok(cache.objects >= 3 && cache.objects <= Math.floor(SMALL_QUOTA / BIG_BODY), `${cache.objects} objects`);
    assert.ok(cache.evictions > 0);
  });

  test('a purge reaches every shard before the admin call answers', async () => {
    await freshRound('/obj');
    const cachedBy = originHits;
    await freshRound('/obj');
    assert.equal(originHits, cachedBy, 'every shard serves /obj from the cache');
    const purged = (await admin('POST', '/v1/tenants/site/purge', JSON.stringify({ url: '/obj' }))).json.purged as number;
    assert.ok(purged >= 1);
    const hitsBefore = originHits;
    await freshRound('/obj');
    assert.ok(originHits > hitsBefore, 'after the purge no shard answers from its cache');
    const tagPurged = (await admin('POST', '/v1/tenants/site/purge-tag', JSON.stringify({ tag: 'all' }))).json.purged as number;
    assert.ok(tagPurged >= 1);
    const afterTag = originHits;
    await freshRound('/obj');
    assert.ok(originHits > afterTag, 'after the tag purge no shard answers from its cache');
  });

  test('a ban reaches every shard, and a bad one reaches none', async () => {
    await freshRound('/banned/x');
    const hits = originHits;
    assert.equal((await admin('POST', '/v1/tenants/site/ban', JSON.stringify({ expression: 'req.url ~ ^/banned/' }))).status, 200);
    await freshRound('/banned/x');
    assert.ok(originHits > hits);
    assert.equal((await admin('POST', '/v1/tenants/site/ban', JSON.stringify({ expression: 'req.url ~ (' }))).status, 400);
  });

  test('the key-value store is one for all shards', async () => {
    const counts: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await fresh('/kv/incr');
      counts.push(Number(/counter=(\d+)/.exec(r.body)?.[1]));
    }
    assert.deepEqual(counts, Array.from({ length: 20 }, (_, i) => counts[0]! + i), 'each increment saw the one before, whichever shard made it');
  });

  test('20 concurrent increments, on both shards, lose no update', async () => {
    const before = (await admin('GET', '/v1/tenants/site/stats')).json.shards as number[];
    const answers = await Promise.all(Array.from({ length: 20 }, () => fresh('/kv/atomic')));
    const after = (await admin('GET', '/v1/tenants/site/stats')).json.shards as number[];
    assert.ok(answers.every((a) => a.status === 200 && /^hits=\d+ r=0\n$/.test(a.body)), answers.map((a) => a.body).join(''));
    const values = answers.map((a) => Number(/hits=(\d+)/.exec(a.body)![1])).sort((x, y) => x - y);
    assert.deepEqual(values, Array.from({ length: 20 }, (_, i) => i + 1), 'every increment saw a value of its own');
    assert.equal((await fresh('/kv/atomic')).body, 'hits=21 r=0\n');
    // 20 connections the kernel hashes over two sockets: all on one has a chance of 2^-19.
    assert.ok(after.every((n, i) => n > before[i]!), `requests per shard: ${after.map((n, i) => n - before[i]!).join(', ')}`);
  });

  test('a live upload reaches every shard before the admin call answers', async () => {
    const up = await admin('PUT', '/v1/tenants/site/programs/app', readFileSync(buildGuest('sdk_misbehave')));
    assert.equal(up.status, 200, JSON.stringify(up.json));
    const answers = await freshRound('/kv/whatever');
    assert.deepEqual([...new Set(answers.map((a) => a.body))], ['ok served=0\n']);
  });

  test("a shard's program log lines name the shard", async () => {
    await freshRound('/log');
    const shards = new Set(records.filter((r) => r.program === 'logs').map((r) => r.shard));
    assert.deepEqual([...shards].sort(), [0, 1]);
  });
});
