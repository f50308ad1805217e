// `OPTIONS *` asks about the server itself (RFC 9110 §9.3.7): the front answers it, 200 with
// `Allow` and no body, for every handler (serve and its shards, proxy, dev), and the cache engine
// does for an embedder's own server; it never reaches a handler, a program or an origin, and the
// connection goes on. It used to be forwarded, which undici refuses: a 502 (issue 15).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cache } from '../../src/cache/index.ts';
import { SERVER_METHODS } from '../../src/cache/server-options.ts';
import { type Front, startFront } from '../../src/http/front.ts';
import { HTTP_METHODS } from '../../src/server/config/values.ts';
import { type EchoOrigin, FUZZ_HOST, startEchoOrigin, startTarget, type Target, TARGET_NAMES } from '../../bench/fuzz-http/targets.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { exchange } from '../helpers/raw-http.ts';

const ALLOW = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';
/** The whole answer to `OPTIONS *`, as the front writes it (Node adds Date and Connection). */
const ANSWER = /^HTTP\/1\.1 200 OK\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\nContent-Length: 0\r\nCache-Control: no-store\r\nDate: [^\r\n]+\r\nConnection: keep-alive\r\nKeep-Alive: timeout=\d+\r\n\r\n/;
const FOLLOW_UP = 'GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n';

test('Allow names exactly the methods a route of the config may name', () => {
  assert.deepEqual([...SERVER_METHODS], [...HTTP_METHODS]);
  assert.equal(SERVER_METHODS.join(', '), ALLOW);
});

describe('OPTIONS * at the front', () => {
  let front: Front;
  const seen: string[] = [];
  before(async () => {
    front = await startFront((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => res.end(`handled ${req.url}`));
    });
  });
  after(() => front.close());

  test('is answered 200 with Allow and no body, never handed to the handler; the request behind it is', async () => {
    seen.length = 0;
    const r = await exchange(front.port, `OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n${FOLLOW_UP}`);
    assert.match(r.text, ANSWER);
    assert.deepEqual(r.statusLines, ['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
    assert.match(r.text, /handled \/next$/);
    assert.deepEqual(seen, ['GET /next']);
  });

  test('a body it carries is read and dropped: the next request on the connection is not made of it', async () => {
    seen.length = 0;
    const chunked = 'OPTIONS * HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\n';
    const r = await exchange(front.port, `OPTIONS * HTTP/1.1\r\nHost: a\r\nContent-Length: 14\r\n\r\nGET /x HTTP/1.${chunked}${FOLLOW_UP}`);
    assert.deepEqual(r.statusLines, ['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK', 'HTTP/1.1 200 OK'], r.text);
    assert.deepEqual(seen, ['GET /next']);
  });

  test('OPTIONS in absolute-form with an empty path is the same question (RFC 9112 §3.2.4); with a path it is a resource\'s', async () => {
    seen.length = 0;
    const r = await exchange(front.port, `OPTIONS http://a HTTP/1.1\r\nHost: a\r\n\r\nOPTIONS http://a/ HTTP/1.1\r\nHost: a\r\n\r\n${FOLLOW_UP}`);
    assert.match(r.text, ANSWER);
    assert.deepEqual(r.statusLines, ['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
    assert.deepEqual(seen, ['OPTIONS /', 'GET /next']);
  });

  test('the asterisk-form for any other method is still a 400 that ends the connection', async () => {
    seen.length = 0;
    const r = await exchange(front.port, `GET * HTTP/1.1\r\nHost: a\r\n\r\n${FOLLOW_UP}`);
    assert.deepEqual(r.statusLines, ['HTTP/1.1 400 Bad Request']);
    assert.deepEqual(seen, []);
  });
});

describe('OPTIONS * through the cache engine on an embedder\'s own node:http server', () => {
  let origin: Server;
  let originRequests = 0;
  let cache: Cache;
  let server: Server;
  let port: number;
  before(async () => {
    origin = createServer((req, res) => {
      originRequests++;
      req.resume();
      req.on('end', () => res.end(`origin ${req.url}`));
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    // Fewer connections than requests below: a request that held one for good would starve the miss.
    cache = new Cache({ origin: { url: `http://127.0.0.1:${(origin.address() as AddressInfo).port}`, connections: 2 }, memoryBytes: 1 << 20 });
    const handle = cache.handle;
    server = createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    server.close();
    origin.closeAllConnections();
    origin.close();
    await cache.close();
  });

  test('is answered by the cache, never forwarded, and leaves the origin pool as it was', { timeout: 30_000 }, async () => {
    for (let i = 0; i < 50; i++) {
      const r = await exchange(port, 'OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
      assert.deepEqual(r.statusLines, ['HTTP/1.1 200 OK'], r.text);
      assert.match(r.text, new RegExp(`\r\nAllow: ${ALLOW}\r\n`));
    }
    assert.equal(originRequests, 0);
    const miss = await exchange(port, 'GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', { deadlineMs: 5_000 });
    assert.deepEqual(miss.statusLines, ['HTTP/1.1 200 OK'], miss.text);
    assert.match(miss.text, /origin \/after$/);
  });
});

describe('OPTIONS * on tinyedge serve, proxy and dev', needsKvm(), () => {
  let origin: EchoOrigin;
  let workDir: string;
  const targets: Target[] = [];
  before(async () => {
    origin = await startEchoOrigin();
    workDir = mkdtempSync(join(tmpdir(), 'tinyedge-options-'));
    const program = buildGuest('http_echo');
    // serve with two shards: the connections land on either thread's front.
    for (const name of TARGET_NAMES) targets.push(await startTarget(name, origin.url, program, workDir, 2));
  });
  after(async () => {
    await Promise.all(targets.map((t) => t.stop()));
    await origin?.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  test('each answers 200 with the same Allow, whatever the Host, without asking its origin or program', async () => {
    for (const t of targets) {
      const before = origin.requests();
      for (const host of [FUZZ_HOST, 'no-tenant.test']) {
        for (let i = 0; i < 4; i++) {
          const r = await exchange(t.port, `OPTIONS * HTTP/1.1\r\nHost: ${host}\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
          assert.match(r.text, ANSWER, `${t.name}, Host ${host}`);
          assert.deepEqual(r.statusLines, ['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK'], `${t.name}: ${r.text}`);
        }
      }
      assert.equal(origin.requests(), before, `${t.name} asked its origin`);
      // Still serving requests for resources.
      const r = await exchange(t.port, `GET /p/after HTTP/1.1\r\nHost: ${FUZZ_HOST}\r\nConnection: close\r\n\r\n`, { deadlineMs: 10_000 });
      assert.deepEqual(r.statusLines, ['HTTP/1.1 200 OK'], `${t.name}: ${r.text}`);
      assert.deepEqual(t.exceptions, [], t.name);
    }
  });
});
