// A reload that rebuilds a tenant while one of its requests is between its recv hook and its
// deliver hook: the request finishes on the runtime it started on, hooks included (the soak,
// bench/soak.ts, once saw responses go out without the deliver hook's header at a reload, the
// retired runtime's program version unloaded under them).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { request } from 'undici';
import { loadConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const OP = 'operator-token-0123456789';

function configText(originUrl: string, timeout: string): string {
  return `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: ${OP} }
tenants:
  - name: one
    hosts: [one.test]
    token: one-token-0123456789
    origins: [{ name: default, url: ${originUrl} }]
    programs:
      - { name: hooks, file: ${buildGuest('sdk_hostcalls')}, roles: [generate, recv, deliver], routes: [{ prefix: /kv }], timeout: ${timeout} }
`;
}

describe('a reload while a request is in flight', needsKvm(), () => {
  let origin: Server;
  let edge: EdgeServer;
  let file: string;
  let originUrl: string;
  // The origin holds each request until the test lets it answer.
  const held: Array<{ req: IncomingMessage; res: ServerResponse }> = [];
  let arrived: (() => void) | undefined;

  before(async () => {
    origin = createServer((req, res) => {
      held.push({ req, res });
      arrived?.();
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    file = join(mkdtempSync(join(tmpdir(), 'tinyedge-reload-in-flight-')), 'tinyedge.yaml');
    writeFileSync(file, configText(originUrl, '1s'));
    edge = await EdgeServer.start(loadConfig(file), { logger: pino({ level: 'silent' }) });
  });
  after(async () => {
    await edge?.close();
    origin?.closeAllConnections();
    origin?.close();
  });

  test('a request past its recv hook when its program is reloaded still goes through its deliver hook', async () => {
    const came = new Promise<void>((r) => (arrived = r));
    const response = request(`${edge.front.url}/page`, { headers: { host: 'one.test' } });
    await came;
    assert.equal(held[0]!.req.headers['x-recv'], 'seen', 'the recv hook ran before the origin was asked');
    // A new program timeout changes the tenant: its runtime is rebuilt and the program loaded again.
    writeFileSync(file, configText(originUrl, '2s'));
    const r = await request(`${edge.admin.url}/v1/reload`, { method: 'POST', headers: { authorization: `Bearer ${OP}` } });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(((await r.body.json()) as { tenantsChanged: string[] }).tenantsChanged, ['one']);
    held[0]!.res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }).end('held\n');
    const answer = await response;
    assert.equal(answer.statusCode, 200);
    assert.equal(await answer.body.text(), 'held\n');
    assert.equal(answer.headers['x-delivered'], 'status-200', 'the deliver hook ran on the runtime the request started on');
    // The next request is the new runtime's, from the cache the rebuilt tenant kept.
    const next = await request(`${edge.front.url}/page`, { headers: { host: 'one.test' } });
    assert.equal(await next.body.text(), 'held\n');
    assert.equal(next.headers['x-delivered'], 'status-200');
  });
});
