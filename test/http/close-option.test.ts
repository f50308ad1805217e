// The `close` connection option (found by the HTTP fuzzer, bench/fuzz-http.ts): Node keeps an
// HTTP/1.0 connection open when its Connection field lists `keep-alive`, even beside `close`, and
// does not see `close` followed by tabs; it answered the next request on it. `close` wins (RFC
// 9112 §9.6): the answer says Connection: close and nothing after it is handled.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Front, startFront } from '../../src/http/front.ts';
import { exchange } from '../helpers/raw-http.ts';

describe('the close connection option', () => {
  let front: Front;
  const calls: string[] = [];
  before(async () => {
    front = await startFront((req: IncomingMessage, res: ServerResponse) => {
      calls.push(`${req.method} ${req.url}`);
      // With a length, so an HTTP/1.0 answer need not end its connection to end its body.
      const body = `handled ${req.url}`;
      res.writeHead(200, { 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  after(() => front.close());

  const FOLLOW_UP = 'GET /after HTTP/1.1\r\nHost: x\r\n\r\n';
  for (const [version, fields] of [
    ['1.0', 'Connection: keep-alive\r\nConnection: close\r\n'], ['1.0', 'Connection: close\r\nConnection: keep-alive\r\n'], ['1.0', 'Connection: Keep-Alive, CLOSE\r\n'],
    ['1.1', 'Connection: close\t\t\r\n'], ['1.1', 'Connection: keep-alive, close\t\r\n'],
  ]) {
    test(`an HTTP/${version} request with ${JSON.stringify(fields)} is the last one handled on its connection`, async () => {
      calls.length = 0;
      const r = await exchange(front.port, [`GET /a HTTP/${version}\r\nHost: x\r\n${fields}\r\n`, FOLLOW_UP], { pauseMs: 30 });
      assert.deepEqual(r.statusLines, ['HTTP/1.1 200 OK'], r.text);
      assert.match(r.text, /\r\nConnection: close\r\n/);
      assert.equal(r.closed, true);
      assert.deepEqual(calls, ['GET /a']);
    });
  }

  test('an HTTP/1.0 request with keep-alive alone keeps its connection', async () => {
    calls.length = 0;
    const r = await exchange(front.port, [`GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n`, FOLLOW_UP.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')], { pauseMs: 30 });
    assert.equal(r.statusLines.length, 2, JSON.stringify(r.text));
    assert.deepEqual(calls, ['GET /a', 'GET /after']);
  });
});
