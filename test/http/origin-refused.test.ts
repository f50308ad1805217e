// Requests undici refuses before sending them (found by the HTTP fuzzer, bench/fuzz-http.ts): each
// `OPTIONS *` that `tinyedge proxy` passed to its origin cost the origin pool one connection slot
// for good, and after 128 of them every miss waited forever. A fetch undici refuses fails (502) and
// leaves the pool as it was. `OPTIONS *` itself no longer gets that far: the front answers it
// (test/http/server-options.test.ts), and through the front the origin stays reachable.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Cache, Origin, OriginError } from '../../src/cache/index.ts';
import { type Front, startFront } from '../../src/http/front.ts';
import { exchange } from '../helpers/raw-http.ts';

describe('requests the origin client refuses before sending', () => {
  let server: Server;
  let url: string;
  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(`origin ${req.url}`));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test('are failed fetches that leave every connection of the pool usable', { timeout: 20_000 }, async () => {
    const origin = new Origin({ url, connections: 2 });
    try {
      const refused = [
        { method: 'OPTIONS', path: '*', headers: ['host', 'a'] },
        { method: 'GET', path: '/a', headers: ['host', 'a', 'x-bad', 'a\u0001b'] },
        { method: 'GET', path: '/a', headers: ['host', 'a', 'expect', '100-continue'] },
      ];
      for (let i = 0; i < 10; i++) {
        for (const r of refused) await assert.rejects(origin.fetch({ ...r, body: null }), (err: unknown) => err instanceof OriginError && err.status === 502);
      }
      const res = await origin.fetch({ method: 'GET', path: '/after', headers: ['host', 'a'], body: null });
      assert.equal(res.status, 200);
      assert.equal(await new Response(res.body as unknown as ReadableStream).text(), 'origin /after');
    } finally {
      await origin.close();
    }
  });

  test('through the front and the cache, as `tinyedge proxy` runs them: 300 OPTIONS * answered there, and the next miss is served', { timeout: 30_000 }, async () => {
    const cache = new Cache({ origin: { url, connections: 4 }, memoryBytes: 1 << 20 });
    let front: Front | undefined;
    try {
      front = await startFront(cache.handle);
      for (let i = 0; i < 300; i++) {
        const r = await exchange(front.port, 'OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
        assert.deepEqual(r.statusLines, ['HTTP/1.1 200 OK'], r.text);
      }
      const miss = await exchange(front.port, 'GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', { deadlineMs: 5_000 });
      assert.deepEqual(miss.statusLines, ['HTTP/1.1 200 OK'], miss.text);
      assert.match(miss.text, /origin \/after$/);
    } finally {
      await front?.close();
      await cache.close();
    }
  });
});
