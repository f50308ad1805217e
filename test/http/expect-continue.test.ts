// `Expect: 100-continue` on a request pipelined behind another (found by the HTTP fuzzer,
// bench/fuzz-http.ts): Node wrote the 100 into the still-queued response, and the handler's Buffer
// body then sent the final head first, so the 100 landed between that head and its body and the
// client read "HTTP/1.1 100 Co…" as the body. A queued response now skips the 100; one that owns
// the connection still gets it first.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Front, startFront } from '../../src/http/front.ts';
import { exchange } from '../helpers/raw-http.ts';

/** A complete response with this body, and the interim 100 only before its head. */
const answer = (body: string): string => `(?:HTTP/1\\.1 100 Continue\\r\\n\\r\\n)?HTTP/1\\.1 200 OK\\r\\n(?:[^\\r\\n]+\\r\\n)*\\r\\n${body}`;

describe('Expect: 100-continue', () => {
  let front: Front;
  before(async () => {
    front = await startFront((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      // The first answer takes a while, so the next is written while it still waits in line.
      req.on('end', () => setTimeout(() => {
        const body = Buffer.from(`handled ${req.url}`);
        res.writeHead(200, { 'content-length': body.length });
        res.end(body);
      }, req.url === '/a' ? 50 : 0));
    });
  });
  after(() => front.close());

  test('behind another request: every answer whole, the 100 never inside one', async () => {
    const r = await exchange(front.port, [
      'PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok',
      'DELETE /b HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n',
      'GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ].join(''));
    // Without its 100 the answer to /b may end the connection (Node's rule); /c is then never read.
    assert.match(r.text, new RegExp(`^${answer('handled /a')}${answer('handled /b')}(?:${answer('handled /c')})?$`), JSON.stringify(r.text));
    assert.equal(r.closed, true);
  });

  test('first on its connection: the 100 comes before the body is sent, then the answer', async () => {
    const r = await exchange(front.port, ['PUT /d HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n', 'ok'], { pauseMs: 50 });
    assert.match(r.text, new RegExp(`^HTTP/1\\.1 100 Continue\\r\\n\\r\\n${answer('handled /d')}$`), JSON.stringify(r.text));
  });
});
