// Hop-by-hop fields under `serve` (RFC 9110 §7.6.1; the one list is src/cache/hop-by-hop.ts):
// a field named in a `Connection` header, and the fixed connection-level ones, stop at tinyedge
// on every path — a miss towards the origin and back, a program's response, a deliver hook's
// headers, a request towards a program, and a hit answered on the raw fast path.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { pino } from 'pino';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

interface RawAnswer {
  status: number;
  /** Lowercase names; a repeated field keeps its last value. */
  headers: Record<string, string>;
  body: string;
}

/** Sends `head` (and `body`) on a connection of its own and reads the one answer until the server closes (every request here says `Connection: close`). */
function exchange(port: number, head: string, body = ''): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    // Written, not ended: Node's server drops a request whose client half-closes before the answer.
    const socket = connect(port, '127.0.0.1', () => socket.write(head + body));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const lines = text.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(lines[0]!.split(' ')[1]), headers, body: text.slice(end + 4) });
    });
  });
}

/** The connection-level fields the program and the origin of this test send, all of which must stop here. */
const MUST_NOT_PASS = ['x-private', 'x-resp-hop', 'x-deliver-private', 'proxy-authenticate', 'upgrade', 'trailer'];

function assertEndToEnd(a: RawAnswer, what: string): void {
  for (const name of MUST_NOT_PASS) assert.equal(a.headers[name], undefined, `${what}: ${name} reached the client`);
  // Ours may be there (Connection: close, which this test asked for), never the ones sent to us.
  assert.notEqual(a.headers['keep-alive'], 'timeout=99', `${what}: the sender's Keep-Alive reached the client`);
  assert.equal(a.headers['content-length'], String(Buffer.byteLength(a.body)), `${what}: framing`);
  assert.equal(a.headers['transfer-encoding'], undefined, `${what}: framing`);
}

describe('serve: hop-by-hop fields stop at tinyedge', needsKvm(), () => {
  let edge: EdgeServer;
  let origin: Server;
  let seen: { headers: IncomingHttpHeaders; body: string } | undefined;

  /** Fast hits of every shard (a connection lands on either). */
  const fastHits = async (tenant: string): Promise<number> => (await edge.tenantStats(tenant)).cache.fastHits;

  before(async () => {
    origin = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen = { headers: req.headers, body: Buffer.concat(chunks).toString() };
        const text = `origin ${req.url}\n`;
        res.writeHead(200, {
          connection: 'x-resp-hop', 'x-resp-hop': 'secret', 'keep-alive': 'timeout=99', 'proxy-authenticate': 'Basic',
          'x-end-to-end': 'yes', 'cache-control': 'max-age=60', 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text),
        });
        res.end(text);
      });
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    const hop = buildGuest('sdk_hop_by_hop');
    const yaml = `
server:
  listen: 127.0.0.1:0
  admin: 127.0.0.1:0
  operatorToken: operator-token-0123456789
tenants:
  - name: hop
    hosts: [hop.test]
    token: hop-token-0123456789
    origins: [{ name: default, url: "${originUrl}" }]
    programs:
      - { name: gen, file: ${hop}, roles: [generate], routes: [{ prefix: /prog }] }
      - { name: echo, file: ${buildGuest('sdk_headers')}, roles: [generate], routes: [{ prefix: /echo }] }
  - name: delivering
    hosts: [deliver.test]
    token: deliver-token-0123456789
    origins: [{ name: default, url: "${originUrl}" }]
    programs:
      - { name: deliver, file: ${hop}, roles: [deliver] }
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-hop-test.yaml' }), { logger: pino({ level: 'silent' }) });
  });

  after(async () => {
    await edge?.close();
    origin?.close();
  });

  test('on a miss, what the client lists in Connection does not reach the origin, nor what the origin lists the client', async () => {
    const miss = await exchange(
      edge.front.port,
      'GET /page HTTP/1.1\r\nHost: hop.test\r\nConnection: close, X-Req-Hop\r\nX-Req-Hop: secret\r\nProxy-Authorization: Basic eA==\r\nTE: trailers\r\nX-Kept: k\r\n\r\n',
    );
    assert.equal(miss.status, 200);
    assert.equal(miss.headers['x-cache'], 'MISS');
    assert.equal(miss.headers['x-end-to-end'], 'yes');
    assertEndToEnd(miss, 'miss');
    assert.equal(seen?.headers['x-req-hop'], undefined);
    assert.equal(seen?.headers['proxy-authorization'], undefined);
    assert.equal(seen?.headers.te, undefined);
    assert.equal(seen?.headers['x-kept'], 'k');
  });

  test('a hit on the raw fast path carries none of the fields the origin listed', async () => {
    const before = await fastHits('hop');
    const hit = await exchange(edge.front.port, 'GET /page HTTP/1.1\r\nHost: hop.test\r\nConnection: close\r\n\r\n');
    assert.equal(hit.headers['x-cache'], 'HIT');
    assert.equal(await fastHits('hop'), before + 1);
    assert.equal(hit.headers['x-end-to-end'], 'yes');
    assertEndToEnd(hit, 'fast hit');
  });

  test("a program's connection fields and framing stop at tinyedge, on its miss and on its fast hit", async () => {
    const miss = await exchange(edge.front.port, 'GET /prog HTTP/1.1\r\nHost: hop.test\r\nConnection: close\r\n\r\n');
    assert.deepEqual([miss.status, miss.headers['x-cache'], miss.headers['x-public'], miss.body], [200, 'MISS', 'yes', 'hop\n']);
    assertEndToEnd(miss, 'program miss');
    const before = await fastHits('hop');
    const hit = await exchange(edge.front.port, 'GET /prog HTTP/1.1\r\nHost: hop.test\r\nConnection: close\r\n\r\n');
    assert.deepEqual([hit.headers['x-cache'], hit.headers['x-public'], hit.body], ['HIT', 'yes', 'hop\n']);
    assert.equal(await fastHits('hop'), before + 1);
    assertEndToEnd(hit, 'program fast hit');
  });

  test('a field the client lists in Connection does not reach a program either', async () => {
    const r = await exchange(edge.front.port, 'GET /echo HTTP/1.1\r\nHost: hop.test\r\nConnection: X-Test, close\r\nX-Test: secret\r\n\r\n');
    assert.equal(r.status, 201);
    assert.equal(r.headers['x-echo-test'], '');
    assert.match(r.body, /^method=GET x-test= body=\n$/);
  });

  test("a deliver hook's connection fields and framing are dropped, its end-to-end field kept", async () => {
    const r = await exchange(edge.front.port, 'GET /delivered HTTP/1.1\r\nHost: deliver.test\r\nConnection: close\r\n\r\n');
    assert.deepEqual([r.status, r.headers['x-delivered'], r.body], [200, 'yes', 'origin /delivered\n']);
    assertEndToEnd(r, 'deliver hook');
  });

  test('a chunked request body reaches a program whole', async () => {
    const r = await exchange(
      edge.front.port,
      'POST /echo/up HTTP/1.1\r\nHost: hop.test\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nX-Test: t\r\n\r\n',
      '3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n',
    );
    assert.equal(r.status, 201);
    assert.equal(r.body, 'method=POST x-test=t body=abcdef\n');
  });

  test('a chunked request body reaches the origin whole on a pass', async () => {
    const r = await exchange(
      edge.front.port,
      'POST /form HTTP/1.1\r\nHost: hop.test\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n',
      '3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n',
    );
    assert.equal(r.status, 200);
    assert.equal(seen?.body, 'abcdef');
  });
});
