// A program's passes and hit-for-miss misses on the front's raw path (cache/fast-fetch.ts): taken
// from raw bytes to raw bytes, answered as the full path answers them (the program sees the same
// request, the client gets the same status, fields and body), in order with the requests around
// them, and counted. The full path is reached with the same request by adding a Connection option
// the raw parser declines (the option names no field, so the request the program sees is the same).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const HOST = 'raw.test';
const TOKEN = 'raw-token-0123456789';
/** Declined by the raw parser, dropped by the full path before the program: the same request either way. */
const FULL_PATH = 'Connection: keep-alive, x-unused\r\n';

interface Answer {
  status: number;
  /** Fields as sent, lower-case names, in order. */
  fields: Array<[string, string]>;
  body: string;
}

/** Reads HTTP/1.1 answers off `socket` as they come (Content-Length framing; none for HEAD, 204, 304). */
class Reader {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private ended = false;
  constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.wake?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  async next(head = false): Promise<Answer> {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const lines = this.buf.toString('latin1', 0, end).split('\r\n');
        const status = Number(lines[0]!.split(' ')[1]);
        const fields = lines.slice(1).map((l): [string, string] => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]);
        const length = head || status === 204 || status === 304 ? 0 : Number(fields.find(([n]) => n === 'content-length')?.[1] ?? 0);
        if (this.buf.length >= end + 4 + length) {
          const body = this.buf.toString('utf8', end + 4, end + 4 + length);
          this.buf = this.buf.subarray(end + 4 + length);
          return { status, fields, body };
        }
      }
      if (this.ended) throw new Error(`connection closed with ${this.buf.length} bytes of an incomplete answer`);
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  /** Resolves once the server has closed the connection. */
  async closed(): Promise<void> {
    while (!this.ended) {
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

describe('serve: program answers on the raw path', needsKvm(), () => {
  let edge: EdgeServer;

  const open = async (): Promise<{ socket: Socket; reader: Reader }> => {
    const url = new URL(edge.front.url);
    const socket = connect(Number(url.port), url.hostname);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return { socket, reader: new Reader(socket) };
  };
  const requestText = (method: string, path: string, extra = ''): string => `${method} ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${extra}\r\n`;
  /** One request on a connection of its own. */
  const exchange = async (method: string, path: string, extra = ''): Promise<Answer> => {
    const { socket, reader } = await open();
    socket.write(requestText(method, path, extra));
    const answer = await reader.next(method === 'HEAD');
    socket.destroy();
    return answer;
  };
  const cacheStats = async (): Promise<{ fastFetches: number; passes: number; misses: number; hits: number; fastHits: number }> => {
    const r = await fetch(`${edge.admin.url}/v1/tenants/raw/stats`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.status, 200);
    return ((await r.json()) as { cache: { fastFetches: number; passes: number; misses: number; hits: number; fastHits: number } }).cache;
  };
  /** What two answers must share: everything but Date and the fields Node's server adds (Connection, Keep-Alive). */
  const comparable = (a: Answer): Answer => ({ ...a, fields: a.fields.filter(([n]) => n !== 'date' && n !== 'connection' && n !== 'keep-alive') });
  /** The same request on the raw path and on the full one: the raw one must have been taken raw. */
  const bothPaths = async (method: string, path: string, extra = ''): Promise<{ raw: Answer; full: Answer }> => {
    const before = (await cacheStats()).fastFetches;
    const raw = await exchange(method, path, extra);
    assert.equal((await cacheStats()).fastFetches, before + 1, `${method} ${path} was answered on the raw path`);
    const full = await exchange(method, path, extra + FULL_PATH);
    assert.equal((await cacheStats()).fastFetches, before + 1, `${method} ${path} with a Connection option went the full path`);
    return { raw, full };
  };

  before(async () => {
    const yaml = `
server:
  listen: 127.0.0.1:0
  admin: 127.0.0.1:0
  shards: 1
tenants:
  - name: raw
    hosts: [${HOST}]
    token: ${TOKEN}
    programs:
      - name: app
        file: ${buildGuest('sdk_raw')}
        roles: [generate]
        routes: [{ prefix: / }]
        timeout: 300ms
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-raw-program-test.yaml' }), { logger: pino({ level: 'silent' }) });
  });

  after(async () => {
    await edge?.close();
  });

  test('a pass (Cache-Control: no-store) is answered raw, as the full path answers it', async () => {
    const { raw, full } = await bothPaths('GET', '/page?q=1', 'Cache-Control: no-store\r\nX-Custom: a b\r\nX-Utf8: é€\r\n');
    assert.equal(raw.status, 200);
    assert.match(raw.body, /^GET \/page\?q=1\n/);
    assert.match(raw.body, /\nx-custom: a b\n/);
    assert.match(raw.body, /\nx-utf8: é€\n/, 'a field\'s bytes reach the program as the client sent them');
    assert.match(raw.body, /\nx-forwarded-for: 127\.0\.0\.1\n/);
    assert.match(raw.body, /\nvia: 1\.1 tinyedge\n/);
    assert.ok(raw.fields.some(([n, v]) => n === 'x-cache' && v === 'PASS'));
    assert.ok(raw.fields.some(([n]) => n === 'date'), 'the raw answer has a Date');
    assert.deepEqual(comparable(raw), comparable(full));
  });

  test('a program\'s own Via is extended with ours, once, as on the full path', async () => {
    const { raw, full } = await bothPaths('GET', '/via', 'Cache-Control: no-store\r\n');
    assert.deepEqual(raw.fields.filter(([n]) => n === 'via'), [['via', '1.0 app, 1.1 tinyedge']]);
    assert.deepEqual(comparable(raw), comparable(full));
  });

  test('a HEAD pass has the GET answer\'s fields and no body', async () => {
    const { raw, full } = await bothPaths('HEAD', '/page', 'Cache-Control: no-store\r\n');
    assert.equal(raw.status, 200);
    assert.equal(raw.body, '');
    assert.ok(Number(raw.fields.find(([n]) => n === 'content-length')?.[1]) > 0, 'the length of the body a GET gets');
    assert.deepEqual(comparable(raw), comparable(full));
  });

  test('a 204 goes out without a body, as Node writes it', async () => {
    const { raw, full } = await bothPaths('GET', '/empty', 'Cache-Control: no-store\r\n');
    assert.equal(raw.status, 204);
    assert.deepEqual(comparable(raw), comparable(full));
  });

  test('a timeout and a fault answer 504 and 502 with the failure class only, as on the full path', async () => {
    const spin = await bothPaths('GET', '/spin', 'Cache-Control: no-store\r\n');
    assert.equal(spin.raw.status, 504);
    assert.deepEqual(comparable(spin.raw), comparable(spin.full));
    const crash = await bothPaths('GET', '/crash', 'Cache-Control: no-store\r\n');
    assert.equal(crash.raw.status, 502);
    assert.doesNotMatch(crash.raw.body, /null|address|0x/i, 'no guest detail reaches the client');
    assert.deepEqual(comparable(crash.raw), comparable(crash.full));
  });

  test('a hit-for-miss key is fetched raw; an answer that may now be stored is stored and then hit', async () => {
    const first = await exchange('GET', '/private');
    assert.equal(first.status, 200);
    assert.ok(first.fields.some(([n, v]) => n === 'x-cache' && v === 'MISS'));
    // The first answer was not storable: the key is hit-for-miss, and the next misses are raw.
    const { raw, full } = await bothPaths('GET', '/private');
    assert.ok(raw.fields.some(([n, v]) => n === 'x-cache' && v === 'MISS'));
    assert.deepEqual(comparable(raw), comparable(full));

    const before = await cacheStats();
    const stored = await exchange('GET', '/private', 'X-Store: 1\r\n');
    assert.equal((await cacheStats()).fastFetches, before.fastFetches + 1);
    assert.ok(stored.fields.some(([n, v]) => n === 'x-cache' && v === 'MISS'));
    assert.ok(stored.fields.some(([n, v]) => n === 'age' && v === '0'), 'a stored answer carries its Age');
    assert.ok(!stored.fields.some(([n]) => n === 'surrogate-key'), 'surrogate keys are the cache\'s, not the client\'s');
    const hit = await exchange('GET', '/private');
    assert.ok(hit.fields.some(([n, v]) => n === 'x-cache' && v === 'HIT'));
    assert.equal(hit.body, stored.body);
    const after = await cacheStats();
    assert.equal(after.fastHits, before.fastHits + 1);
    assert.equal(after.fastFetches, before.fastFetches + 1);
  });

  test('pipelined requests are answered in order, raw answers made later and declined requests alike', async () => {
    const { socket, reader } = await open();
    socket.write(
      requestText('GET', '/one', 'Cache-Control: no-store\r\n') +
      requestText('GET', '/two', 'Cache-Control: no-store\r\n') +
      // Declined by the raw path: it and everything after it go to Node's server, after the answers owed.
      requestText('GET', '/three', `Cache-Control: no-store\r\n${FULL_PATH}`) +
      requestText('GET', '/four', 'Cache-Control: no-store\r\n'),
    );
    const bodies: string[] = [];
    for (let i = 0; i < 4; i++) bodies.push((await reader.next()).body.split('\n')[0]!);
    assert.deepEqual(bodies, ['GET /one', 'GET /two', 'GET /three', 'GET /four']);
    socket.destroy();
  });

  test('a client that stops sending after its request still gets the answer, then the connection ends', async () => {
    const { socket, reader } = await open();
    socket.end(requestText('GET', '/half', 'Cache-Control: no-store\r\n'));
    const answer = await reader.next();
    assert.equal(answer.status, 200);
    assert.match(answer.body, /^GET \/half\n/);
    await reader.closed();
  });

  test('a client that leaves while its program runs costs nothing but that answer', async () => {
    const { socket } = await open();
    socket.write(requestText('GET', '/spin', 'Cache-Control: no-store\r\n'));
    socket.destroy();
    const after = await exchange('GET', '/after', 'Cache-Control: no-store\r\n');
    assert.equal(after.status, 200);
  });
});
