// `tinyedge serve` as a command: the embedded demo config (what `npm start` runs), a broken
// config file refused at start with its error path, a cache reserve that cannot be made refused
// with the reason, and a program that fails at start named with its tenant, file and the step
// that failed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { buildGuest, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');

test('a broken config is refused at start with its error path and exit status 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tinyedge-bad-'));
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'server:\n  listen: 127.0.0.1:8080\ntenants:\n  - name: a\n    hosts: [a.test]\n    token: short\n    programs:\n      - { name: p, file: ./missing, routes: [{ prefix: / }] }\n');
  const child = spawn(process.execPath, [BIN, 'serve', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise<void>((resolve) => {
    child.on('exit', (code) => {
      assert.equal(code, 2);
      assert.match(err, /^tinyedge: config refused:\n/);
      assert.match(err, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:8: tenants\\[0\\]\\.programs\\[0\\]\\.file: `));
      resolve();
    });
  });
});

test('a cache reserve that cannot be made is refused at start with the reason and exit status 2', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'tinyedge-reserve-')), 'big.yaml');
  writeFileSync(file, 'server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, cacheMaxMemory: 26GiB }\ntenants:\n  - { name: a, hosts: [a.test], token: a-token-0123456789 }\n');
  const r = spawnSync(process.execPath, [BIN, 'serve', '--config', file], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^tinyedge: the cache's memory \(server\.cacheMaxMemory, or the tenants' cache\.memory added up\) cannot be reserved: a reserve of 27917287424 bytes \(26\.00 GiB\) is more than the store can address \(\d+, 25\.59 GiB\)\n$/);
});

for (const [stage, file, route, step] of [
  ['load', () => buildGuest('hello', 'dynamic'), '/app', 'at load \\(reading and booting the executable\\): program is dynamically linked'],
  ['init', () => buildGuest('hello'), '/app', 'at init \\(its main\\(\\) before it waits for requests\\): program exited with status 0 before'],
  ['warm-up', () => buildGuest('sdk_misbehave'), '/crash', 'at warm-up \\(its answer to GET /crash\\): '],
] as const) {
  test(`a program that fails at ${stage} stops serve with the tenant, program, file and step named, exit status 125`, needsKvm(), () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinyedge-start-'));
    const config = join(dir, 'tinyedge.yaml');
    const program = file();
    writeFileSync(config, `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
tenants:
  - { name: fine, hosts: [fine.test], token: fine-token-0123456789, programs: [{ name: ok, file: ${buildGuest('sdk_headers')}, routes: [{ prefix: /ok }] }] }
  - name: shop
    hosts: [shop.test]
    token: shop-token-0123456789
    programs: [{ name: app, file: ${program}, routes: [{ prefix: ${route} }] }]
`);
    const r = spawnSync(process.execPath, [BIN, 'serve', '--config', config], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 125, r.stderr);
    const escaped = program.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(r.stderr, new RegExp(`^tinyedge: tenant shop, program app \\(file ${escaped}\\) failed ${step}`, 'm'));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });
}

test('tinyedge serve without a config serves the demo tenant: its origin cached, its program, its admin API', needsKvm(), async () => {
  const child = spawn(process.execPath, [BIN, 'serve'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('curl -s -H')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
  try {
    const page1 = await request('http://localhost:8080/');
    await page1.body.text();
    const page2 = await request('http://localhost:8080/');
    assert.match(await page2.body.text(), /Hello from the demo origin/);
    assert.equal(page2.headers['x-cache'], 'HIT');
    const hello = await request('http://localhost:8080/hello');
    assert.equal(await hello.body.text(), 'hello, world\n');
    const stats = await request('http://127.0.0.1:8081/v1/tenants/demo/stats', { headers: { authorization: 'Bearer demo-token-change-me' } });
    assert.equal(stats.statusCode, 200);
    assert.equal(((await stats.body.json()) as { counters: { vmCalls: number } }).counters.vmCalls >= 1, true);
  } finally {
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  }
});
