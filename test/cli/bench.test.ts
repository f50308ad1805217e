// `tinyedge bench` prints the floor and the per-request percentiles split into call and reset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildExample } from '../../guest/build.ts';
import { buildGuest, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

test('tinyedge bench reports the floor, call and reset percentiles, and load and instance times', needsKvm(), () => {
  const out = execFileSync(process.execPath, [join(ROOT, 'bin/tinyedge.js'), 'bench', '-n', '200', '--loads', '1', buildGuest('sdk_headers')], { encoding: 'utf8' });
  assert.match(out, /^bare ring-3 exit \(floor\)\s+\d+\.\d$/m);
  for (const row of ['call', 'reset', 'call \\+ reset \\(wall\\)']) assert.match(out, new RegExp(`^${row}\\s+[\\d.]+\\s+[\\d.]+\\s+[\\d.]+\\s+[\\d.]+$`, 'm'));
  assert.match(out, /^load → init → snapshot → first response: [\d.]+ ms \(median\)$/m);
  assert.match(out, /^new instance from the snapshot: [\d.]+ ms \(median of 10, pooled VM\), [\d.]+ ms cold \(new VM\)$/m);
});

test('tinyedge bench --header and --body (a file, or stdin with @-) reach the program, which answers each request alike', needsKvm(), () => {
  const echo = buildExample('echo');
  const dir = mkdtempSync(join(tmpdir(), 'tinyedge-bench-'));
  const bodyFile = join(dir, 'body.json');
  writeFileSync(bodyFile, '{"from":"file"}');
  const bench = (args: string[], input?: string): string =>
    execFileSync(process.execPath, [join(ROOT, 'bin/tinyedge.js'), 'bench', '-n', '100', '--loads', '1', ...args, echo], { encoding: 'utf8', input });
  const fromFile = bench(['--method', 'POST', '--url', '/items?id=7', '--header', 'X-Bench: one', '--header', 'Host:shop.test', '--body', bodyFile]);
  assert.match(fromFile, /^statuses: 200 × 100$/m);
  const first = /^first response: 200, \d+ bytes: (.*)$/m.exec(fromFile);
  assert.ok(first, fromFile);
  const seen = JSON.parse(first[1]!.replace(/\\n$/, '')) as { method: string; url: string; headers: Record<string, string>; body: string };
  assert.equal(seen.method, 'POST');
  assert.equal(seen.url, '/items?id=7');
  // The given Host replaces bench's default; the default User-Agent stays.
  assert.deepEqual(seen.headers, { 'User-Agent': 'tinyedge-bench', 'X-Bench': 'one', Host: 'shop.test' });
  assert.equal(seen.body, '{"from":"file"}');

  const fromStdin = bench(['--method', 'PUT', '--body', '@-'], 'piped in');
  assert.match(fromStdin, /^first response: 200, \d+ bytes: \{"method":"PUT",.*"body":"piped in",/m);
});

test('tinyedge bench refuses a malformed --header and an unreadable --body with status 2', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin/tinyedge.js'), 'bench', ...args, 'program'], { encoding: 'utf8' });
  const header = run(['--header', 'no colon']);
  assert.equal(header.status, 2);
  assert.match(header.stderr, /option '--header <name:value>' argument 'no colon' is invalid/);
  assert.equal(run(['--header', 'Bad Name: x']).status, 2);
  const body = run(['--body', '/nonexistent/body']);
  assert.equal(body.status, 2);
  assert.match(body.stderr, /^tinyedge: cannot read the request body from \/nonexistent\/body: ENOENT/);
});
