// Reloading the config without dropping requests: a new tenant appears, a broken file changes
// nothing and says why, and the key-value store and unchanged programs survive.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { loadConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const OP = 'operator-token-0123456789';

function configText(extraTenant: string): string {
  return `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: ${OP}, slice: 2ms }
tenants:
  - name: one
    hosts: [one.test]
    token: one-token-0123456789
    programs:
      # A long queue timeout: 200 requests at once must wait for an instance, not be refused as busy
      # on a loaded machine; what the reload test counts is requests the reload drops.
      - { name: calls, file: ${buildGuest('sdk_hostcalls')}, roles: [generate], routes: [{ prefix: /kv }, { prefix: / }], queueTimeout: 60s }
${extraTenant}`;
}

const TWO = `  - name: two
    hosts: [two.test]
    token: two-token-0123456789
    programs:
      - { name: gen, file: ${buildGuest('sdk_headers')}, roles: [generate], routes: [{ prefix: / }] }
`;

describe('config reload', needsKvm(), () => {
  let dir: string;
  let file: string;
  let edge: EdgeServer;
  const get = async (host: string, path: string) => {
    const r = await request(`${edge.front.url}${path}`, { headers: { host, 'cache-control': 'no-cache' } });
    return { status: r.statusCode, body: await r.body.text() };
  };
  const reload = async () => {
    const r = await request(`${edge.admin.url}/v1/reload`, { method: 'POST', headers: { authorization: `Bearer ${OP}` } });
    return { status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tinyedge-reload-'));
    file = join(dir, 'tinyedge.yaml');
    writeFileSync(file, configText(''));
    edge = await EdgeServer.start(loadConfig(file), { logger: pino({ level: 'silent' }) });
  });
  after(() => edge?.close());

  test('a reload adds a tenant while the others keep serving, with their key-value store', async () => {
    assert.equal((await get('one.test', '/kv/incr')).body, 'counter=1 stored=0\n');
    assert.equal((await get('two.test', '/')).status, 404);
    writeFileSync(file, configText(TWO));
    const r = await reload();
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.tenantsAdded, ['two']);
    assert.deepEqual(r.json.tenantsChanged, []);
    assert.equal((await get('two.test', '/x')).status, 201);
    assert.equal((await get('one.test', '/kv/incr')).body, 'counter=2 stored=0\n');
  });

  test('a broken config is refused with its error path, and nothing changes', async () => {
    writeFileSync(file, configText(TWO).replace('slice: 2ms', 'slice: lots'));
    const r = await reload();
    assert.equal(r.status, 400);
    assert.equal(r.json.error, 'config refused; nothing changed');
    assert.match(String((r.json.problems as string[])[0]), /tinyedge\.yaml:2: server\.slice: expected .*got "lots"/);
    assert.equal((await get('two.test', '/x')).status, 201);
  });

  test('a reload that changes a tenant while 200 requests run drops none of them', async () => {
    const load = Array.from({ length: 200 }, (_, i) => new Promise((r) => setTimeout(r, i % 50)).then(() => get('one.test', `/hello/${i}`)));
    // Changing the tenant's cache quota rebuilds its runtime; its unchanged program is kept.
    writeFileSync(file, configText(TWO).replace('token: one-token-0123456789', 'token: one-token-0123456789\n    cache: { memory: 32MiB }'));
    const r = await reload();
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.tenantsChanged, ['one']);
    const results = await Promise.all(load);
    assert.deepEqual(results.filter((x) => x.status !== 200), []);
    assert.equal((await get('one.test', '/kv/incr')).body, 'counter=3 stored=0\n');
  });

  test('a reload that removes a tenant stops routing its hosts', async () => {
    writeFileSync(file, configText(''));
    const r = await reload();
    assert.deepEqual(r.json.tenantsRemoved, ['two']);
    assert.equal((await get('two.test', '/x')).status, 404);
    assert.equal((await get('one.test', '/kv/incr')).body, 'counter=4 stored=0\n');
  });
});
