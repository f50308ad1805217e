// `tinyedge proxy`: size and address parsing, usage errors (one line, exit 2), and a real run end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { listenAddress as parseListen, size as parseSize } from '../../src/cli/options.ts';
import { ROOT } from '../helpers/guests.ts';
import { get, startOrigin } from './helpers.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');

test('parses sizes as the config does: binary units, bytes bare, decimal units refused as ambiguous', () => {
  assert.equal(parseSize('512KiB'), 512 * 1024);
  assert.equal(parseSize('256MiB'), 256 * 1024 ** 2);
  assert.equal(parseSize('1GiB'), 1024 ** 3);
  assert.equal(parseSize('1.5GiB'), 1.5 * 1024 ** 3);
  assert.equal(parseSize('4096'), 4096);
  assert.equal(parseSize('64mib'), 64 * 1024 ** 2);
  for (const bad of ['', 'MiB', '12XB', '-1MiB', '0', '1 2MiB', '10MB']) assert.throws(() => parseSize(bad), InvalidArgumentError, bad);
  assert.throws(() => parseSize('12XB'), /^InvalidArgumentError: expected a positive size \(e\.g\. "512KiB", "64MiB", "1GiB", or bytes\)\.$/);
  assert.throws(() => parseSize('10MB'), /^InvalidArgumentError: expected a size in binary units \(KiB, MiB, GiB, TiB\); MB could mean powers of 1000 or of 1024\.$/);
});

test('parses listen addresses', () => {
  assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListen(':9000'), { host: '127.0.0.1', port: 9000 });
  assert.deepEqual(parseListen('8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListen('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
  assert.deepEqual(parseListen('[::1]:80'), { host: '::1', port: 80 });
  assert.throws(() => parseListen('localhost:99999'), InvalidArgumentError);
  assert.throws(() => parseListen('nope'), InvalidArgumentError);
});

for (const [args, message] of [
  [['--origin', 'http://127.0.0.1:1', '--memory', 'lots'], /^error: option '--memory <size>' argument 'lots' is invalid\. expected a positive size/],
  [['--origin', 'ftp://x'], /^error: option '--origin <url>' argument 'ftp:\/\/x' is invalid\. only http:\/\/ origins are supported/],
  [['--origin', 'http://127.0.0.1:1', '--listen', 'x:y'], /^error: option '--listen <addr>' argument 'x:y' is invalid\. expected HOST:PORT/],
  [[], /^error: required option '--origin <url>' not specified/],
  [['--origin', 'http://127.0.0.1:1', '--default-grace', 'soon'], /^error: option '--default-grace <duration>' argument 'soon' is invalid\. expected a duration/],
] as const) {
  test(`tinyedge proxy ${args.join(' ') || '(no origin)'} exits 2 with a one-line error`, () => {
    const r = spawnSync(process.execPath, [BIN, 'proxy', ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
}

/** Starts `tinyedge proxy` with `args` and resolves with its URL and the child. */
async function startCli(args: string[]): Promise<{ url: string; child: ReturnType<typeof spawn> }> {
  const child = spawn(process.execPath, [BIN, 'proxy', '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on (http:\/\/\S+),/.exec(out);
      if (m) resolve(m[1] as string);
    });
    child.once('exit', (code) => reject(new Error(`proxy exited early with ${code}`)));
  });
  return { url, child };
}

test('tinyedge proxy --default-grace 0 serves nothing stale that the response did not allow; the default grace does', async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=0' });
    res.end('x');
  });
  for (const [args, second] of [[[], 'STALE'], [['--default-grace', '0', '--default-keep', '0s'], 'MISS']] as const) {
    const { url, child } = await startCli(['--origin', origin.url, ...args]);
    await get(url, '/g');
    assert.equal((await get(url, '/g')).headers['x-cache'], second, args.join(' ') || 'defaults');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  await origin.close();
});

test('tinyedge proxy caches an origin end to end and stops cleanly on SIGTERM', async () => {
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    res.end(`host=${req.headers.host}`);
  });
  const child = spawn(process.execPath, [BIN, 'proxy', '--origin', origin.url, '--listen', '127.0.0.1:0', '--memory', '8MiB', '--host-header', 'origin.example'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on (http:\/\/\S+),/.exec(out);
      if (m) resolve(m[1] as string);
    });
    child.once('exit', (code) => reject(new Error(`proxy exited early with ${code}`)));
  });
  const a = await get(url, '/x');
  const b = await get(url, '/x');
  assert.equal(a.body, 'host=origin.example');
  assert.equal(a.headers['x-cache'], 'MISS');
  assert.equal(b.headers['x-cache'], 'HIT');
  assert.equal(origin.requests.filter((r) => r.url === '/x').length, 1);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  await origin.close();
});
