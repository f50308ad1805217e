// A request with an Upgrade field (found by the HTTP fuzzer, bench/fuzz-http.ts): the front ignores
// the upgrade and answers it, but Node's parser stops reading HTTP after such a request for the
// rest of the bytes read with it, so a request pipelined behind it was silently lost while the
// answer said keep-alive (and one written later was answered). Now the answer says
// `Connection: close`, the connection ends, and nothing behind it reaches the handler.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Front, startFront } from '../../src/http/front.ts';
import type { FastPath } from '../../src/http/fast-path.ts';
import { exchange } from '../helpers/raw-http.ts';

const UPGRADES = [
  'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n',
  'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n',
  // Without `Connection: upgrade` llhttp does not stop; the front still ends the connection.
  'Upgrade: websocket\r\n',
];
const FOLLOW_UP = 'GET /after HTTP/1.1\r\nHost: x\r\n\r\n';

/** Answers every request it is offered, so only the front's decisions are under test. */
const greedyFastPath: FastPath = (r) => {
  const body = Buffer.from(`fast ${r.url}`);
  return { status: 200, head: Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`), body };
};

for (const [suite, fastPath] of [['an Upgrade request', undefined], ['an Upgrade request with a raw fast path', greedyFastPath]] as const) describe(suite, () => {
  let front: Front;
  const calls: string[] = [];
  before(async () => {
    front = await startFront((req: IncomingMessage, res: ServerResponse) => {
      calls.push(`${req.method} ${req.url} upgrade=${req.headers.upgrade ?? '-'}`);
      res.end(`handled ${req.url}`);
    }, { maxUrlBytes: 1024, maxHeaderBytes: 2048, fastPath });
  });
  after(() => front.close());

  for (const fields of UPGRADES) {
    for (const [how, chunks, pauseMs] of [
      ['in the same write', [`GET /up HTTP/1.1\r\nHost: x\r\n${fields}\r\n${FOLLOW_UP}`], undefined],
      ['in a later write', [`GET /up HTTP/1.1\r\nHost: x\r\n${fields}\r\n`, FOLLOW_UP], 50],
    ] as const) {
      test(`${fields.split('\r\n')[0]}: answered with Connection: close, and a request ${how} behind it is never handled`, async () => {
        calls.length = 0;
        const r = await exchange(front.port, [...chunks], pauseMs === undefined ? {} : { pauseMs });
        assert.deepEqual(r.statusLines, ['HTTP/1.1 200 OK'], r.text);
        assert.match(r.text, /\r\nConnection: close\r\n/);
        assert.match(r.text, /handled \/up$/);
        assert.equal(r.closed, true, 'the connection ends');
        // The upgrade is ignored and the field, hop-by-hop, does not reach the handler.
        assert.deepEqual(calls, ['GET /up upgrade=-']);
      });
    }
  }

  test('a request without an Upgrade field keeps its connection', async () => {
    calls.length = 0;
    const r = await exchange(front.port, [`GET /a HTTP/1.1\r\nHost: x\r\nX-Upgrade: no\r\n\r\n${FOLLOW_UP.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')}`]);
    assert.equal(r.statusLines.length, 2, r.text);
    assert.match(r.text, /(handled|fast) \/after$/);
  });
});
