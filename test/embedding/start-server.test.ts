// The `tinyedge` entry point: startServer runs what `tinyedge serve --config` runs, from a YAML
// file or from a config parsed in memory; the handle's reload() re-reads the file, and a config
// that does not validate is refused with a ConfigError before anything starts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { request } from 'undici';
import { buildExample } from '../../guest/build.ts';
import { ConfigError, parseConfig, startServer } from '../../src/index.ts';
import { needsKvm } from '../helpers/kvm.ts';

const quiet = { logger: pino({ level: 'silent' }), listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } };

function yaml(hosts: string): string {
  return `
server: {}
tenants:
  - name: site
    hosts: [${hosts}]
    token: site-token-0123456789
    programs:
      - { name: hello, file: ${buildExample('hello')}, roles: [generate], routes: [{ prefix: /hello }] }
`;
}

async function get(url: string, host: string): Promise<{ status: number; body: string }> {
  const r = await request(url, { headers: { host } });
  return { status: r.statusCode, body: await r.body.text() };
}

describe('startServer', needsKvm(), () => {
  test('serves the tenants of a config file, and reload() applies the file as it now reads', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tinyedge-lib-')), 'tinyedge.yaml');
    writeFileSync(file, yaml('a.test'));
    const server = await startServer({ configFile: file }, quiet);
    try {
      assert.deepEqual(await get(`${server.url}/hello`, 'a.test'), { status: 200, body: 'hello, world\n' });
      assert.equal((await get(`${server.url}/hello`, 'b.test')).status, 404);
      writeFileSync(file, yaml('a.test, b.test'));
      const diff = await server.reload();
      assert.deepEqual(diff.tenantsChanged, ['site']);
      assert.deepEqual(server.config.tenants[0]?.hosts, ['a.test', 'b.test']);
      assert.deepEqual(await get(`${server.url}/hello`, 'b.test'), { status: 200, body: 'hello, world\n' });
      const health = await request(`${server.admin.url}/v1/tenants/site/stats`, { headers: { authorization: 'Bearer site-token-0123456789' } });
      assert.equal(health.statusCode, 200);
      await health.body.text();
    } finally {
      await server.close();
    }
  });

  test('serves a config parsed from text in memory', async () => {
    const server = await startServer({ config: parseConfig(yaml('mem.test'), { file: join(tmpdir(), 'inline.yaml') }) }, quiet);
    try {
      assert.deepEqual(await get(`${server.url}/hello`, 'mem.test'), { status: 200, body: 'hello, world\n' });
    } finally {
      await server.close();
    }
  });
});

test('a config file that does not validate is refused with a ConfigError naming file and line', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'tinyedge-lib-')), 'broken.yaml');
  writeFileSync(file, 'server: {}\ntenants:\n  - name: site\n    hosts: [a.test]\n    token: site-token-0123456789\n    programs:\n      - { name: p, file: ./missing, routes: [{ prefix: / }] }\n');
  await assert.rejects(startServer({ configFile: file }, quiet), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, new RegExp(`broken\\.yaml:7: tenants\\[0\\]\\.programs\\[0\\]\\.file: `));
    return true;
  });
});
