// The hardened HTTP front: hostile requests over raw sockets (each must get its exact status, a
// closed connection, and must never let the request smuggled behind it reach the handler), then
// timeouts, pipelining, handler failures and hop-by-hop stripping.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { startFront, stripHopByHop } from '../../src/http/front.ts';
import type { Front } from '../../src/http/front.ts';
import type { FastPath } from '../../src/http/fast-path.ts';
import { exchange } from '../helpers/raw-http.ts';

const H = 'Host: x\r\n';
/** Appended to every hostile request: if the front desynchronises, this is what leaks through. */
const SMUGGLED = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
const S400 = 'HTTP/1.1 400 Bad Request';

interface Hostile {
  readonly what: string;
  readonly request: string;
  readonly status: string;
  /** Requests the handler may legitimately see (a valid head whose body turns out broken). */
  readonly handled?: string[];
}

const post = (headers: string, body: string): string => `POST /p HTTP/1.1\r\n${H}${headers}\r\n${body}`;
const chunked = (body: string): string => post('Transfer-Encoding: chunked\r\n', body);

const HOSTILE: Hostile[] = [
  // Smuggling: two framings, or one the parser and the backend may read differently.
  { what: 'Content-Length together with Transfer-Encoding (CL.TE)', request: post('Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\nG'), status: S400 },
  { what: 'Transfer-Encoding together with Content-Length, request in the chunk (TE.CL)', request: post('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', `2a\r\n${SMUGGLED}\r\n0\r\n\r\n`), status: S400 },
  { what: 'a second Transfer-Encoding header that is not chunked (TE.TE)', request: post('Transfer-Encoding: chunked\r\nTransfer-Encoding: cow\r\n', '0\r\n\r\n'), status: S400 },
  { what: 'Transfer-Encoding with a space before the colon (TE.TE)', request: post('Transfer-Encoding : chunked\r\n', '0\r\n\r\n'), status: S400 },
  { what: 'an obs-folded Transfer-Encoding value (TE.TE)', request: post('Transfer-Encoding:\r\n chunked\r\n', '0\r\n\r\n'), status: S400 },
  { what: 'Transfer-Encoding xchunked (TE.TE)', request: post('Transfer-Encoding: xchunked\r\n', '0\r\n\r\n'), status: S400 },
  { what: 'Transfer-Encoding identity, which is no longer a coding', request: post('Transfer-Encoding: identity\r\n', ''), status: S400 },
  { what: 'Transfer-Encoding where chunked is not the last coding', request: post('Transfer-Encoding: chunked, gzip\r\n', '0\r\n\r\n'), status: S400 },
  { what: 'an unknown transfer coding before chunked', request: post('Transfer-Encoding: gzip, chunked\r\n', '0\r\n\r\n'), status: 'HTTP/1.1 501 Not Implemented' },
  { what: 'an unknown coding in a separate Transfer-Encoding header', request: post('Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'), status: 'HTTP/1.1 501 Not Implemented' },
  { what: 'Transfer-Encoding in an HTTP/1.0 request', request: `POST /p HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: S400 },
  { what: 'Transfer_Encoding with an underscore next to Content-Length', request: post('Transfer_Encoding: chunked\r\nContent-Length: 5\r\n', '0\r\n\r\n'), status: S400 },
  { what: 'Content_Length with an underscore', request: post('Content_Length: 5\r\n', ''), status: S400 },
  { what: 'two differing Content-Length headers', request: post('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!'), status: S400 },
  { what: 'two identical Content-Length headers', request: post('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'), status: S400 },
  { what: 'a Content-Length list', request: post('Content-Length: 5, 5\r\n', 'hello'), status: S400 },
  { what: 'a negative Content-Length', request: post('Content-Length: -1\r\n', ''), status: S400 },
  { what: 'a Content-Length that overflows 64 bits', request: post('Content-Length: 99999999999999999999999\r\n', 'x'), status: S400 },
  // Chunked bodies: the head is valid (the handler may see it), the body is not.
  { what: 'a chunk size that is not hex', request: chunked('zz\r\nhello\r\n0\r\n\r\n'), status: S400, handled: ['POST /p'] },
  { what: 'a chunk size that overflows', request: chunked('FFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n'), status: S400, handled: ['POST /p'] },
  { what: 'a negative chunk size', request: chunked('-5\r\nhello\r\n0\r\n\r\n'), status: S400, handled: ['POST /p'] },
  { what: 'a chunk size followed by a space', request: chunked('5 \r\nhello\r\n0\r\n\r\n'), status: S400, handled: ['POST /p'] },
  { what: 'chunk data longer than its size', request: chunked(`3\r\nhello\r\n0\r\n\r\n`), status: S400, handled: ['POST /p'] },
  { what: 'a chunk extension ended by a bare LF', request: chunked('5;a\nb\r\nhello\r\n0\r\n\r\n'), status: S400, handled: ['POST /p'] },
  { what: 'chunk extensions beyond the limit', request: chunked(`5;a=${'x'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n`), status: 'HTTP/1.1 413 Content Too Large', handled: ['POST /p'] },
  { what: 'bare LF line ends in the chunked body', request: chunked('5\nhello\n0\n\n'), status: S400, handled: ['POST /p'] },
  { what: 'an invalid trailer field name', request: chunked('0\r\nX T: a\r\n\r\n'), status: S400, handled: ['POST /p'] },
  // Header block.
  { what: 'a header block larger than maxHeaderBytes', request: `GET / HTTP/1.1\r\n${H}X-A: ${'a'.repeat(3_000)}\r\n\r\n`, status: 'HTTP/1.1 431 Request Header Fields Too Large' },
  { what: 'a head larger than both limits together', request: `GET /${'a'.repeat(3_000)} HTTP/1.1\r\n${H}X-A: ${'a'.repeat(3_000)}\r\n\r\n`, status: 'HTTP/1.1 431 Request Header Fields Too Large' },
  { what: 'a URL longer than maxUrlBytes', request: `GET /${'a'.repeat(1_500)} HTTP/1.1\r\n${H}\r\n`, status: 'HTTP/1.1 414 URI Too Long' },
  { what: 'a header name containing a space', request: `GET / HTTP/1.1\r\n${H}X A: b\r\n\r\n`, status: S400 },
  { what: 'an empty header name', request: `GET / HTTP/1.1\r\n${H}: b\r\n\r\n`, status: S400 },
  { what: 'a header line without a colon', request: `GET / HTTP/1.1\r\n${H}XA\r\n\r\n`, status: S400 },
  { what: 'whitespace before the first header line', request: `GET / HTTP/1.1\r\n Host: x\r\n\r\n`, status: S400 },
  { what: 'an obs-fold continuation line', request: `GET / HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`, status: S400 },
  { what: 'bare LF line ends in the head', request: `GET / HTTP/1.1\n${H.replace('\r', '')}\n`, status: S400 },
  { what: 'a bare LF between two header lines', request: `GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n`, status: S400 },
  { what: 'a bare CR inside the header block', request: `GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n`, status: S400 },
  { what: 'a NUL in a header value', request: `GET / HTTP/1.1\r\n${H}X-A: a\0b\r\n\r\n`, status: S400 },
  { what: 'a DEL in a header value', request: `GET / HTTP/1.1\r\n${H}X-A: a\x7fb\r\n\r\n`, status: S400 },
  { what: 'an HTTP/1.1 request without Host', request: `GET / HTTP/1.1\r\n\r\n`, status: S400 },
  { what: 'two Host headers', request: `GET / HTTP/1.1\r\n${H}Host: y\r\n\r\n`, status: S400 },
  { what: 'a Host with a path in it', request: `GET / HTTP/1.1\r\nHost: a/b\r\n\r\n`, status: S400 },
  // Request line.
  { what: 'a lowercase method', request: `get / HTTP/1.1\r\n${H}\r\n`, status: S400 },
  { what: 'a method with a parenthesis', request: `G(T / HTTP/1.1\r\n${H}\r\n`, status: S400 },
  { what: 'an unknown method', request: `FOO / HTTP/1.1\r\n${H}\r\n`, status: S400 },
  { what: 'an HTTP/0.9 request line', request: `GET /\r\n\r\n`, status: S400 },
  { what: 'an HTTP/2.0 request line', request: `GET / HTTP/2.0\r\n${H}\r\n`, status: 'HTTP/1.1 505 HTTP Version Not Supported' },
  { what: 'an HTTP/1.2 request line', request: `GET / HTTP/1.2\r\n${H}\r\n`, status: S400 },
  { what: 'the HTTP/2 connection preface', request: `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, status: 'HTTP/1.1 505 HTTP Version Not Supported' },
  { what: 'a space inside the request target', request: `GET /a b HTTP/1.1\r\n${H}\r\n`, status: S400 },
  { what: 'a control character in the request target', request: `GET /\x01 HTTP/1.1\r\n${H}\r\n`, status: S400 },
  { what: 'an authority-form target outside CONNECT', request: `GET example.com:80 HTTP/1.1\r\n${H}\r\n`, status: S400 },
  { what: 'the CONNECT method', request: `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n`, status: 'HTTP/1.1 501 Not Implemented' },
  { what: 'an asterisk-form target outside OPTIONS', request: `GET * HTTP/1.1\r\n${H}\r\n`, status: S400 },
  { what: 'an absolute-form target with userinfo', request: `GET http://user@evil/ HTTP/1.1\r\n${H}\r\n`, status: S400 },
  { what: 'an absolute-form target with another scheme', request: `GET ftp://evil/ HTTP/1.1\r\n${H}\r\n`, status: S400 },
];

/** Paths the handler must answer itself: a greedy fast path leaves them alone. */
const HANDLER_ONLY = new Set(['/throw', '/reject', '/throw-after-headers', '/slow', '/headers', '/after']);

/**
 * A fast path that answers every simple request it is offered (but the paths above): run with it,
 * the hostile table proves the raw parser hands every malformed or unusual request to the
 * hardened path rather than answering it.
 */
const greedyFastPath: FastPath = (r) => {
  if (HANDLER_ONLY.has(r.url)) return null;
  const body = Buffer.from(`fast ${r.url}`);
  const answer = { status: 200, head: Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`), body: r.method === 'HEAD' ? null : body };
  // An answer made later (as a program's is), after longer than the head and idle deadlines together.
  if (r.url === '/later') return new Promise((resolve) => setTimeout(() => resolve(answer), LATER_MS));
  return answer;
};
const LATER_MS = 700;

for (const [suite, fastPath] of [['HTTP front', undefined], ['HTTP front with a raw fast path', greedyFastPath]] as const) describe(suite, () => {
  let front: Front;
  const calls: string[] = [];

  function handler(req: IncomingMessage, res: ServerResponse): void | Promise<void> {
    calls.push(`${req.method} ${req.url}`);
    switch (req.url) {
      case '/throw':
        throw new Error('boom');
      case '/reject':
        return Promise.reject(new Error('async boom'));
      case '/throw-after-headers':
        res.writeHead(200, { 'content-length': '10' });
        res.write('12345');
        throw new Error('late boom');
      case '/slow':
        setTimeout(() => res.end('slow'), 80);
        return;
      case '/headers':
        res.end(JSON.stringify({ headers: req.headers, raw: req.rawHeaders, distinct: req.headersDistinct }));
        return;
    }
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => res.end(`ok ${req.url} ${bytes}`));
  }

  before(async () => {
    front = await startFront(handler, {
      maxHeaderBytes: 2_048,
      maxUrlBytes: 1_024,
      headersTimeoutMs: 300,
      requestTimeoutMs: 600,
      keepAliveTimeoutMs: 200,
      fastPath,
    });
  });
  after(() => front.close());

  for (const row of HOSTILE) {
    test(`answers ${row.what} with "${row.status}", closes, and never handles the request behind it`, async () => {
      calls.length = 0;
      const got = await exchange(front.port, row.request + SMUGGLED);
      assert.equal(got.statusLines.at(-1), row.status, got.text);
      assert.ok(got.closed, 'the connection must be closed');
      assert.deepEqual(calls, row.handled ?? []);
      assert.ok(!got.text.includes('/smuggled'), 'the smuggled request must not be answered');
    });
  }

  test('answers a request with Connection: close, says so, and closes without reading further', async () => {
    calls.length = 0;
    const got = await exchange(front.port, `GET /bye HTTP/1.1\r\n${H}Connection: close\r\n\r\n${SMUGGLED}`);
    assert.deepEqual(got.statusLines, ['HTTP/1.1 200 OK']);
    assert.match(got.text, /\r\nconnection: close\r\n/i);
    assert.ok(got.closed);
    assert.ok(!got.text.includes('/smuggled'));
  });

  test('keeps serving well-formed requests after the hostile ones', async () => {
    const got = await exchange(front.port, `GET /after HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assert.deepEqual(got.statusLines, ['HTTP/1.1 200 OK']);
    assert.match(got.text, /ok \/after 0$/);
  });

  test('closes a slowloris connection whose headers never finish with 408 after headersTimeout', async () => {
    const drip = `GET / HTTP/1.1\r\n${H}X-A: ${'a'.repeat(40)}`.split('');
    const got = await exchange(front.port, drip, { pauseMs: 20, deadlineMs: 3_000 });
    assert.deepEqual(got.statusLines, ['HTTP/1.1 408 Request Timeout']);
    assert.ok(got.closed);
    assert.ok(got.elapsedMs < 1_200, `closed after ${got.elapsedMs} ms`);
  });

  test('closes a connection that never sends a byte after headersTimeout', async () => {
    const got = await exchange(front.port, [], { deadlineMs: 3_000 });
    assert.ok(got.closed);
    assert.ok(got.elapsedMs < 1_200, `closed after ${got.elapsedMs} ms`);
  });

  test('closes an idle keep-alive connection after keepAliveTimeout', async () => {
    const got = await exchange(front.port, `GET /idle HTTP/1.1\r\n${H}\r\n`, { deadlineMs: 3_000 });
    assert.deepEqual(got.statusLines, ['HTTP/1.1 200 OK']);
    assert.ok(got.closed);
    // Node adds one second to the socket timeout behind the advertised keep-alive timeout.
    assert.ok(got.elapsedMs < 2_000, `closed after ${got.elapsedMs} ms`);
  });

  if (fastPath !== undefined) {
    test('no deadline cuts a connection while its answer is made; the idle deadline runs after it', async () => {
      const got = await exchange(front.port, `GET /later HTTP/1.1\r\n${H}\r\n`, { deadlineMs: 4_000 });
      assert.deepEqual(got.statusLines, ['HTTP/1.1 200 OK']);
      assert.match(got.text, /fast \/later$/);
      assert.ok(got.closed);
      assert.ok(got.elapsedMs >= LATER_MS, `closed after ${got.elapsedMs} ms`);
      assert.ok(got.elapsedMs < LATER_MS + 2_000, `closed after ${got.elapsedMs} ms`);
    });
  }

  test('answers pipelined keep-alive requests in order even when the first is slow', async () => {
    calls.length = 0;
    const got = await exchange(front.port, [
      `GET /slow HTTP/1.1\r\n${H}\r\nPOST /b HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabc`,
      `POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET /d HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
    ]);
    assert.deepEqual(got.statusLines, Array(4).fill('HTTP/1.1 200 OK'));
    const bodies = got.text.split(/(?=HTTP\/1\.1 \d{3} )/).map((response) => response.slice(response.indexOf('\r\n\r\n') + 4));
    assert.deepEqual(bodies, ['slow', 'ok /b 3', 'ok /c 2', 'ok /d 0']);
    assert.deepEqual(calls, ['GET /slow', 'POST /b', 'POST /c', 'GET /d']);
    assert.ok(got.closed);
  });

  test('answers a malformed pipelined request only after the earlier response, then closes', async () => {
    calls.length = 0;
    const got = await exchange(front.port, `GET /slow HTTP/1.1\r\n${H}\r\nGET /bad HTTP/1.1\r\nX A: b\r\n\r\n${SMUGGLED}`);
    assert.deepEqual(got.statusLines, ['HTTP/1.1 200 OK', S400]);
    assert.deepEqual(calls, ['GET /slow']);
    assert.ok(got.closed);
  });

  test('answers 500 when the handler throws, logs it, and keeps serving', async (t) => {
    const logged = t.mock.method(console, 'error', () => {});
    const got = await exchange(front.port, `GET /throw HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assert.deepEqual(got.statusLines, ['HTTP/1.1 500 Internal Server Error']);
    assert.equal(logged.mock.callCount(), 1);
    assert.match(String(logged.mock.calls[0]?.arguments[0]), /handler failed on GET \/throw: Error: boom/);
    const next = await exchange(front.port, `GET /next HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assert.deepEqual(next.statusLines, ['HTTP/1.1 200 OK']);
  });

  test('answers 500 when the handler rejects, and serves the next request on the same connection', async (t) => {
    t.mock.method(console, 'error', () => {});
    const got = await exchange(front.port, `GET /reject HTTP/1.1\r\n${H}\r\nGET /next HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assert.deepEqual(got.statusLines, ['HTTP/1.1 500 Internal Server Error', 'HTTP/1.1 200 OK']);
  });

  test('destroys the connection when the handler fails after sending headers', async (t) => {
    t.mock.method(console, 'error', () => {});
    const got = await exchange(front.port, `GET /throw-after-headers HTTP/1.1\r\n${H}\r\n`);
    // Whatever of the started response got out, it is cut short and never followed by a 500.
    assert.ok(got.statusLines.every((line) => line === 'HTTP/1.1 200 OK'), got.text);
    assert.ok(!got.text.includes('1234567890'));
    assert.ok(got.closed);
    assert.ok(got.elapsedMs < 500, 'destroyed at once, not left to time out');
  });

  test('strips hop-by-hop request headers, and those Connection names, from every view the handler has', async () => {
    const got = await exchange(
      front.port,
      `GET /headers HTTP/1.1\r\n${H}Connection: keep-alive, X-Drop, Host\r\nX-Drop: 1\r\nX-Keep: 2\r\nKeep-Alive: timeout=5\r\n` +
        `TE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nConnection: close\r\n\r\n`,
    );
    const seen = JSON.parse(got.text.slice(got.text.indexOf('\r\n\r\n') + 4)) as {
      headers: Record<string, string>;
      raw: string[];
      distinct: Record<string, string[]>;
    };
    assert.deepEqual(seen.headers, { host: 'x', 'x-keep': '2' });
    assert.deepEqual(seen.raw, ['Host', 'x', 'X-Keep', '2']);
    assert.deepEqual(seen.distinct, { host: ['x'], 'x-keep': ['2'] });
  });

  test("keeps a chunked request's own framing, and no other hop-by-hop field, so the handler knows a body follows", async () => {
    const got = await exchange(
      front.port,
      `POST /headers HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: X-Drop, close\r\nX-Drop: 1\r\nTE: trailers\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    );
    const seen = JSON.parse(got.text.slice(got.text.indexOf('\r\n\r\n') + 4)) as { headers: Record<string, string>; raw: string[] };
    assert.deepEqual(seen.headers, { host: 'x', 'transfer-encoding': 'chunked' });
    assert.deepEqual(seen.raw, ['Host', 'x', 'Transfer-Encoding', 'chunked']);
  });

  test('rewrites an absolute-form target to origin-form with its authority as the only Host', async () => {
    const got = await exchange(front.port, `GET http://other.example:8080?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.deepEqual(got.statusLines, ['HTTP/1.1 200 OK']);
    assert.match(got.text, /ok \/\?q=1 0$/);
  });

  test('stripHopByHop removes hop-by-hop response headers and the ones Connection names, in any case', () => {
    const headers = {
      'content-type': 'text/plain',
      Connection: 'close, X-Private',
      'x-private': '1',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      upgrade: 'h2c',
      trailer: 'X-T',
      'content-length': 5,
      'set-cookie': ['a=1', 'b=2'],
    };
    assert.equal(stripHopByHop(headers), headers);
    assert.deepEqual(headers, { 'content-type': 'text/plain', 'content-length': 5, 'set-cookie': ['a=1', 'b=2'] });
  });

  test('refuses options where headersTimeoutMs exceeds requestTimeoutMs', async () => {
    await assert.rejects(startFront(handler, { headersTimeoutMs: 500, requestTimeoutMs: 100 }), RangeError);
  });
});

describe('front: the inactivity timeout', () => {
  let front: Front;
  let release: () => void = () => {};
  const closedUnfinished: string[] = [];
  let closedOne: () => void = () => {};

  before(async () => {
    front = await startFront((req, res) => {
      res.on('close', () => {
        if (res.writableFinished) return;
        closedUnfinished.push(req.url ?? '');
        closedOne();
      });
      if (req.url === '/late') {
        // Answers long after the 200 ms inactivity timeout, when the test says so.
        const late = new Promise<void>((resolve) => { release = resolve; });
        setTimeout(() => release(), 1_500);
        void late.then(() => res.end('late but whole'));
        return;
      }
      // /flood: more than any socket buffer holds, for a client that never reads.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(1 << 20);
      const pump = (): void => { while (!res.destroyed && res.write(chunk)); };
      res.on('drain', pump);
      pump();
    }, { headersTimeoutMs: 200, requestTimeoutMs: 200, keepAliveTimeoutMs: 200 });
  });
  after(() => front.close());

  test('does not cut a client off while the server is still preparing its answer', async () => {
    const got = await exchange(front.port, `GET /late HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, { deadlineMs: 30_000 });
    assert.deepEqual(got.statusLines, ['HTTP/1.1 200 OK']);
    assert.match(got.text, /late but whole$/);
  });

  test('ends the connection of a client that stops reading the response', async () => {
    const closed = new Promise<void>((resolve) => { closedOne = resolve; });
    const socket = connect(front.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.pause();
    socket.write(`GET /flood HTTP/1.1\r\n${H}\r\n`);
    // The server gives up on the response once the socket has taken nothing for the timeout.
    await closed;
    assert.deepEqual(closedUnfinished, ['/flood']);
    socket.destroy();
  });
});

