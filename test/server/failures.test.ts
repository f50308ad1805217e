// What a client of `serve` sees when a tenant program fails: the status of the one failure table
// (src/http/failure.ts) and a short fixed text for the failure's class, never the guest's fault
// text (its RIP, CR2) or anything the guest said; the details go to the operator's log.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

/** Anything that looks like an address or a register dump: none of it may reach a client. */
const GUEST_DETAIL = /0x[0-9a-f]|\brip\b|\bcr2\b|page fault|status 3|exceeds|larger than|\bms\b/i;

describe('serve: program failures as clients see them', needsKvm(), () => {
  let edge: EdgeServer;
  const logLines: string[] = [];
  const agent = new Agent({ connections: 16 });

  const get = async (host: string, path: string, init: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string } = {}) => {
    const r = await request(`${edge.front.url}${path}`, { method: init.method ?? 'GET', headers: { host, ...init.headers }, body: init.body, dispatcher: agent });
    return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
  };

  // The origin of `held`'s sub-requests: it answers only when a test says so, so the program's one
  // instance stays busy for exactly as long as a test needs.
  const held: ServerResponse[] = [];
  let heldArrived: () => void = () => {};
  const gate = createServer((_req, res) => {
    held.push(res);
    heldArrived();
  });

  before(async () => {
    const misbehave = buildGuest('sdk_misbehave');
    const hostcalls = buildGuest('sdk_hostcalls');
    gate.listen(0, '127.0.0.1');
    await once(gate, 'listening');
    const gatePort = (gate.address() as { port: number }).port;
    const yaml = `
server:
  # One shard: tests here watch that shard's program pool fill up.
  shards: 1
  listen: 127.0.0.1:0
  admin: 127.0.0.1:0
  operatorToken: operator-token-0123456789
tenants:
  - name: gen
    hosts: [gen.test]
    token: gen-token-0123456789
    programs:
      - name: misbehave
        file: ${misbehave}
        roles: [generate]
        routes: [{ prefix: / }]
        memory: 16MiB
        timeout: 300ms
        concurrency: 1
        queueTimeout: 20ms
        maxRequestSize: 8KiB
        maxResponseSize: 1MiB
      # One instance, whose /fetch waits on the gate's answer: busy for as long as a test holds it.
      - name: held
        file: ${hostcalls}
        roles: [generate]
        routes: [{ prefix: /held-check }, { prefix: /fetch }]
        timeout: 60s
        concurrency: 1
        queueTimeout: 20ms
      # /oom fills 16 MiB page by page: on a loaded machine that takes longer than misbehave's
      # 300 ms, so it has a program of its own whose time limit it cannot reach first (its first
      # route is the load check's, answered as any path but the failing ones).
      - name: hungry
        file: ${misbehave}
        roles: [generate]
        routes: [{ prefix: /hungry-check }, { prefix: /oom }]
        memory: 16MiB
        timeout: 60s
    origins: [{ name: default, url: "http://127.0.0.1:${gatePort}" }]
  - name: hook
    hosts: [hook.test]
    token: hook-token-0123456789
    origins: [{ name: default, url: "http://127.0.0.1:9" }]
    programs:
      - { name: recv, file: ${misbehave}, roles: [recv], timeout: 300ms }
`;
    const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-failures-test.yaml' }), { logger });
  });

  after(async () => {
    for (const res of held) res.end();
    await edge?.close();
    await agent.close();
    gate.close();
  });

  test('a guest fault answers 502 "program fault" without the fault text, which goes to the log', async () => {
    const r = await get('gen.test', '/crash');
    assert.equal(r.status, 502);
    assert.equal(r.body, 'program fault\n');
    assert.doesNotMatch(JSON.stringify(r.headers), GUEST_DETAIL);
    const logged = logLines.find((l) => l.includes('page fault at 0x0'));
    assert.ok(logged !== undefined, 'the fault text is in the log');
    assert.match(logged, /rip 0x[0-9a-f]+/);
    assert.match(logged, /"program":"misbehave"/);
  });

  test('each failure class has its own status and fixed text', async () => {
    const cases: Array<[string, number, string]> = [
      ['/exit', 502, 'program fault\n'],
      ['/oom', 502, 'program out of memory\n'],
      ['/big', 502, 'program sent an invalid response\n'],
      ['/badheader', 502, 'program sent an invalid response\n'],
      ['/loop', 504, 'program timed out\n'],
    ];
    for (const [path, status, body] of cases) {
      const r = await get('gen.test', path);
      assert.deepEqual([path, r.status, r.body], [path, status, body]);
    }
  });

  test('a request larger than the program accepts answers 413, by body or by headers', async () => {
    const byBody = await get('gen.test', '/upload', { method: 'POST', body: 'x'.repeat(10_000) });
    assert.deepEqual([byBody.status, byBody.body], [413, 'request too large for the program\n']);
    const byHeaders = await get('gen.test', '/fine', { headers: { 'x-pad': 'p'.repeat(9_000) } });
    assert.deepEqual([byHeaders.status, byHeaders.body], [413, 'request too large for the program\n']);
  });

  test('all instances busy answers 503 "program busy"', async () => {
    const arrived = new Promise<void>((resolve) => { heldArrived = resolve; });
    const slow = get('gen.test', '/fetch?first');
    // The one instance is inside its sub-request now, and stays there until the gate answers.
    await arrived;
    // Another URL: the same one would wait for the first as its coalesced follower.
    const full = await get('gen.test', '/fetch?second');
    assert.deepEqual([full.status, full.body], [503, 'program busy\n']);
    held.shift()!.end('released');
    const answer = await slow;
    assert.deepEqual([answer.status, answer.body], [200, 'status=200 len=8 body=released\n']);
  });

  test('a recv hook that faults answers 502 "program fault" too, without the fault text', async () => {
    const r = await get('hook.test', '/crash');
    assert.equal(r.status, 502);
    assert.equal(r.body, 'program fault\n');
  });
});
