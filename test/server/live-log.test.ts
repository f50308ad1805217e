// The live request log over real HTTP, with two shards: one record per request with what served
// it (cache result, origin or program and version, VM figures, the program's te_log lines, the
// failure), tenant-scoped (a tenant's token reads only its records, and not another's route),
// filtered, as NDJSON and as Server-Sent Events; and a reader that cannot keep up loses records,
// is told how many, and holds no more than its bound.
import { readFileSync } from 'node:fs';
import { after, before, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import { setsockopt, SOL_SOCKET } from '../../src/kvm/libc.ts';
import { LiveLog, MAX_BATCHES_BEHIND, MAX_BUFFERED_BYTES, type ReaderLimits, ReaderRefused, type ReaderSpec } from '../../src/server/live-log.ts';
import { OutputSlots, SLOTS } from '../../src/server/log-slots.ts';
import { BATCH_TIMING, type EncodedBatch, FAST_WORDS, RecordBatcher, releaseBatch, rowOrder } from '../../src/server/record-batch.ts';
import { decodeBatch, logged } from '../helpers/decode-batch.ts';
import { BatchWriter } from '../../src/server/record-writer.ts';
import { FilterError, parseFilter, pickMatching, RateCap, type RecordFilter, Sampler } from '../../src/server/record-filter.ts';
import type { LogRecord, RequestRecord } from '../../src/server/records.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { startDemoOrigin, type DemoOrigin } from '../../src/server/demo-origin.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const OP = 'operator-token-0123456789';
const A = 'tenant-a-token-0123456789';
const B = 'tenant-b-token-0123456789';

/** A live-log stream being read: its records (and other lines) as they arrive. */
class Stream {
  readonly lines: Array<Record<string, unknown>> = [];
  private waiters: Array<() => void> = [];
  private constructor(readonly res: IncomingMessage) {
    let rest = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (line.trim() !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static open(url: string, token: string): Promise<Stream> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
        else resolve(new Stream(res));
      });
      req.on('error', reject);
      req.end();
    });
  }

  get records(): LogRecord[] {
    return this.lines.filter((l) => 'time' in l) as unknown as LogRecord[];
  }

  /** Resolves with the first record `pick` accepts, once it has arrived. */
  async find(pick: (r: LogRecord) => boolean): Promise<LogRecord> {
    for (;;) {
      const r = this.records.find(pick);
      if (r) return r;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  close(): void {
    this.res.destroy();
  }
}

describe('live request log', needsKvm(), () => {
  let edge: EdgeServer;
  let origin: DemoOrigin;
  const agent = new Agent({ connections: 4 });

  /** A request on a connection of its own (a new connection starts on the fast path). */
  const get = async (host: string, path: string, reuse = false): Promise<number> => {
    const r = await request(`${edge.front.url}${path}`, { headers: { host, ...(reuse ? {} : { connection: 'close' }) }, dispatcher: reuse ? agent : undefined });
    await r.body.text();
    return r.statusCode;
  };
  const logUrl = (path: string): string => `${edge.admin.url}${path}`;

  /** An origin that holds every request it gets (until its client goes), and says when one arrives. */
  let holding: Server;
  let held: () => void = () => {};

  before(async () => {
    origin = await startDemoOrigin('127.0.0.1', 0);
    holding = createServer(() => held());
    await new Promise<void>((r) => holding.listen(0, '127.0.0.1', r));
    const headers = buildGuest('sdk_headers');
    const misbehave = buildGuest('sdk_misbehave');
    const yaml = `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: ${OP}, shards: 2 }
tenants:
  - name: a
    hosts: [a.test]
    token: ${A}
    origins: [{ name: default, url: "${origin.url}" }]
    programs:
      - { name: echo, file: ${headers}, routes: [{ prefix: /p }], memory: 16MiB }
  - name: b
    hosts: [b.test]
    token: ${B}
    programs:
      - { name: misbehave, file: ${misbehave}, routes: [{ prefix: / }], memory: 16MiB, timeout: 300ms }
  - name: c
    hosts: [c.test]
    token: tenant-c-token-0123456789
    origins: [{ name: default, url: "http://127.0.0.1:${(holding.address() as AddressInfo).port}" }]
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-live-log-test.yaml' }), { logger: pino({ level: 'silent' }) });
  });
  after(async () => {
    await agent.close();
    // First: a request it holds would keep the server's close waiting.
    holding?.closeAllConnections();
    await new Promise<void>((r) => (holding === undefined ? r() : holding.close(() => r())));
    await edge?.close();
    await origin?.close();
  });

  test("a tenant's stream has a record per request: cache result, backend, VM figures, te_log lines", async () => {
    const s = await Stream.open(logUrl('/v1/tenants/a/log'), A);
    try {
      assert.equal(s.res.headers['content-type'], 'application/x-ndjson; charset=utf-8');
      // Each shard has its own cache: by the third request one of them has the page.
      for (let i = 0; i < 3; i++) assert.equal(await get('a.test', '/page?x=1'), 200);
      assert.equal(await get('a.test', '/p/echo', true), 201);
      assert.equal(await get('b.test', '/other'), 200);
      // A pass answered on the raw path (cache/fast-fetch.ts) is recorded as fully as one on the full path.
      const raw = await request(`${edge.front.url}/p/raw`, { headers: { host: 'a.test', 'cache-control': 'no-store', connection: 'close' } });
      assert.equal(raw.statusCode, 201);
      const rawBytes = (await raw.body.arrayBuffer()).byteLength;

      const miss = await s.find((r) => r.url === '/page?x=1' && r.cache === 'miss');
      assert.equal(miss.tenant, 'a');
      assert.equal(miss.host, 'a.test');
      assert.equal(miss.method, 'GET');
      assert.equal(miss.status, 200);
      assert.equal(miss.backend, 'default');
      assert.equal(miss.backendKind, 'origin');
      assert.equal(miss.originStatus, 200);
      assert.ok(miss.bytes! > 0);
      assert.ok(miss.totalUs > 0);
      assert.ok(miss.shard === 0 || miss.shard === 1);
      assert.ok(Math.abs(miss.time - Date.now()) < 60_000);
      // Asked on a new connection: the fast path's hit, on whichever shard took it.
      const hit = await s.find((r) => r.url === '/page?x=1' && r.cache !== 'miss');
      assert.ok(hit.cache === 'fast-hit' || hit.cache === 'hit', String(hit.cache));
      assert.equal(hit.backend, undefined, 'no backend: the key is left out');
      assert.equal(hit.vmUs, undefined, 'no VM call: no VM figures');
      assert.equal(hit.bytes, miss.bytes);

      const prog = await s.find((r) => r.url === '/p/echo');
      assert.equal(prog.status, 201);
      assert.equal(prog.cache, 'miss');
      assert.equal(prog.backend, 'echo');
      assert.equal(prog.backendKind, 'program');
      assert.match(String(prog.version), /^a\/echo@\d+$/);
      assert.equal(prog.originStatus, 201);
      assert.ok(prog.vmUs! > 0 && prog.guestUs! > 0 && prog.guestUs! <= prog.vmUs!, `${prog.vmUs} ${prog.guestUs}`);
      assert.ok(prog.vmExits! > 0);
      assert.ok(prog.dirtyPages! > 0);
      assert.deepEqual(prog.logs, ['served a request']);
      const passed = await s.find((r) => r.url === '/p/raw');
      assert.equal(passed.status, 201);
      assert.equal(passed.cache, 'pass');
      assert.equal(passed.backend, 'echo');
      assert.equal(passed.backendKind, 'program');
      assert.equal(passed.version, prog.version);
      assert.equal(passed.bytes, rawBytes);
      assert.ok(passed.totalUs > 0 && passed.vmUs! > 0 && passed.vmExits! > 0, JSON.stringify(passed));
      assert.deepEqual(passed.logs, ['served a request']);
      const stats = await request(`${edge.admin.url}/v1/tenants/a/stats`, { headers: { authorization: `Bearer ${A}` } });
      assert.equal(((await stats.body.json()) as { cache: { fastFetches: number } }).cache.fastFetches, 1, 'the pass took the raw path');
      // Tenant b's request is not in a's stream.
      assert.ok(s.records.every((r) => r.tenant === 'a'));
    } finally {
      s.close();
    }
  });

  test("a tenant's token cannot read another tenant's log nor everyone's; the operator's reads all", async () => {
    await assert.rejects(Stream.open(logUrl('/v1/tenants/b/log'), A), /status 403/);
    await assert.rejects(Stream.open(logUrl('/v1/log'), A), /status 403/);
    await assert.rejects(Stream.open(logUrl('/v1/log'), 'nope'), /status 401/);
    const s = await Stream.open(logUrl('/v1/log'), OP);
    try {
      await get('a.test', '/page?all');
      await get('b.test', '/all');
      await s.find((r) => r.tenant === 'a' && r.url === '/page?all');
      await s.find((r) => r.tenant === 'b' && r.url === '/all');
    } finally {
      s.close();
    }
  });

  test('filters: status class, cache result, URL prefix and backend; a fault and a timeout say why', async () => {
    const failures = await Stream.open(logUrl('/v1/tenants/b/log?status=5xx'), B);
    const misses = await Stream.open(logUrl('/v1/log?tenant=a&cache=miss&prefix=/f/'), OP);
    const program = await Stream.open(logUrl('/v1/log?backend=echo'), OP);
    try {
      await get('b.test', '/fine');
      assert.equal(await get('b.test', '/crash'), 502);
      assert.equal(await get('b.test', '/loop'), 504);
      await get('a.test', '/f/1');
      await get('a.test', '/f/1');
      await get('a.test', '/g/1');
      await get('a.test', '/p/filtered', true);

      const fault = await failures.find((r) => r.url === '/crash');
      assert.equal(fault.status, 502);
      assert.match(String(fault.error), /^fault: .*page fault/);
      const timeout = await failures.find((r) => r.url === '/loop');
      assert.equal(timeout.status, 504);
      assert.match(String(timeout.error), /^timeout: /);
      assert.ok(timeout.guestUs! > 200_000, String(timeout.guestUs));
      await misses.find((r) => r.url === '/f/1');
      const echoed = await program.find((r) => r.url === '/p/filtered');
      assert.equal(echoed.backend, 'echo');

      // Once the later records are in, the earlier ones the filters leave out are known absent.
      assert.ok(failures.records.every((r) => r.status >= 500), 'only 5xx');
      assert.ok(misses.records.every((r) => r.tenant === 'a' && r.url === '/f/1' && r.cache === 'miss'));
      assert.ok(program.records.every((r) => r.backend === 'echo'));
    } finally {
      failures.close();
      misses.close();
      program.close();
    }
  });

  test('a client that leaves before its answer still has its record: 499, and why', async () => {
    const s = await Stream.open(logUrl('/v1/log?tenant=c'), OP);
    try {
      const arrived = new Promise<void>((r) => { held = r; });
      const client = connect(edge.front.port, '127.0.0.1');
      client.on('error', () => {});
      client.write('GET /held HTTP/1.1\r\nHost: c.test\r\n\r\n');
      // The origin has the request: the server is waiting for its answer when the client goes.
      await arrived;
      client.resetAndDestroy();
      const left = await s.find((r) => r.url === '/held');
      assert.equal(left.status, 499);
      assert.match(String(left.error), /^client: the connection closed before the response ended/);
      assert.equal(left.bytes, 0);
      assert.equal(left.tenant, 'c');
    } finally {
      s.close();
    }
  });

  test('bad filters are refused with the reason', async () => {
    for (const [q, why] of [['status=200', /class such as 2xx/], ['cache=warm', /expected one of hit/], ['prefix=abc', /starting with \//], ['colour=red', /unknown filter/], ['format=xml', /ndjson or sse/]] as const) {
      const r = await request(logUrl(`/v1/log?${q}`), { headers: { authorization: `Bearer ${OP}` } });
      assert.equal(r.statusCode, 400, q);
      assert.match(String(((await r.body.json()) as { error: string }).error), why);
    }
  });

  test('Server-Sent Events for the browser', async () => {
    const chunks: string[] = [];
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      httpRequest(logUrl('/v1/tenants/a/log?prefix=/sse'), { headers: { authorization: `Bearer ${A}`, accept: 'text/event-stream' } }, resolve).on('error', reject).end();
    });
    try {
      assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
      res.setEncoding('utf8');
      const got = new Promise<void>((resolve) => res.on('data', (c: string) => {
        chunks.push(c);
        if (chunks.join('').includes('"url":"/sse"')) resolve();
      }));
      await get('a.test', '/sse');
      await got;
      const event = chunks.join('').split('\n\n').find((e) => e.includes('"url":"/sse"'))!;
      assert.match(event, /^data: \{.*\}$/);
    } finally {
      res.destroy();
    }
  });

  test('with no reader left, the shards record nothing', async () => {
    // Readers of the earlier tests are gone once their connections close.
    const deadline = Date.now() + 5000;
    while (edge.liveLog.readerCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(edge.liveLog.readerCount, 0);
  });
});

describe('the live log over HTTP, from a server without programs', () => {
  let edge: EdgeServer;
  let origin: DemoOrigin;
  const get = async (host: string, path: string): Promise<number> => {
    const r = await request(`${edge.front.url}${path}`, { headers: { host, connection: 'close' } });
    await r.body.text();
    return r.statusCode;
  };

  before(async () => {
    origin = await startDemoOrigin('127.0.0.1', 0);
    const yaml = `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: ${OP}, shards: 2, liveLogReaders: 3, liveLogReadersPerTenant: 2 }
tenants:
  - name: a
    hosts: [a.test]
    token: ${A}
    origins: [{ name: default, url: "${origin.url}" }]
  - name: b
    hosts: [b.test]
    token: ${B}
    origins: [{ name: default, url: "${origin.url}" }]
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-live-log-cache-test.yaml' }), { logger: pino({ level: 'silent' }) });
  });
  after(async () => {
    await edge?.close();
    await origin?.close();
  });

  test('a chunked NDJSON stream of one tenant: its misses and hits, not the other tenant\'s; the admin port answers meanwhile', async () => {
    const s = await Stream.open(`${edge.admin.url}/v1/tenants/a/log`, A);
    try {
      assert.equal(s.res.headers['content-type'], 'application/x-ndjson; charset=utf-8');
      assert.equal(s.res.headers['transfer-encoding'], 'chunked');
      assert.equal(s.res.headers['cache-control'], 'no-store');
      assert.equal(s.res.headers['x-content-type-options'], 'nosniff');
      assert.equal(await get('b.test', '/b-page'), 200);
      for (let i = 0; i < 3; i++) assert.equal(await get('a.test', '/a-page'), 200);
      const miss = await s.find((r) => r.url === '/a-page' && r.cache === 'miss');
      assert.deepEqual([miss.tenant, miss.host, miss.status, miss.backend, miss.backendKind], ['a', 'a.test', 200, 'default', 'origin']);
      const hit = await s.find((r) => r.url === '/a-page' && r.cache !== 'miss');
      assert.ok(hit.cache === 'fast-hit' || hit.cache === 'hit', String(hit.cache));
      assert.ok(s.records.every((r) => r.tenant === 'a'));
      const stats = await request(`${edge.admin.url}/v1/tenants/a/stats`, { headers: { authorization: `Bearer ${A}` } });
      assert.equal(stats.statusCode, 200);
      await stats.body.dump();
      assert.equal(edge.liveLog.readerCount, 1);
      // The log thread's side of the connection has TCP's keepalive on (a quiet stream to a
      // vanished client would otherwise never end): once nothing waits for an acknowledgement,
      // its timer is the keepalive timer.
      let timer: string;
      while ((timer = tcpTimer(edge.admin.port, s.res.socket.localPort!)) === 'retransmit') await new Promise((r) => setTimeout(r, 10));
      assert.equal(timer, 'keepalive');
    } finally {
      s.close();
    }
    // The log thread sees the connection close, and the reader is gone.
    while (edge.liveLog.readerCount > 0) await new Promise((r) => setTimeout(r, 10));
  });

  test('a sample that is not a fraction is refused with the reason; one that is starts the stream', async () => {
    for (const q of ['sample=0', 'sample=1.5', 'sample=some']) {
      const r = await request(`${edge.admin.url}/v1/tenants/a/log?${q}`, { headers: { authorization: `Bearer ${A}` } });
      assert.equal(r.statusCode, 400, q);
      assert.match(String(((await r.body.json()) as { error: string }).error), /sample filter .*expected a fraction above 0 and at most 1, such as 0.01/);
    }
    const s = await Stream.open(`${edge.admin.url}/v1/tenants/a/log?sample=0.999999`, A);
    try {
      assert.equal(s.res.statusCode, 200);
      // Kept with a chance of 0.999999 each: the first of a few requests is there.
      for (let i = 0; i < 3; i++) assert.equal(await get('a.test', `/sampled-${i}`), 200);
      await s.find((r) => String(r.url).startsWith('/sampled-'));
    } finally {
      s.close();
    }
    while (edge.liveLog.readerCount > 0) await new Promise((r) => setTimeout(r, 10));
  });

  test('an HTTP/1.0 reader gets the records unframed, to the end of the connection; refusals are answered as before', async () => {
    await assert.rejects(Stream.open(`${edge.admin.url}/v1/tenants/b/log`, A), /status 403/);
    const refused = await request(`${edge.admin.url}/v1/log?status=200`, { headers: { authorization: `Bearer ${OP}` } });
    assert.equal(refused.statusCode, 400);
    await refused.body.dump();
    const client = connect(edge.admin.port, '127.0.0.1');
    let text = '';
    client.setEncoding('utf8');
    client.on('data', (c: string) => (text += c));
    try {
      client.write(`GET /v1/log?prefix=/old HTTP/1.0\r\nHost: admin\r\nAuthorization: Bearer ${OP}\r\n\r\n`);
      await until(client, () => text.includes('\r\n\r\n'));
      const [head, body] = text.split('\r\n\r\n') as [string, string];
      assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
      assert.doesNotMatch(head, /transfer-encoding/i);
      assert.match(head, /\r\nconnection: close(\r\n|$)/i);
      assert.equal(body, '');
      assert.equal(await get('b.test', '/old/1'), 200);
      assert.equal(await get('a.test', '/new/1'), 200);
      await until(client, () => text.endsWith('\n') && text.includes('"/old/1"'));
      assert.deepEqual(ndjson(text.split('\r\n\r\n')[1]!).map((r) => [r.tenant, r.url]), [['b', '/old/1']]);
    } finally {
      client.destroy();
    }
  });

  test("readers are bounded: a tenant's streams, whoever opens them, and all together; a closed one makes room", async () => {
    const refusal = async (path: string, token: string): Promise<[number, string]> => {
      const r = await request(`${edge.admin.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
      return [r.statusCode, ((await r.body.json()) as { error: string }).error];
    };
    const open: Stream[] = [];
    try {
      open.push(await Stream.open(`${edge.admin.url}/v1/tenants/a/log`, A), await Stream.open(`${edge.admin.url}/v1/tenants/a/log?format=ndjson`, OP));
      const [status, error] = await refusal('/v1/tenants/a/log', A);
      assert.equal(status, 429);
      assert.match(error, /too many live log readers: 2 streams of tenant a's records are open, the most the server allows one tenant/);
      // An operator's stream filtered to tenant a reads a's records: it counts as one of a's.
      assert.equal((await refusal('/v1/log?tenant=a', OP))[0], 429);
      open.push(await Stream.open(`${edge.admin.url}/v1/tenants/b/log`, B));
      const [all, why] = await refusal('/v1/log', OP);
      assert.equal(all, 429);
      assert.match(why, /3 streams are open, the most the server allows/);
      assert.equal((await refusal('/v1/tenants/b/log', B))[0], 429);
      // The refused left nothing behind, and the readers still get their records.
      assert.equal(edge.liveLog.readerCount, 3);
      const scrape = async (token: string): Promise<string> => (await request(`${edge.admin.url}/v1/metrics`, { headers: { authorization: `Bearer ${token}` } })).body.text();
      const metrics = await scrape(OP);
      assert.match(metrics, /^tinyedge_live_log_readers 3$/m);
      assert.match(metrics, /^tinyedge_live_log_dropped_records_total\{reason="reader"\} 0$/m);
      assert.doesNotMatch(await scrape(A), /tinyedge_live_log/);
      assert.equal(await get('a.test', '/bounded'), 200);
      await open[0]!.find((r) => r.url === '/bounded');
      open.shift()!.close();
      while (edge.liveLog.readerCount > 2) await new Promise((r) => setTimeout(r, 10));
      open.push(await Stream.open(`${edge.admin.url}/v1/tenants/a/log`, A));
    } finally {
      for (const s of open) s.close();
    }
    while (edge.liveLog.readerCount > 0) await new Promise((r) => setTimeout(r, 10));
  });

  test('Server-Sent Events, and a server that stops ends its streams', async () => {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      httpRequest(`${edge.admin.url}/v1/log?format=sse&prefix=/sse`, { headers: { authorization: `Bearer ${OP}` } }, resolve).on('error', reject).end();
    });
    assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (text += c));
    const ended = new Promise<void>((resolve) => res.on('end', resolve));
    assert.equal(await get('a.test', '/sse'), 200);
    // Bounded: a record that never comes fails the test rather than hanging the suite.
    await until(res.socket, () => text.includes('"url":"/sse"'));
    assert.ok(text.startsWith(': tinyedge live log\n\n'));
    assert.match(text.split('\n\n').find((e) => e.includes('"url":"/sse"'))!, /^data: \{.*\}$/);
    // The stream ends as a whole body (the last chunk), not cut.
    await edge.close();
    await ended;
    assert.equal(res.complete, true);
  });
});

/**
 * Which timer the kernel runs for the loopback TCP connection from `localPort` to `remotePort`
 * (IPv4), from /proc/net/tcp: none, retransmit (data not yet acknowledged), keepalive, or another.
 */
function tcpTimer(localPort: number, remotePort: number): string {
  const port = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');
  const row = readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/))
    .find((f) => f[1]?.endsWith(`:${port(localPort)}`) && f[2]?.endsWith(`:${port(remotePort)}`) && f[3] === '01');
  assert.ok(row, `no established connection from port ${localPort} to ${remotePort}`);
  const kind = row[5]!.split(':')[0];
  return ({ '00': 'none', '01': 'retransmit', '02': 'keepalive' } as Record<string, string>)[kind!] ?? `timer ${kind}`;
}

/** The NDJSON a reader's connection carried, as lines; every line is JSON. */
function ndjson(text: string): Array<Record<string, unknown>> {
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * A loopback connection for a LiveLog reader: the server's side to hand over (`add`), and the
 * client's, which collects the answer (an HTTP/1.0 one: the body is the records, unframed).
 * `bufferBytes` shrinks both kernel buffers (SO_SNDBUF on the server's side, SO_RCVBUF on the
 * client's), so that what the client does not read stays in the log thread's socket.
 */
async function readerConnection(bufferBytes?: number): Promise<{ server: Socket; client: Socket; received(): string; body(): string; close(): void }> {
  const listener = createNetServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<Socket>((resolve) => listener.once('connection', resolve));
  const client = connect((listener.address() as AddressInfo).port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const server = await accepted;
  listener.close();
  if (bufferBytes !== undefined) {
    const size = new Uint8Array(new Int32Array([bufferBytes]).buffer);
    const fdOf = (sock: Socket): number => (sock as unknown as { _handle: { fd: number } })._handle.fd;
    assert.equal(setsockopt(fdOf(server), SOL_SOCKET, SO_SNDBUF, size, 4), 0);
    assert.equal(setsockopt(fdOf(client), SOL_SOCKET, SO_RCVBUF, size, 4), 0);
  }
  let text = '';
  client.setEncoding('utf8');
  client.on('data', (c: string) => (text += c));
  client.on('error', () => {});
  const received = (): string => text;
  return {
    server, client, received,
    body() {
      const all = received();
      const end = all.indexOf('\r\n\r\n');
      return end < 0 ? '' : all.slice(end + 4);
    },
    close: () => client.destroy(),
  };
}

const SO_SNDBUF = 7;
const SO_RCVBUF = 8;

const EVERYTHING: ReaderSpec = { tenant: null, filter: {}, format: 'ndjson', chunked: false };
const LIMITS: ReaderLimits = { readers: 64, perTenant: 16 };

/** Until `done()` holds: `step` once, then again each time the client gets bytes, or every 20 ms while it gets none (a bound of 30 s in all). */
async function until(client: Socket, done: () => boolean, step: () => Promise<void> = async () => undefined): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!done()) {
    assert.ok(Date.now() < deadline, 'gave up waiting');
    await step();
    if (done()) return;
    await new Promise<void>((resolve) => {
      const onData = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        client.off('data', onData);
        resolve();
      }, 20);
      client.once('data', onData);
    });
  }
}

/** A record whose logs make it ~1 KB. */
const bigRecord = (url: string): RequestRecord => ({
  time: 0, shard: 0, tenant: 't', host: 'h', method: 'GET', url, status: 200, cache: 'hit', backend: null, backendKind: null, version: null,
  totalUs: 1, vmUs: 0, guestUs: 0, vmExits: 0, dirtyPages: 0, bytes: 0, originStatus: null, error: null, logs: ['x'.repeat(900)],
});

/** Hands `log` one batch of `urls`' records (bigRecord), and waits until the log thread has handled it. */
async function deliver(log: LiveLog, urls: string[]): Promise<void> {
  const b = new RecordBatcher(log.deliver, { ...BATCH_TIMING, maxRecords: urls.length });
  for (const url of urls) b.push(bigRecord(url));
  await log.settled();
}

describe("a reader's connection handed to the log thread", () => {
  test('a client that leaves before the handoff is forgotten: no reader, no error', async (t) => {
    let release!: () => void;
    const recording = new Promise<void>((resolve) => (release = resolve));
    const log = new LiveLog(() => recording, (m) => assert.fail(m), LIMITS);
    const conn = await readerConnection();
    t.after(() => log.close());
    conn.server.resume();
    const closed = new Promise((resolve) => conn.server.once('close', resolve));
    // The handoff waits until the shards record; the client leaves meanwhile.
    const adding = log.add(EVERYTHING, conn.server);
    conn.close();
    await closed;
    release();
    await adding;
    assert.equal(log.readerCount, 0);
    await log.settled();
    assert.equal(log.readerCount, 0);
  });

  test('a connection with bytes still to write is refused and left as it was', async (t) => {
    const log = new LiveLog(async () => undefined, (m) => assert.fail(m), LIMITS);
    const conn = await readerConnection(16 * 1024);
    t.after(async () => {
      conn.close();
      await log.close();
    });
    conn.client.pause();
    conn.server.write(Buffer.alloc(1024 * 1024, 'x'));
    assert.ok(conn.server.writableLength > 0);
    await assert.rejects(log.add(EVERYTHING, conn.server), (err: Error) => err instanceof ReaderRefused && /bytes still to write/.test(err.message));
    assert.equal(log.readerCount, 0);
    assert.equal(conn.server.destroyed, false);
    // Still this thread's socket: what it was writing arrives whole.
    conn.client.resume();
    const text = await new Promise<string>((resolve) => {
      const check = (): void => {
        if (conn.received().length >= 1024 * 1024) resolve(conn.received());
        else conn.client.once('data', check);
      };
      check();
    });
    assert.equal(text.length, 1024 * 1024);
  });
});

describe('a log that has closed', () => {
  test('settles at once: its thread handled everything before it ended, and answers nothing after', async () => {
    const conn = await readerConnection();
    const log = new LiveLog(async () => undefined, (m) => assert.fail(m), LIMITS);
    try {
      await log.add(EVERYTHING, conn.server);
      await deliver(log, ['/before']);
      await log.close();
      // Asked of a thread that is gone, this waited for ever.
      await log.settled();
      assert.match(conn.received(), /"url":"\/before"/);
    } finally {
      conn.close();
    }
  });
});

describe('a reader that cannot keep up', () => {
  test('loses records beyond its bound, never holds more, and is told how many it lost', async (t) => {
    const conn = await readerConnection(16 * 1024);
    const log = new LiveLog(async () => undefined, (m) => assert.fail(m), LIMITS);
    t.after(async () => {
      conn.close();
      await log.close();
    });
    await log.add(EVERYTHING, conn.server);
    await until(conn.client, () => conn.received().includes('\r\n\r\n'));
    assert.match(conn.received(), /^HTTP\/1\.1 200 OK\r\ncontent-type: application\/x-ndjson; charset=utf-8\r\n/);
    // A stuck reader: it reads nothing while 6,000 records (~6 MB) are written to it.
    conn.client.pause();
    const sent = 6000;
    for (let n = 0; n < sent / 100; n++) await deliver(log, Array.from({ length: 100 }, (_, i) => `/${n * 100 + i}`));
    // The reader reads again. Probes are sent until one gets through: every record sent is then
    // either received or counted in the notice before the probe.
    conn.client.resume();
    let probes = 0;
    await until(conn.client, () => conn.body().includes('"/probe') && conn.body().endsWith('\n'), async () => {
      await deliver(log, [`/probe${probes++}`]);
    });
    // Everything written before that probe has been read: the reader is under its bound again,
    // so one more record is taken, told of the probes lost since, if any.
    await deliver(log, ['/last']);
    await until(conn.client, () => conn.body().includes('"/last"') && conn.body().endsWith('\n'));
    const got = ndjson(conn.body());
    const noticeAt = got.findIndex((l) => 'dropped' in l);
    assert.ok(noticeAt > 0, 'a dropped notice, after the records taken');
    // Every record sent was received or counted lost, and each notice comes right before the record that followed its loss.
    const records = got.filter((l) => 'url' in l);
    const lost = got.filter((l) => 'dropped' in l).reduce((n, l) => n + Number(l.dropped), 0);
    assert.equal(lost + records.length, sent + probes + 1);
    got.forEach((l, i) => 'dropped' in l && assert.ok(got[i + 1] !== undefined && 'url' in got[i + 1]!, `notice ${i} is followed by a record`));
    assert.equal(got.at(-1)!.url, '/last');
    // The metrics count the same loss.
    await log.settled();
    assert.deepEqual(log.dropped, { behind: 0, readers: lost, accessLog: 0 });
    // The records taken before the loss are the first sent, in order, and no more than the bound,
    // one batch past it (~100 KB) and the small kernel buffers hold.
    const taken = got.slice(0, noticeAt);
    assert.deepEqual(taken.map((l) => l.url), Array.from({ length: taken.length }, (_, i) => `/${i}`));
    const takenBytes = Buffer.byteLength(taken.map((l) => `${JSON.stringify(l)}\n`).join(''));
    assert.ok(takenBytes > MAX_BUFFERED_BYTES && takenBytes < MAX_BUFFERED_BYTES + 512 * 1024, String(takenBytes));
  });
});

describe('batches of records between threads', () => {
  const full: RequestRecord = {
    time: 1764480000123, shard: 3, tenant: 'ténant "q"', host: 'a.test:8080', method: 'POST', url: '/p?q="x"&y=\\\n', status: 502, cache: 'pass', backend: 'echo',
    backendKind: 'program', version: 'a/echo@7', totalUs: 1234, vmUs: 800, guestUs: 600, vmExits: 42, dirtyPages: 9, bytes: 23, originStatus: 502,
    error: 'fault: page fault at 0x0 (rip 0x401869)', logs: ['one', 'two "2"\u0001'],
  };
  const empty: RequestRecord = { ...full, cache: null, backend: null, backendKind: null, version: null, originStatus: null, error: null, logs: [] };

  test("a filter picks from a batch's columns exactly the records it keeps, of either kind of row", () => {
    const batches: EncodedBatch[] = [];
    const b = new RecordBatcher((x) => batches.push(x), { ...BATCH_TIMING, maxRecords: 10_000 });
    const tenants = ['a', 'b', 'ab'];
    const urls = ['/', '/api/x', '/api', '/apix', '/img/1.png'];
    const caches = [null, 'hit', 'miss', 'pass', 'stale'] as const;
    const backends = [null, 'default', 'echo'];
    for (let i = 0; i < 600; i++) {
      const tenant = tenants[i % 3]!;
      const url = urls[(i * 7) % 5]!;
      // Every fifth a fast-path hit's narrow row; the rest full records of every status class.
      if (i % 5 === 0) b.pushFast(0, tenant, `${tenant}.test`, 'GET', url, 200, 10, i, 5);
      else b.push({ ...empty, tenant, url, status: 100 + 100 * (i % 5) + (i % 3), cache: caches[i % 5]!, backend: backends[i % 3]!, time: i });
    }
    b.flush();
    const batch = batches[0]!;
    const order = rowOrder(batch);
    const records = decodeBatch(batch, order);
    // What each filter means, record by record.
    const keeps = (f: RecordFilter, r: RequestRecord): boolean =>
      (f.tenant === undefined || r.tenant === f.tenant) && (f.statusClasses === undefined || f.statusClasses.includes(Math.floor(r.status / 100)))
      && (f.urlPrefix === undefined || r.url.startsWith(f.urlPrefix)) && (f.cache === undefined || (r.cache !== null && f.cache.includes(r.cache)))
      && (f.backend === undefined || r.backend === f.backend);
    const filters: RecordFilter[] = [
      { tenant: 'a' }, { tenant: 'ab' }, { tenant: 'nobody' }, { statusClasses: [5] }, { statusClasses: [2, 4] }, { urlPrefix: '/api' }, { urlPrefix: '/api/' },
      { cache: ['fast-hit'] }, { cache: ['miss', 'pass'] }, { backend: 'echo' }, { backend: 'none' }, { tenant: 'b', urlPrefix: '/', statusClasses: [2], cache: ['fast-hit', 'hit'] },
      { tenant: 'b', backend: 'default', cache: ['miss'] },
    ];
    for (const f of filters) {
      const pick: number[] = [];
      pickMatching(batch, order, f, null, pick);
      const want = records.flatMap((r, k) => (keeps(f, r) ? [k] : []));
      assert.deepEqual(pick, want, JSON.stringify(f));
      assert.ok(f.tenant === 'nobody' || f.backend === 'none' || want.length > 0, `${JSON.stringify(f)} keeps nothing: it tests nothing`);
    }
  });

  test('a batch decodes to the records pushed, and serialises as JSON.stringify of their logged form would', () => {
    const batches: EncodedBatch[] = [];
    const b = new RecordBatcher((x) => batches.push(x), { ...BATCH_TIMING, maxRecords: 4 });
    b.push(full);
    b.push(empty);
    b.pushFast(1, 'a', 'a.test', 'GET', '/f', 200, 100, 5, 7.6);
    b.flush();
    assert.equal(batches.length, 1);
    const decoded = decodeBatch(batches[0]!);
    const fast = decoded[2]!;
    assert.deepEqual(decoded, [full, empty, { ...empty, shard: 1, tenant: 'a', host: 'a.test', method: 'GET', url: '/f', status: 200, cache: 'fast-hit', totalUs: 8, vmUs: 0, guestUs: 0, vmExits: 0, dirtyPages: 0, bytes: 100, time: fast.time }]);
    const w = new BatchWriter(batches[0]!);
    assert.equal(w.write('ndjson').toString('utf8'), decoded.map((r) => `${JSON.stringify(logged(r))}\n`).join(''));
    assert.equal(w.write('sse', [1]).toString('utf8'), `data: ${JSON.stringify(logged(empty))}\n\n`);
  });

  test('the bytes written are those of JSON.stringify for any string and number a record can hold', () => {
    const batches: EncodedBatch[] = [];
    const b = new RecordBatcher((x) => batches.push(x), { ...BATCH_TIMING, maxRecords: 32 });
    const odd: RequestRecord[] = [
      // Every escape JSON has, non-ASCII, a lone surrogate, and a URL that is the text of another record's logs.
      { ...full, tenant: '\u0000\u001f\u007f\u0080é€😀', host: '\ud800x', method: '\t\r\b\f"/\\', url: '["one","two \\"2\\"\\u0001"]', error: '\u2028\u2029', logs: ['ü', '', '"'] },
      // Numbers at the edges of each way of writing them.
      { ...full, time: 9007199254740991, shard: 0, status: 2147483647, totalUs: 2147483648, vmUs: 100000000, guestUs: 99999999, vmExits: 10, dirtyPages: 9, bytes: 0, originStatus: 0 },
      { ...full, time: 1e21, totalUs: 0.5, vmUs: -3, guestUs: -0.25, vmExits: 1.5e-7, dirtyPages: 2 ** 53 + 2, bytes: Number.MAX_VALUE, originStatus: 1e100 },
      { ...empty, vmUs: 0, guestUs: 0, vmExits: 0, dirtyPages: 1, logs: [] },
      { ...empty, url: 'x'.repeat(5000), host: '', logs: ['y'.repeat(3000)] },
    ];
    // A run of records alike but for their time and totalUs, of as many digits and not.
    // Digits rewritten in place: across 31 bits, in the high part of a time, and all of them.
    for (const [time, totalUs] of [
      [1764480000123, 5], [1764480000999, 7], [1764480000999, 12], [1764480001000, 99], [99999999999, 100], [100000000000, 100], [100000000000, 100],
      [100000000000, 2147483647], [100000000001, 2147483648], [199999999999, 1999999999], [100000000000, 1000000000], [100000000000, 1e21], [100000000000, 12345],
    ] as const) {
      odd.push({ ...empty, time, totalUs });
    }
    for (const r of odd) b.push(r);
    b.flush();
    const decoded = decodeBatch(batches[0]!);
    assert.deepEqual(decoded, odd);
    const w = new BatchWriter(batches[0]!);
    const expected = odd.map((r) => `${JSON.stringify(logged(r))}\n`).join('');
    assert.equal(w.write('ndjson').toString('utf8'), expected);
    assert.deepEqual(w.write('ndjson'), Buffer.from(expected));
    assert.equal(w.write('sse', [4, 0]).toString('utf8'), `data: ${JSON.stringify(logged(odd[4]!))}\n\ndata: ${JSON.stringify(logged(odd[0]!))}\n\n`);
    assert.equal(w.write('ndjson', []).length, 0);
    // The bound the log thread checks its buffer against holds every record's bytes (logs and escapes included).
    for (const pick of [undefined, [4], [0], [3, 4], []]) {
      for (const format of ['ndjson', 'sse'] as const) assert.ok(w.bound(format, pick) >= w.size(format, pick) && w.size(format, pick) >= w.write(format, pick).length, `${format} ${String(pick)}`);
    }
    const logsOnly = new RecordBatcher((x) => batches.push(x), { ...BATCH_TIMING, maxRecords: 32 });
    logsOnly.push({ ...empty, tenant: '', host: '', method: '', url: '', logs: ['\ud800'.repeat(100), '\u0001'.repeat(50)] });
    logsOnly.flush();
    const lw = new BatchWriter(batches.at(-1)!);
    assert.ok(lw.bound('ndjson') >= lw.write('ndjson').length);
  });

  test("fast-path hits' narrow rows and full records come out in the order pushed, as JSON.stringify would write their logged form", () => {
    const batches: EncodedBatch[] = [];
    const b = new RecordBatcher((x) => batches.push(x), { ...BATCH_TIMING, maxRecords: 64 });
    const hit = (shard: number, url: string, bytes: number, startedMs: number, totalUs: number): RequestRecord => ({
      ...empty, time: Math.round(performance.timeOrigin + startedMs), shard, tenant: 't', host: 'h.test', method: 'GET', url, status: 200,
      cache: 'fast-hit', totalUs: Math.round(totalUs), vmUs: 0, guestUs: 0, vmExits: 0, dirtyPages: 0, bytes,
    });
    const want: RequestRecord[] = [];
    const fast = (shard: number, url: string, bytes: number, startedMs: number, totalUs: number): void => {
      b.pushFast(shard, 't', 'h.test', 'GET', url, 200, bytes, startedMs, totalUs);
      want.push(hit(shard, url, bytes, startedMs, totalUs));
    };
    const slow = (r: RequestRecord): void => {
      b.push(r);
      want.push(r);
    };
    // Full records first, between and last; runs of hits of either length; a full record's time before the hits'.
    slow(full);
    fast(2, '/a', 100, 10.4, 3.5);
    fast(2, '/a', 100, 11.6, 4.4);
    slow(empty);
    slow({ ...full, time: 1 });
    fast(2, '/b', 0, 12, 0);
    // Hits whose figures a narrow row does not hold become full rows, in their place:
    // another shard than the batch's hits, a body of 2 GiB, a time ~25 days from the batch's first hit.
    fast(5, '/other-shard', 7, 13, 1);
    fast(2, '/large', 2 ** 31, 14, 1);
    fast(2, '/later', 1, 10 + 2 ** 31 + 100, 1);
    fast(2, '/c', 1, 15, 2 ** 31);
    fast(2, '/d', 1, 16.5, 1);
    b.flush();
    assert.equal(batches.length, 1);
    const batch = batches[0]!;
    assert.equal(batch.count, want.length);
    assert.equal(batch.fastCount, 4, 'the hits that fit are narrow rows');
    assert.deepEqual(decodeBatch(batch), want);
    const expected = want.map((r) => `${JSON.stringify(logged(r))}\n`).join('');
    // With the row order in memory the log thread reuses: again for a later batch, same memory.
    const order = new Int32Array(64);
    const w = new BatchWriter(batch, order);
    assert.equal(w.rows, order);
    assert.equal(w.write('ndjson').toString('utf8'), expected);
    assert.equal(w.write('sse', [3, 0, 1]).toString('utf8'), [3, 0, 1].map((k) => `data: ${JSON.stringify(logged(want[k]!))}\n\n`).join(''));
    assert.deepEqual(decodeBatch(batch, w.rows), want);
    b.pushFast(2, 't', 'h.test', 'GET', '/e', 200, 1, 20, 1);
    b.push(empty);
    b.flush();
    const later = new BatchWriter(batches[1]!, order);
    assert.equal(later.rows, order, 'no new memory');
    assert.equal(later.write('ndjson').toString('utf8'), [hit(2, '/e', 1, 20, 1), empty].map((r) => `${JSON.stringify(logged(r))}\n`).join(''));
    // Memory too small for a batch's order: the writer has its own.
    assert.notEqual(new BatchWriter(batch, new Int32Array(2)).rows.length, 2);
  });

  test('runs of fast-path hits, written as the hit before with its digits changed, are what JSON.stringify writes, whatever comes between and whichever are picked', () => {
    // A seeded generator: the same records every run.
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      // The high bits: an LCG's low ones repeat with short periods.
      return Math.floor((seed / 2147483648) * n);
    };
    const batches: EncodedBatch[] = [];
    const b = new RecordBatcher((x) => batches.push(x), { ...BATCH_TIMING, maxRecords: 4096 });
    let startedMs = 5;
    for (let i = 0; i < 3000; i++) {
      // Mostly hits of few URLs, statuses and sizes, whose times and total µs cross digit
      // boundaries (9 → 10 µs, a time's last digits rolling over); now and then a full record.
      startedMs += random(4) === 0 ? random(20_000) : random(3);
      if (random(12) === 0) b.push({ ...empty, time: Math.round(performance.timeOrigin + startedMs), url: `/full/${random(3)}`, vmUs: random(2) * 40, vmExits: random(2) });
      else b.pushFast(0, 't', 'h.test', random(30) === 0 ? 'HEAD' : 'GET', `/${random(3)}`, random(20) === 0 ? 404 : 200, random(2) * 1000 + 99, startedMs, [9, 10, 99, 100, 999, 1000][random(6)]! + random(2) * 0.4);
    }
    // Long runs (a busy object's hits: written some records at a time), broken now and then by
    // another object's hit, a total of another digit count or a full record.
    for (let i = 0; i < 800; i++) {
      startedMs += random(3) * 0.7;
      const other = random(150);
      if (other === 0) b.push({ ...empty, time: Math.round(performance.timeOrigin + startedMs), url: '/full' });
      else b.pushFast(0, 't', 'h.test', 'GET', other === 1 ? '/other' : '/busy', 200, 99, startedMs, other === 2 ? 5 : 10 + random(90));
    }
    b.flush();
    assert.equal(batches.length, 1);
    const batch = batches[0]!;
    assert.ok(batch.fastCount > 2000, `${batch.fastCount} narrow rows`);
    const records = decodeBatch(batch);
    const w = new BatchWriter(batch);
    for (const format of ['ndjson', 'sse'] as const) {
      const line = (r: RequestRecord): string => (format === 'sse' ? `data: ${JSON.stringify(logged(r))}\n\n` : `${JSON.stringify(logged(r))}\n`);
      assert.equal(w.write(format).toString('utf8'), records.map(line).join(''));
      // Picks: every other record, a random half, and backwards (so the record before is not the one before in the batch).
      const picks = [records.flatMap((_, k) => (k % 2 === 0 ? [k] : [])), records.flatMap((_, k) => (random(2) === 0 ? [k] : [])), records.map((_, k) => records.length - 1 - k)];
      for (const pick of picks) assert.equal(w.write(format, pick).toString('utf8'), pick.map((k) => line(records[k]!)).join(''));
    }
  });

  test('a full batch goes at once; the next starts empty', () => {
    const batches: EncodedBatch[] = [];
    const b = new RecordBatcher((x) => batches.push(x), { ...BATCH_TIMING, maxRecords: 2 });
    b.push(full);
    assert.equal(batches.length, 0);
    b.push(empty);
    assert.equal(batches.length, 1);
    b.push(empty);
    b.flush();
    assert.deepEqual(batches.map((x) => decodeBatch(x).length), [2, 1]);
    assert.deepEqual(decodeBatch(batches[1]!), [empty]);
  });

  test('a batch grows past its first room and keeps every record; the next starts with room for as many', () => {
    const batches: EncodedBatch[] = [];
    const b = new RecordBatcher((x) => batches.push(x), { ...BATCH_TIMING, maxRecords: 5000 });
    const urls = Array.from({ length: 1000 }, (_, i) => `/o/${i}`);
    for (let round = 0; round < 2; round++) {
      for (const [i, url] of urls.entries()) b.pushFast(0, 't', 'h', 'GET', url, 200, i, 1, i);
      b.flush();
    }
    assert.equal(batches.length, 2);
    for (const batch of batches) {
      assert.equal(batch.count, 1000);
      // No more room than the records need, beyond the doubling: memory follows the rate.
      assert.ok(batch.fast.length <= 1024 * FAST_WORDS, `${batch.fast.length}`);
      assert.equal(batch.fastCount, 1000, 'every record a narrow row');
      assert.deepEqual(decodeBatch(batch).map((r) => [r.url, r.bytes]), urls.map((u, i) => [u, i]));
    }
  });

  test("a released batch's columns carry a later batch; those of a batch not released are never written again", () => {
    const batches: EncodedBatch[] = [];
    const b = new RecordBatcher((x) => batches.push(x), { ...BATCH_TIMING, maxRecords: 2 });
    const push = (url: string): void => b.pushFast(0, 't', 'h', 'GET', url, 200, 1, 1, 1);
    const urls = (x: EncodedBatch): string[] => decodeBatch(x).map((r) => r.url);
    push('/1');
    push('/2');
    push('/3');
    // The first batch is released while the second fills (which, the first still held, has other memory).
    releaseBatch(batches[0]!);
    b.flush();
    push('/4');
    b.flush();
    assert.equal(batches.length, 3);
    assert.notEqual(batches[1]!.wideNums.buffer, batches[0]!.wideNums.buffer);
    // Released before the second went: the third is written into the first's memory, nothing new.
    assert.equal(batches[2]!.wideNums.buffer, batches[0]!.wideNums.buffer);
    assert.ok(batches[2]!.wideNums.buffer instanceof SharedArrayBuffer);
    assert.deepEqual(urls(batches[2]!), ['/4']);
    assert.deepEqual(urls(batches[1]!), ['/3'], 'a batch not released keeps its records');
    // None released: each further batch has columns of its own.
    for (let i = 0; i < 6; i++) push(`/x${i}`);
    assert.equal(new Set(batches.map((x) => x.wideNums.buffer)).size, batches.length - 1);
    assert.deepEqual(batches.slice(3).map(urls), [['/x0', '/x1'], ['/x2', '/x3'], ['/x4', '/x5']]);
  });

  test("the log thread's output slots: one is written again only once every holder released it; with all held, memory of its own", () => {
    const slots = new OutputSlots();
    const first = slots.take(1000);
    assert.ok(first.slot >= 0 && first.bytes.length >= 1000);
    // Handed to a reader's write, then the batch lets go of it: the write still holds it.
    slots.holdSlot(first.slot);
    slots.releaseSlot(first.slot);
    const taken = [first, ...Array.from({ length: SLOTS - 1 }, () => slots.take(1000))];
    assert.equal(new Set(taken.map((t) => t.slot)).size, SLOTS);
    const own = slots.take(1000);
    assert.equal(own.slot, -1);
    assert.ok(own.bytes.length >= 1000 && !taken.some((t) => t.bytes.buffer === own.bytes.buffer), 'memory of its own');
    // The write completed: the slot and its memory are taken again.
    slots.releaseSlot(first.slot);
    const again = slots.take(500);
    assert.equal(again.slot, first.slot);
    assert.equal(again.bytes, first.bytes);
    // A slot larger than before gets new memory; one larger than any slot may be is memory of its own.
    slots.releaseSlot(again.slot);
    const larger = slots.take(first.bytes.length + 1);
    assert.equal(larger.slot, first.slot);
    assert.ok(larger.bytes.length > first.bytes.length);
    slots.releaseSlot(larger.slot);
    assert.equal(slots.take(64 * 1024 * 1024).slot, -1);
  });

  test('a batch goes at most its interval after its first record, or at once when full, or at most two intervals after it when a batch went full; the clock stops when records do', (t) => {
    mock.timers.enable({ apis: ['setInterval'] });
    t.after(() => mock.timers.reset());
    const sizes: number[] = [];
    const b = new RecordBatcher((x) => sizes.push(x.count), { intervalMs: 100, maxRecords: 10 });
    const push = (n: number): void => {
      for (let i = 0; i < n; i++) b.pushFast(0, 't', 'h', 'GET', '/', 200, 1, 1, 1);
    };
    push(2);
    mock.timers.tick(50);
    push(1);
    mock.timers.tick(49);
    assert.deepEqual(sizes, []);
    mock.timers.tick(1);
    assert.deepEqual(sizes, [3], 'counted from the first record');
    mock.timers.tick(50);
    push(10);
    assert.deepEqual(sizes, [3, 10], 'maxRecords: at once');
    push(1);
    mock.timers.tick(50);
    assert.deepEqual(sizes, [3, 10], 'the tick after a full batch lets the records since wait');
    mock.timers.tick(99);
    assert.deepEqual(sizes, [3, 10]);
    mock.timers.tick(1);
    assert.deepEqual(sizes, [3, 10, 1], 'the tick after: less than two intervals after its first record');
    mock.timers.tick(1000);
    assert.deepEqual(sizes, [3, 10, 1], 'no empty batch');
    // The clock stopped at the first tick without records; a record starts it again.
    push(1);
    mock.timers.tick(99);
    assert.deepEqual(sizes, [3, 10, 1]);
    mock.timers.tick(1);
    assert.deepEqual(sizes, [3, 10, 1, 1]);
  });

  test('at a rate that fills a batch within an interval, every batch goes full: not a full one and the rest at each tick', (t) => {
    mock.timers.enable({ apis: ['setInterval'] });
    t.after(() => mock.timers.reset());
    const sizes: number[] = [];
    const b = new RecordBatcher((x) => sizes.push(x.count), { intervalMs: 100, maxRecords: 10 });
    // A record every 7 ms for 600 ms: a batch fills in 70, and every tick finds records waiting
    // (a tick that finds none stops the clock, and Node 20's mocked setInterval, cleared in its
    // own callback, fires on: a second clock would follow).
    for (let ms = 0; ms < 600; ms++) {
      if (ms % 7 === 0) b.pushFast(0, 't', 'h', 'GET', '/', 200, 1, 1, 1);
      mock.timers.tick(1);
    }
    assert.deepEqual(sizes, new Array<number>(8).fill(10));
    mock.timers.tick(200);
    assert.deepEqual(sizes, [...new Array<number>(8).fill(10), 6], 'the rest, once records stop');
  });
});

describe('a sample of the records', () => {
  test('sample= is a fraction above 0 and at most 1; 1 is no sample; anything else is refused with the reason', () => {
    assert.deepEqual(parseFilter(new URLSearchParams('sample=0.01')), { sample: 0.01 });
    assert.deepEqual(parseFilter(new URLSearchParams('sample=.5&status=5xx')), { statusClasses: [5], sample: 0.5 });
    assert.deepEqual(parseFilter(new URLSearchParams('sample=1')), {});
    assert.deepEqual(parseFilter(new URLSearchParams('sample=')), {});
    // The tiniest fractions a double holds are samples too (they keep next to nothing).
    assert.deepEqual(parseFilter(new URLSearchParams(`sample=0.${'0'.repeat(320)}5`)), { sample: 5e-321 });
    for (const bad of ['0', '0.0', '1.5', '-0.1', '2', 'half', '1e-3', '0.5x', 'NaN', 'Infinity', `0.${'0'.repeat(400)}1`]) {
      assert.throws(() => parseFilter(new URLSearchParams({ sample: bad })), (err: Error) => err instanceof FilterError && /sample filter .*expected a fraction above 0 and at most 1/.test(err.message), bad);
    }
  });

  test('a sample of the tiniest fraction keeps next to nothing and never stops the log thread', () => {
    for (const fraction of [5e-324, 1e-17, 1e-9]) {
      const sampler = new Sampler(fraction);
      const pick: number[] = [];
      for (let n = 0; n < 100; n++) sampler.pickFrom(10_000, pick);
      let kept = 0;
      for (let n = 0; n < 10_000; n++) if (sampler.keep()) kept++;
      assert.ok(pick.length + kept <= 1, `${fraction}: kept ${pick.length + kept} of 1,010,000`);
    }
  });

  test('a reader of a sample gets about that fraction of what its other filters keep, in order, each record whole', async (t) => {
    const conns = await Promise.all([readerConnection(), readerConnection(), readerConnection()]);
    const log = new LiveLog(async () => undefined, (m) => assert.fail(m), LIMITS);
    t.after(() => {
      for (const c of conns) c.close();
    });
    const [half, halfOfA, tenth] = conns as [Awaited<ReturnType<typeof readerConnection>>, Awaited<ReturnType<typeof readerConnection>>, Awaited<ReturnType<typeof readerConnection>>];
    await log.add({ ...EVERYTHING, filter: { sample: 0.5 } }, half.server);
    await log.add({ ...EVERYTHING, filter: { urlPrefix: '/a/', sample: 0.5 } }, halfOfA.server);
    await log.add({ ...EVERYTHING, filter: { sample: 0.1 } }, tenth.server);
    // 8 batches of 500: half of them under /a/, half under /b/, taking turns.
    const urls: string[] = [];
    for (let n = 0; n < 8; n++) {
      const batch = Array.from({ length: 500 }, (_, i) => `/${i % 2 === 0 ? 'a' : 'b'}/${n}/${i}`);
      urls.push(...batch);
      await deliver(log, batch);
    }
    // Closing ends each stream once its bytes are written: what a client has at its end is all it gets.
    const ended = conns.map((c) => new Promise<void>((resolve) => c.client.once('end', resolve)));
    await log.close();
    await Promise.all(ended);
    const got = (c: (typeof conns)[number]): string[] => {
      const lines = ndjson(c.body());
      assert.ok(lines.every((l) => JSON.stringify(l) === JSON.stringify(logged(bigRecord(String(l.url))))));
      return lines.map((l) => String(l.url));
    };
    const inOrder = (sub: string[], of: string[]): boolean => {
      let k = 0;
      for (const u of of) if (u === sub[k]) k++;
      return k === sub.length;
    };
    // Kept at random: each bound is more than 12 standard deviations from its mean (a chance of
    // failing below 1e-30), and a reader that got everything or nothing fails it.
    const h = got(half);
    assert.ok(h.length > 1600 && h.length < 2400, `half: ${h.length} of 4000`);
    assert.ok(inOrder(h, urls));
    const a = got(halfOfA);
    assert.ok(a.every((u) => u.startsWith('/a/')));
    assert.ok(a.length > 700 && a.length < 1300, `half of /a/: ${a.length} of 2000`);
    assert.ok(inOrder(a, urls));
    const x = got(tenth);
    assert.ok(x.length > 160 && x.length < 640, `a tenth: ${x.length} of 4000`);
    assert.ok(inOrder(x, urls));
    // Two readers of a half each do not get the same half.
    assert.notDeepEqual(h.filter((u) => u.startsWith('/a/')), a);
  });
});

describe('at most so many records a second', () => {
  test('max= is a whole number of records a second from 1 to a million; anything else is refused with the reason', () => {
    assert.deepEqual(parseFilter(new URLSearchParams('max=50&sample=0.5')), { sample: 0.5, max: 50 });
    assert.deepEqual(parseFilter(new URLSearchParams('max=1000000')), { max: 1_000_000 });
    for (const bad of ['0', '-1', '1.5', 'many', '1000001', '99999999', '1e3', ' 5']) {
      assert.throws(() => parseFilter(new URLSearchParams({ max: bad })), (err: Error) => err instanceof FilterError && /max filter .*expected records a second, a whole number from 1 to 1000000/.test(err.message), bad);
    }
  });

  test('a cap lets a burst of up to a second\'s worth through, then as many as its rate allows, each a random few in order', () => {
    const all = (n: number): number[] => Array.from({ length: n }, (_, k) => k);
    const cap = new RateCap(10, 0);
    const few = all(3);
    assert.equal(cap.take(few, 0), few, 'under the cap: every record, the same list');
    const first = cap.take(all(100), 0);
    assert.equal(first.length, 7);
    assert.deepEqual([...first].sort((a, b) => a - b), first);
    assert.equal(new Set(first).size, 7);
    assert.deepEqual(cap.take(all(50), 0), []);
    assert.equal(cap.take(all(50), 500).length, 5, 'half a second: half the rate');
    assert.equal(cap.take(all(100), 3_600_000).length, 10, 'a quiet hour fills the bucket to one second, no more');
    // Which records: each as likely as another (2,000 batches of 100, 10 kept: 200 each on
    // average, the bounds seven standard deviations away).
    const times = new Array<number>(100).fill(0);
    const c = new RateCap(10, 0);
    for (let n = 1; n <= 2000; n++) for (const k of c.take(all(100), n * 1000)) times[k]!++;
    assert.ok(times.every((t) => t > 100 && t < 300), times.join(','));
  });

  test('a capped reader gets the cap\'s records of a batch, in order, after a notice of how many it did not get', async (t) => {
    const ndjsonConn = await readerConnection();
    const sseConn = await readerConnection();
    const log = new LiveLog(async () => undefined, (m) => assert.fail(m), LIMITS);
    t.after(() => {
      ndjsonConn.close();
      sseConn.close();
    });
    await log.add({ ...EVERYTHING, filter: { max: 5 } }, ndjsonConn.server);
    await log.add({ ...EVERYTHING, format: 'sse', filter: { urlPrefix: '/a/', max: 4 } }, sseConn.server);
    const urls = Array.from({ length: 200 }, (_, i) => `/${i % 2 === 0 ? 'a' : 'b'}/${i}`);
    await deliver(log, urls);
    const ended = [ndjsonConn, sseConn].map((c) => new Promise<void>((resolve) => c.client.once('end', resolve)));
    await log.close();
    await Promise.all(ended);
    const lines = ndjson(ndjsonConn.body());
    assert.deepEqual(lines[0], { skipped: 195, kept: 5 });
    const kept = lines.slice(1).map((l) => String(l.url));
    assert.equal(kept.length, 5);
    assert.deepEqual(kept, urls.filter((u) => kept.includes(u)));
    assert.ok(lines.slice(1).every((l) => JSON.stringify(l) === JSON.stringify(logged(bigRecord(String(l.url))))));
    const events = sseConn.body().split('\n\n').filter((e) => e.startsWith('event:') || e.startsWith('data:'));
    assert.equal(events[0], 'event: skipped\ndata: {"skipped":96,"kept":4}');
    const sseUrls = events.slice(1).map((e) => String((JSON.parse(e.slice('data: '.length)) as { url: string }).url));
    assert.equal(sseUrls.length, 4);
    assert.ok(sseUrls.every((u) => u.startsWith('/a/')));
  });
});

describe('a log thread that falls behind', () => {
  test('batches past its bound are dropped on the main thread, counted, and said to every reader', async (t) => {
    const conn = await readerConnection();
    const warnings: string[] = [];
    const log = new LiveLog(async () => undefined, (m) => warnings.push(m), LIMITS);
    t.after(async () => {
      conn.close();
      await log.close();
    });
    await log.add(EVERYTHING, conn.server);
    // Batches handed over in one turn of the event loop: the log thread cannot have answered any
    // (its answers are messages this thread reads only after the turn), so it is as far behind as it gets.
    const extra = 3;
    const perBatch = 5;
    for (let n = 0; n < MAX_BATCHES_BEHIND + extra; n++) {
      const b = new RecordBatcher(log.deliver, { ...BATCH_TIMING, maxRecords: perBatch });
      for (let i = 0; i < perBatch; i++) b.pushFast(0, 't', 'h', 'GET', `/${n}/${i}`, 200, 1, 1, 1);
    }
    await log.settled();
    // Caught up: the next batch goes through, told of the loss before its records.
    const b = new RecordBatcher(log.deliver, { ...BATCH_TIMING, maxRecords: 1 });
    b.pushFast(0, 't', 'h', 'GET', '/after', 200, 1, 1, 1);
    await until(conn.client, () => conn.body().includes('"/after"'));
    const want = MAX_BATCHES_BEHIND * perBatch;
    const got = ndjson(conn.body());
    assert.deepEqual(got.slice(0, want).map((l) => l.url), Array.from({ length: want }, (_, k) => `/${Math.floor(k / perBatch)}/${k % perBatch}`));
    assert.deepEqual(got.slice(want).map((l) => ('dropped' in l ? l : l.url)), [{ dropped: extra * perBatch }, '/after']);
    assert.deepEqual(warnings, []);
    assert.deepEqual(log.dropped, { behind: extra * perBatch, readers: 0, accessLog: 0 });
  });
});

describe("the log thread's output memory", () => {
  test('a reader that has not taken its records gets every one of them, intact, whatever the other readers took meanwhile', async (t) => {
    // Small kernel buffers: the stuck reader's batches wait in its socket, in the slots they were written to.
    const stuck = await readerConnection(16 * 1024);
    const live = await readerConnection();
    const log = new LiveLog(async () => undefined, (m) => assert.fail(m), LIMITS);
    t.after(async () => {
      stuck.close();
      live.close();
      await log.close();
    });
    await log.add(EVERYTHING, stuck.server);
    await log.add({ ...EVERYTHING, filter: { urlPrefix: '/' } }, live.server);
    await until(stuck.client, () => stuck.received().includes('\r\n\r\n'));
    stuck.client.pause();
    // More batches than there are slots, each taken by the live reader as it comes, each ~40 KB:
    // together under the stuck reader's bound, so that it loses none.
    const urls: string[] = [];
    for (let n = 0; n < SLOTS * 2 + 2; n++) {
      const batch = Array.from({ length: 40 }, (_, i) => `/${n}/${i}`);
      urls.push(...batch);
      await deliver(log, batch);
      await until(live.client, () => live.body().includes(`"/${n}/39"`));
    }
    assert.deepEqual(ndjson(live.body()).map((l) => l.url), urls);
    // The stuck reader reads: had a slot it held been written again, its records would not be these.
    stuck.client.resume();
    await until(stuck.client, () => stuck.body().includes(`"${urls.at(-1)}"`));
    const got = ndjson(stuck.body());
    assert.deepEqual(got.map((l) => l.url), urls);
    assert.ok(got.every((l) => JSON.stringify(l) === JSON.stringify(logged(bigRecord(String(l.url))))));
    // The slots came back: later batches reach it too.
    await deliver(log, ['/later']);
    await until(stuck.client, () => stuck.body().includes('"/later"'));
  });

  test('a batch larger than a slot may be, or whose bound is, comes out whole', async (t) => {
    const conn = await readerConnection();
    const log = new LiveLog(async () => undefined, (m) => assert.fail(m), LIMITS);
    t.after(async () => {
      conn.close();
      await log.close();
    });
    await log.add(EVERYTHING, conn.server);
    // One 64 KiB URL among 200 short ones: the batch's bound (every string as long as its
    // longest) is past a slot's 8 MiB, its size is not.
    const long = `/${'l'.repeat(64 * 1024)}`;
    const few = [...Array.from({ length: 200 }, (_, i) => `/few/${i}`), long];
    // 1,000 distinct 9 KiB URLs: the batch itself is past a slot's size.
    const many = Array.from({ length: 1000 }, (_, i) => `/many/${i}/${'m'.repeat(9 * 1024)}`);
    await deliver(log, few);
    await deliver(log, many);
    await until(conn.client, () => conn.body().includes(`"${many.at(-1)}"`));
    const got = ndjson(conn.body());
    assert.deepEqual(got.map((l) => l.url), [...few, ...many]);
    assert.ok(got.every((l) => JSON.stringify(l) === JSON.stringify(logged(bigRecord(String(l.url))))));
  });
});
