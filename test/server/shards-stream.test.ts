// Two shards and a chunked origin answer (no Content-Length): a request fetched through one shard
// is followed by requests on the other while the origin still holds its last chunk back — one
// origin fetch, every body the same bytes; a fetch that fails mid-body breaks every follower; a
// body past the tenant's largest object still reaches every follower whole and is not stored.
// The origin sends each next chunk only once every client has what came before: nothing depends
// on how fast a thread is.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { until } from '../cache/helpers.ts';
import { streamBytes } from '../helpers/stream-bytes.ts';

const OP = 'operator-token-0123456789';
const TOKEN = 'site-token-0123456789';
/**
 * Clients, each on a connection of its own: the kernel spreads them over the shards' sockets (all
 * on one: a chance of 2^-40). Each first asks for /probe on its connection, an answer the shard
 * counts (a broken one it does not), so the per-shard counts say where the connections are.
 */
const CLIENTS = 41;
/** The chunks of every body: the body is stream-bytes.ts's stream 1. */
const CHUNKS = [30_000, 40_000, 50_000];
const TOTAL = CHUNKS.reduce((a, b) => a + b, 0);
/** The small tenant's largest object: the body crosses it with its third chunk. */
const SMALL_MAX = 64 * 1024;

/** One client's response: its head, its bytes so far, and how it ended. */
interface Client {
  head: Promise<IncomingMessage>;
  received: Buffer[];
  bytes: number;
  end: Promise<'end' | 'error'>;
}

/** A request for `url` on a new connection, or on `agent`'s one. */
function open(url: string, host: string, agent: Agent | false = false): Client {
  let ended!: (how: 'end' | 'error') => void;
  const client: Client = { head: Promise.resolve(null as unknown as IncomingMessage), received: [], bytes: 0, end: new Promise((r) => { ended = r; }) };
  client.head = new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpRequest(url, { agent, headers: { host } }, (res) => {
      resolve(res);
      res.on('data', (c: Buffer) => { client.received.push(c); client.bytes += c.length; });
      res.on('end', () => ended('end'));
      res.on('error', () => ended('error'));
      res.on('aborted', () => ended('error'));
    });
    req.on('error', (err) => { reject(err); ended('error'); });
    req.end();
  });
  return client;
}

/** A request for `path` on a new connection that has first answered /probe. */
async function openAfterProbe(base: string, path: string, host: string): Promise<Client> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const probe = open(`${base}/probe`, host, agent);
  assert.equal(await probe.end, 'end');
  const client = open(`${base}${path}`, host, agent);
  void client.end.then(() => agent.destroy());
  return client;
}

