// The logs and figures an operator reads beside the live log: the access log (a JSON record per
// request), origin failures and health changes in the operational log, and each tenant's CPU time
// split into guest time (inside KVM_RUN) and host time.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, get as httpGet, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import type { LogRecord } from '../../src/server/records.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

describe('access log, operational log, CPU time', needsKvm(), () => {
  let edge: EdgeServer | undefined;
  let origin: Server;
  let originUrl: string;
  /** The origin's health answer, which the test turns. */
  let sick = false;
  const dir = mkdtempSync(join(tmpdir(), 'tinyedge-observability-'));
  const accessLog = join(dir, 'access.log');
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  const logged = async (pick: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    for (;;) {
      const l = lines.find(pick);
      if (l) return l;
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  const get = async (host: string, path: string): Promise<number> => {
    const r = await request(`${edge!.front.url}${path}`, { headers: { host, connection: 'close' } });
    await r.body.text();
    return r.statusCode;
  };

  before(async () => {
    origin = createServer((req, res) => {
      if (req.url === '/health') res.writeHead(sick ? 500 : 200).end();
      else res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end(`page ${req.url}\n`);
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    const yaml = `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: operator-token-0123456789, accessLog: access.log }
tenants:
  - name: a
    hosts: [a.test]
    token: tenant-a-token-0123456789
    origins:
      - { name: default, url: "${originUrl}", healthCheck: { path: /health, interval: 50ms, threshold: 1 } }
      - { name: dead, url: "http://127.0.0.1:9" }
    routes: [{ prefix: /dead, origin: dead }]
    programs:
      - { name: echo, file: ${buildGuest('sdk_headers')}, routes: [{ prefix: /p }], memory: 16MiB }
`;
    const logger = pino({ level: 'info' }, {
      write: (line: string) => {
        lines.push(JSON.parse(line) as Record<string, unknown>);
        for (const w of waiters.splice(0)) w();
      },
    });
    edge = await EdgeServer.start(parseConfig(yaml, { file: join(dir, 'tinyedge.yaml') }), { logger });
  });
  after(async () => {
    await edge?.close();
    await new Promise((resolve) => origin?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  test('a failed origin exchange is logged with the tenant, origin and request, and in the record', async () => {
    assert.equal(await get('a.test', '/dead/x'), 502);
    const line = await logged((l) => typeof l.msg === 'string' && l.msg.startsWith('origin dead failed'));
    assert.equal(line.tenant, 'a');
    assert.equal(line.origin, 'dead');
    assert.equal(line.url, '/dead/x');
    assert.match(String(line.msg), /connection refused/);
  });

  test('an origin that turns sick and then healthy is logged each time', async () => {
    sick = true;
    const down = await logged((l) => l.msg === 'origin default is sick: its health check fails');
    assert.equal(down.healthy, false);
    sick = false;
    const up = await logged((l) => l.msg === 'origin default is healthy again');
    assert.equal(up.tenant, 'a');
  });

  test("a tenant's stats split its CPU time into guest and host time", async () => {
    const stats = async (): Promise<{ cpuGuestUs: number; cpuHostUs: number }> =>
      ((await (await request(`${edge!.admin.url}/v1/tenants/a/stats`, { headers: { authorization: 'Bearer tenant-a-token-0123456789' } })).body.json()) as { counters: { cpuGuestUs: number; cpuHostUs: number } }).counters;
    const before = await stats();
    assert.equal(await get('a.test', '/p/cpu'), 201);
    const after = await stats();
    assert.ok(after.cpuGuestUs > before.cpuGuestUs, `guest ${before.cpuGuestUs} → ${after.cpuGuestUs}`);
    assert.ok(after.cpuHostUs > before.cpuHostUs, `host ${before.cpuHostUs} → ${after.cpuHostUs}`);
  });

  test('the access log has one JSON record per request, written out by close; a reader of every record gets the same lines', async () => {
    // A reader without a filter shares the access log's serialisation of each batch: the bytes
    // it is handed (moved to the main thread) must not be the ones the access log still writes.
    const streamed: string[] = [];
    const reader = await new Promise<IncomingMessage>((resolve, reject) => {
      httpGet(`${edge!.admin.url}/v1/log`, { headers: { authorization: 'Bearer operator-token-0123456789' } }, resolve).on('error', reject);
    });
    assert.equal(reader.statusCode, 200);
    let rest = '';
    reader.setEncoding('utf8');
    reader.on('data', (chunk: string) => {
      rest += chunk;
      for (let nl = rest.indexOf('\n'); nl >= 0; nl = rest.indexOf('\n')) {
        streamed.push(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
      }
    });
    const urls = Array.from({ length: 20 }, (_, i) => `/access-many-${i}`);
    assert.equal(await get('a.test', '/access-1'), 200);
    assert.equal(await get('a.test', '/p/access-2'), 201);
    for (const url of urls) assert.equal(await get('a.test', url), 200);
    const wanted = ['/access-1', '/p/access-2', ...urls];
    while (!wanted.every((u) => streamed.some((l) => l.includes(`"url":"${u}"`)))) await new Promise((r) => setTimeout(r, 20));
    reader.destroy();
    await edge!.close();
    const text = readFileSync(accessLog, 'utf8');
    for (const u of wanted) {
      const line = streamed.find((l) => l.includes(`"url":"${u}"`))!;
      assert.ok(text.includes(`${line}\n`), `the access log has the reader's line for ${u}`);
    }
    const records = text.trim().split('\n').map((l) => JSON.parse(l) as LogRecord);
    const one = records.find((r) => r.url === '/access-1')!;
    assert.equal(one.tenant, 'a');
    assert.equal(one.backend, 'default');
    const two = records.find((r) => r.url === '/p/access-2')!;
    assert.equal(two.backend, 'echo');
    assert.deepEqual(two.logs, ['served a request']);
    assert.ok(records.some((r) => r.url === '/dead/x' && r.status === 502 && /^origin: /.test(String(r.error))));
    edge = undefined;
  });
});
