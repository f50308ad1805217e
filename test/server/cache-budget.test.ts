// The cache's memory at a reload, through `serve` with two shards (and one): with
// server.cacheMaxMemory, a reload that raises a tenant's cache memory lets the one store all
// shards share hold more at once, and what either shard stores is a hit on both; without it, the
// budget stays what it was at start and the server says so; a cache larger than one growable
// shared buffer may be on Node 20 serves. Over real HTTP.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { loadConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';

const OP = 'operator-token-0123456789';
const TOKEN = 'small-token-0123456789';
const BODY = 10 * 1024;
/** Requests per round, each on a connection of its own: the kernel spreads them over both shards (all on one: a chance of 2^-39). */
const CONNECTIONS = 40;

interface CacheStats { objects: number; bytes: number; evictions: number }

/** A server of one tenant whose cache memory the test rewrites and reloads. */
async function startServer(originPort: number, server: string, memory: string, logs: Array<Record<string, unknown>>, shards = 2): Promise<{ edge: EdgeServer; rewrite: (memory: string) => void }> {
  const file = join(mkdtempSync(join(tmpdir(), 'tinyedge-cache-budget-')), 'tinyedge.yaml');
  const rewrite = (mem: string): void => writeFileSync(file, `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: ${OP}, shards: ${shards}${server} }
tenants:
  - name: small
    hosts: [small.test]
    token: ${TOKEN}
    cache: { memory: ${mem}, maxObjectSize: 64KiB }
    origins: [{ name: default, url: http://127.0.0.1:${originPort} }]
`);
  rewrite(memory);
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  return { edge: await EdgeServer.start(loadConfig(file), { logger }), rewrite };
}

describe('the cache budget at a reload', () => {
  let origin: Server;
  let originHits = 0;
  const agent = new Agent({ connections: 4 });

  /** GETs each path on a connection of its own, all at once; answers X-Cache of each. */
  const round = async (edge: EdgeServer, paths: string[]): Promise<string[]> => Promise.all(paths.map(async (path) => {
    const once = new Agent({ connections: 1, pipelining: 0 });
    try {
      const r = await request(`${edge.front.url}${path}`, { headers: { host: 'small.test' }, dispatcher: once });
      const body = Buffer.from(await r.body.arrayBuffer());
      assert.equal(r.statusCode, 200);
      assert.equal(body.length, BODY);
      return String(r.headers['x-cache']);
    } finally {
      await once.close();
    }
  }));
  const stats = async (edge: EdgeServer): Promise<{ cache: CacheStats; shards: number[] }> => {
    const r = await request(`${edge.admin.url}/v1/tenants/small/stats`, { headers: { authorization: `Bearer ${TOKEN}` }, dispatcher: agent });
    return (await r.body.json()) as { cache: CacheStats; shards: number[] };
  };
  const reload = async (edge: EdgeServer): Promise<void> => {
    const r = await request(`${edge.admin.url}/v1/reload`, { method: 'POST', headers: { authorization: `Bearer ${OP}` }, dispatcher: agent });
    assert.equal(r.statusCode, 200, await r.body.text());
  };
  const paths = (from: number): string[] => Array.from({ length: CONNECTIONS }, (_, i) => `/o/${from + i}`);

  before(async () => {
    origin = createServer((req, res) => {
      originHits++;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=600' });
      res.end(Buffer.alloc(BODY, req.url!.length));
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    await agent.close();
    await new Promise<void>((r) => origin?.close(() => r()));
  });

  // One shard as well: there no later shard's update can make up for a quota set before the budget.
  for (const shards of [2, 1]) test(`with server.cacheMaxMemory, a reload that raises the cache memory lets the store hold more, for every shard (${shards} shards)`, async () => {
    const logs: Array<Record<string, unknown>> = [];
    const { edge, rewrite } = await startServer((origin.address() as AddressInfo).port, ', cacheMaxMemory: 1MiB', '64KiB', logs, shards);
    try {
      await round(edge, paths(0));
      const small = (await stats(edge)).cache;
      assert.ok(small.bytes <= 64 * 1024 && small.objects < 7, `${small.objects} objects, ${small.bytes} bytes in 64 KiB`);
      rewrite('640KiB');
      await reload(edge);
      const before = await stats(edge);
      await round(edge, paths(100));
      const grown = await stats(edge);
      assert.equal(grown.cache.objects, small.objects + CONNECTIONS, 'the 40 new objects (about 420 KiB) held beside the old ones');
      assert.equal(grown.cache.evictions, before.cache.evictions, 'and nothing evicted for them');
      assert.ok(grown.cache.bytes > 6 * 64 * 1024 && grown.cache.bytes <= 640 * 1024, `${grown.cache.bytes} bytes`);
      // Every object is a hit, whichever shard stored it and whichever shard serves it.
      const hits = originHits;
      assert.deepEqual([...new Set(await round(edge, paths(100)))], ['HIT']);
      assert.equal(originHits, hits);
      const served = (await stats(edge)).shards.map((n, i) => n - grown.shards[i]!);
      const stored = grown.shards.map((n, i) => n - before.shards[i]!);
      assert.ok(served.every((n) => n > 0) && stored.every((n) => n > 0), `stored through ${stored.join(' + ')}, served through ${served.join(' + ')} requests per shard`);
      assert.equal(logs.filter((l) => String(l.msg).includes('until a restart')).length, 0);
    } finally {
      await edge.close();
    }
  });

  test('a cache of 6 GiB starts and serves on every supported Node.js (Node 20 grows one shared buffer to 4 GiB at most)', async () => {
    const logs: Array<Record<string, unknown>> = [];
    const { edge } = await startServer((origin.address() as AddressInfo).port, ', cacheMaxMemory: 6GiB', '5GiB', logs);
    try {
      await round(edge, paths(300));
      const hits = originHits;
      assert.deepEqual([...new Set(await round(edge, paths(300)))], ['HIT']);
      assert.equal(originHits, hits);
      assert.equal((await stats(edge)).cache.objects, CONNECTIONS);
    } finally {
      await edge.close();
    }
  });

  test('without it, the budget stays what the tenants had at start, and the server says so', async () => {
    const logs: Array<Record<string, unknown>> = [];
    const { edge, rewrite } = await startServer((origin.address() as AddressInfo).port, '', '64KiB', logs);
    try {
      rewrite('640KiB');
      await reload(edge);
      assert.equal(logs.filter((l) => String(l.msg).includes('the budget stays 65536 until a restart')).length, 1);
      await round(edge, paths(200));
      const held = (await stats(edge)).cache;
      assert.ok(held.bytes <= 64 * 1024, `${held.bytes} bytes held in the 64 KiB reserved at start`);
    } finally {
      await edge.close();
    }
  });
});
