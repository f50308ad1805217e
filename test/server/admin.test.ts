// The admin API against malformed input over real HTTP: request targets and purge URLs that do not
// parse are the client's mistake (400 with a reason), never a server error.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { exchange } from '../helpers/raw-http.ts';

const TOKEN = 'solo-token-0123456789';
const OP = 'operator-token-0123456789';

describe('admin API input', () => {
  let edge: EdgeServer;
  let port: number;

  const admin = async (method: 'GET' | 'POST', path: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> => {
    const r = await request(`${edge.admin.url}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` }, body });
    return { status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> };
  };

  before(async () => {
    const config = parseConfig(`
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: ${OP} }
tenants:
  - name: solo
    hosts: [solo.test]
    token: ${TOKEN}
    origins: [{ name: default, url: "http://127.0.0.1:9" }]
`, { file: '/tmp/tinyedge-admin-test.yaml' });
    edge = await EdgeServer.start(config, { logger: pino({ level: 'silent' }) });
    port = Number(new URL(edge.admin.url).port);
  });
  after(() => edge?.close());

  test('a bad percent-escape in the path answers 400 with the reason, and the API keeps answering', async () => {
    for (const path of ['/v1/tenants/%zz', '/v1/tenants/solo/%E0%A4%A', '/v1/%']) {
      const r = await admin('GET', path);
      assert.equal(r.status, 400, path);
      assert.match(String(r.json.error), /malformed percent-escape/, path);
    }
    assert.equal((await admin('GET', '/v1/tenants/solo')).status, 200);
    assert.equal((await admin('GET', '/v1/tenants/%73olo')).json.name, 'solo');
  });

  test('a request target that is not a URL answers 400', async () => {
    const r = await exchange(port, `GET //[ HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`);
    assert.deepEqual(r.statusLines, ['HTTP/1.1 400 Bad Request']);
    assert.match(r.text, /malformed request target/);
    assert.equal((await admin('GET', '/v1/health')).status, 200);
  });

  test('a purge URL that does not parse answers 400; a path or an absolute URL purges', async () => {
    for (const url of ['http://[', '*', 'http://exa mple.com/']) {
      const r = await admin('POST', '/v1/tenants/solo/purge', JSON.stringify({ url }));
      assert.equal(r.status, 400, url);
      assert.match(String(r.json.error), /"url" must be a path/, url);
    }
    assert.deepEqual((await admin('POST', '/v1/tenants/solo/purge', JSON.stringify({ url: '/a?b' }))).json, { purged: 0 });
    assert.deepEqual((await admin('POST', '/v1/tenants/solo/purge', JSON.stringify({ url: 'http://solo.test/a' }))).json, { purged: 0 });
  });
});