describe('serve with two shards: bodies of unknown length', () => {
  let edge: EdgeServer;
  let origin: Server;
  /** Origin requests per path. */
  const fetched = new Map<string, number>();
  /** What the origin does after each chunk but the last, per path: resolve to send the next one. */
  const pacers = new Map<string, (sent: number) => Promise<'next' | 'break'>>();

  const stats = async (tenant: string, token: string): Promise<{ shards: number[]; cache: { objects: number } }> => {
    const r = await fetch(`${edge.admin.url}/v1/tenants/${tenant}/stats`, { headers: { authorization: `Bearer ${token}` } });
    return await r.json() as { shards: number[]; cache: { objects: number } };
  };

  before(async () => {
    origin = createServer((req: IncomingMessage, res: ServerResponse) => {
      const path = req.url!;
      if (path === '/probe') { res.end('probe'); return; }
      fetched.set(path, (fetched.get(path) ?? 0) + 1);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=600' });
      const pace = fetched.get(path) === 1 ? pacers.get(path) : undefined;
      const send = async (): Promise<void> => {
        let at = 0;
        for (const [i, size] of CHUNKS.entries()) {
          if (i > 0 && pace !== undefined && await pace(at) === 'break') { req.socket.destroy(); return; }
          res.write(streamBytes(1, at, size));
          at += size;
        }
        res.end();
      };
      void send();
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    const yaml = `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: ${OP}, shards: 2 }
tenants:
  - name: site
    hosts: [site.test]
    token: ${TOKEN}
    origins: [{ name: default, url: ${url} }]
  - name: small
    hosts: [small.test]
    token: small-${TOKEN}
    cache: { memory: 1MiB, maxObjectSize: ${SMALL_MAX} }
    origins: [{ name: default, url: ${url} }]
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-shards-stream-test.yaml' }), { logger: pino({ level: 'silent' }) });
  });

  after(async () => {
    await edge?.close();
    await new Promise<void>((r) => origin?.close(() => r()));
  });

  /**
   * The first client, then the others once it has the first chunk; the origin sends each next
   * chunk once every client has all before it, or breaks off after the first if `breaks`.
   */
  const run = async (host: string, path: string, breaks = false): Promise<{ clients: Client[]; perShard: number[] }> => {
    const clients: Client[] = [];
    const everyone = (n: number): Promise<void> => until(() => clients.length === CLIENTS && clients.every((c) => c.bytes >= n), 20_000, `${n} bytes at every client`);
    pacers.set(path, async (sent) => {
      await everyone(sent);
      return breaks ? 'break' : 'next';
    });
    const tenant = host === 'site.test' ? ['site', TOKEN] as const : ['small', `small-${TOKEN}`] as const;
    const before = (await stats(tenant[0], tenant[1])).shards;
    clients.push(await openAfterProbe(edge.front.url, path, host));
    await until(() => clients[0]!.bytes > 0, 20_000, 'the first chunk at the first client');
    clients.push(...await Promise.all(Array.from({ length: CLIENTS - 1 }, () => openAfterProbe(edge.front.url, path, host))));
    await Promise.all(clients.map((c) => c.end));
    const perShard = (await stats(tenant[0], tenant[1])).shards.map((n, i) => n - before[i]!);
    assert.equal(perShard.length, 2);
    assert.ok(perShard.every((n) => n > 0), `requests per shard: ${perShard.join(', ')}`);
    return { clients, perShard };
  };

  test('a chunked answer fetched through one shard streams to the other before its last chunk, from one origin fetch', async () => {
    const { clients } = await run('site.test', '/live');
    const expected = Buffer.from(streamBytes(1, 0, TOTAL));
    for (const c of clients) {
      assert.equal(await c.end, 'end');
      assert.equal((await c.head).headers['transfer-encoding'], 'chunked');
      assert.ok(Buffer.concat(c.received).equals(expected), 'every body is the origin\'s bytes');
    }
    assert.equal(fetched.get('/live'), 1, 'one origin fetch for requests on both shards');
    // Stored whole: a hit, on whichever shard.
    const hit = open(`${edge.front.url}/live`, 'site.test');
    assert.equal(await hit.end, 'end');
    assert.deepEqual([(await hit.head).headers['x-cache'], (await hit.head).headers['content-length']], ['HIT', String(TOTAL)]);
    assert.ok(Buffer.concat(hit.received).equals(expected));
  });

  test('a chunked fetch that fails mid-body breaks every follower on both shards; the next request fetches again', async () => {
    const { clients } = await run('site.test', '/breaks', true);
    const first = Buffer.from(streamBytes(1, 0, CHUNKS[0]!));
    for (const c of clients) {
      assert.equal(await c.end, 'error', 'the body breaks, it does not end');
      assert.ok(Buffer.concat(c.received).equals(first), 'what came before the break, and nothing else');
    }
    assert.equal(fetched.get('/breaks'), 1);
    const again = open(`${edge.front.url}/breaks`, 'site.test');
    assert.equal(await again.end, 'end');
    assert.equal(Buffer.concat(again.received).length, TOTAL);
    assert.equal(fetched.get('/breaks'), 2);
  });

  test("a chunked body past the tenant's largest object reaches every follower on both shards whole, and is not stored", async () => {
    const { clients } = await run('small.test', '/big');
    const expected = Buffer.from(streamBytes(1, 0, TOTAL));
    for (const c of clients) {
      assert.equal(await c.end, 'end');
      assert.ok(Buffer.concat(c.received).equals(expected), 'every body is the origin\'s bytes');
    }
    assert.equal(fetched.get('/big'), 1);
    const next = open(`${edge.front.url}/big`, 'small.test');
    assert.equal(await next.end, 'end');
    assert.equal((await next.head).headers['x-cache'], 'MISS');
    assert.equal(fetched.get('/big'), 2, 'not stored: the next request goes to the origin');
    assert.equal((await stats('small', `small-${TOKEN}`)).cache.objects, 0);
  });
});
