// `tinyedge serve` as a command: the embedded demo config (what `npm start` runs), and a broken
// config file refused at start with its error path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { ROOT } from '../helpers/guests.ts';
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
