// Issue 9, defect 1, end to end: a program whose fetch names 256 headers of 40 MiB each once killed
// `serve` at upload (its warm-up request decoded them all: JavaScript heap out of memory). Now the
// upload goes through, the program's fetches get -EMSGSIZE, and every other tenant is served.
// An origin's answer is bounded too, as the host reads it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { type AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { MAX_FETCH_RESPONSE_BYTES } from '../../src/sandbox/abi.ts';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const OP = 'operator-token-0123456789';
const GOOD_TOKEN = 'good-token-0123456789';
const EVIL_TOKEN = 'evil-token-0123456789';
const EMSGSIZE = 90, EIO = 5;

describe('a hostile fetch program uploaded to a running server', needsKvm(), () => {
  let edge: EdgeServer;
  let origin: Server;
  const agent = new Agent({ connections: 16 });

  const get = async (host: string, path: string) => {
    const r = await request(`${edge.front.url}${path}`, { headers: { host }, dispatcher: agent });
    return { status: r.statusCode, body: await r.body.text() };
  };

  before(async () => {
    origin = createServer((req, res) => {
      if (req.url === '/big') res.end(Buffer.alloc(MAX_FETCH_RESPONSE_BYTES + 1, 'b'));
      else if (req.url === '/huge-headers') res.writeHead(200, { 'x-huge': 'h'.repeat(64 * 1024) }).end('x');
      else res.end('origin data');
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    // The warm-up request goes to the first route's prefix: the repro.
    const yaml = `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: ${OP} }
tenants:
  - name: good
    hosts: [good.test]
    token: ${GOOD_TOKEN}
    programs:
      - { name: app, file: ${buildGuest('sdk_misbehave')}, roles: [generate], routes: [{ prefix: / }] }
  - name: evil
    hosts: [evil.test]
    token: ${EVIL_TOKEN}
    origins: [{ name: default, url: "${originUrl}" }]
    programs:
      - { name: app, file: ${buildGuest('sdk_misbehave')}, roles: [generate], routes: [{ prefix: /headers-40m }, { prefix: /ok }, { prefix: /big }, { prefix: /huge-headers }] }
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-hostile-host-calls.yaml' }), { logger: pino({ level: 'silent' }) });
  });

  after(async () => {
    await edge?.close();
    await agent.close();
    origin?.close();
  });

  test('the upload and its warm-up survive, its fetches get an errno, and another tenant is served throughout', async () => {
    let uploadDone = false;
    const upload = request(`${edge.admin.url}/v1/tenants/evil/programs/app`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${EVIL_TOKEN}` },
      body: readFileSync(buildGuest('hostile_fetch')),
      dispatcher: agent,
    }).then(async (r) => ({ status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> })).finally(() => (uploadDone = true));
    const during: Array<Awaited<ReturnType<typeof get>>> = [];
    for (let i = 0; i === 0 || !uploadDone; i++) during.push(await get('good.test', `/during/${i}`));
    const uploaded = await upload;
    assert.equal(uploaded.status, 200, JSON.stringify(uploaded.json));
    assert.deepEqual(during.filter((r) => r.status !== 200 || r.body !== 'ok served=0\n'), []);

    assert.deepEqual(await get('evil.test', '/headers-40m'), { status: 200, body: `fetch=${-EMSGSIZE}\n` });
    assert.deepEqual(await get('evil.test', '/ok'), { status: 200, body: 'fetch=200 len=11 body=origin data\n' });
    assert.deepEqual(await get('good.test', '/after'), { status: 200, body: 'ok served=0\n' });
  });

  test("an origin's answer is bounded as the host reads it: a body or headers over the limit are EIO", async () => {
    assert.deepEqual(await get('evil.test', '/big'), { status: 200, body: `fetch=${-EIO}\n` });
    assert.deepEqual(await get('evil.test', '/huge-headers'), { status: 200, body: `fetch=${-EIO}\n` });
    assert.deepEqual(await get('evil.test', '/ok'), { status: 200, body: 'fetch=200 len=11 body=origin data\n' });
  });
});
