// `tinyedge proxy`: size and address parsing, usage errors (one line, exit 2), and a real run end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { listenAddress as parseListen, size as parseSize } from '../../src/cli/options.ts';
import { ROOT } from '../helpers/guests.ts';
import { get, send, startOrigin } from './helpers.ts';

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
  [['--origin', 'http://127.0.0.1:1', '--health-check', 'health'], /^error: option '--health-check <path>' argument 'health' is invalid\. expected a path starting with \//],
  [['--origin', 'http://127.0.0.1:1', '--health-check', '/h', '--health-interval', '0'], /^error: option '--health-interval <duration>' argument '0' is invalid\. expected a duration above 0/],
  [['--origin', 'http://127.0.0.1:1', '--health-interval', '1s'], /^error: option '--health-interval <duration>' needs --health-check <path>$/m],
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

test('tinyedge proxy probes the origin only when asked; while the probe fails, a stale object stands in for the origin', async () => {
  let healthy = true;
  let probes = 0;
  let onProbe: (() => void) | undefined;
  const origin = await startOrigin((req, res) => {
    if (req.url === '/health') {
      probes++;
      res.writeHead(healthy ? 200 : 503);
      res.end();
      onProbe?.();
      return;
    }
    res.writeHead(200, { 'cache-control': 'max-age=100000', etag: '"1"' });
    res.end('object');
  });
  /** Resolves once the origin has answered `n` more probes (what the proxy's verdict follows). */
  const moreProbes = (n: number): Promise<void> => new Promise((resolve) => {
    const target = probes + n;
    onProbe = () => { if (probes >= target) { onProbe = undefined; resolve(); } };
  });
  const { url, child } = await startCli(['--origin', origin.url, '--health-check', '/health', '--health-interval', '50ms', '--default-grace', '0']);
  const objectFetches = (): number => origin.requests.filter((r) => r.url === '/o').length;
  assert.equal((await get(url, '/o')).headers['x-cache'], 'MISS');
  await moreProbes(2);
  // Healthy: a client's max-age=0 is honoured (the origin is asked again).
  const revalidated = await send(`${url}/o`, { headers: { 'cache-control': 'max-age=0' } });
  assert.notEqual(revalidated.headers['x-cache'], 'STALE');
  assert.equal(objectFetches(), 2);
  // Two failed probes (the threshold) make it sick: the stored object answers, the origin is not asked.
  healthy = false;
  await moreProbes(3);
  const stale = await send(`${url}/o`, { headers: { 'cache-control': 'max-age=0' } });
  assert.equal(stale.headers['x-cache'], 'STALE');
  assert.equal(stale.body, 'object');
  assert.equal(objectFetches(), 2);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;

  // Without --health-check nothing probes: the origin only ever sees the requests it is sent.
  const plain = await startCli(['--origin', origin.url]);
  healthy = true;
  assert.equal((await get(plain.url, '/o')).headers['x-cache'], 'MISS');
  const probesBefore = probes;
  assert.notEqual((await send(`${plain.url}/o`, { headers: { 'cache-control': 'no-cache' } })).headers['x-cache'], 'STALE');
  assert.equal(probes, probesBefore);
  const plainExited = new Promise((resolve) => plain.child.once('exit', resolve));
  plain.child.kill('SIGTERM');
  await plainExited;
  await origin.close();
});
