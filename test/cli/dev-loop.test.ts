// `tinyedge dev` runs what `serve` runs: sub-requests to `--origin` (a real origin in this
// process), an in-memory key-value store that outlives requests, a tenant of a config file
// (`--config --tenant`: its programs, recv and deliver hooks, routes and origins), `--trace` of
// the hypercalls of a request, and an SDK program's stdout in the log.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { buildGuest, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');

interface Dev {
  url: string;
  child: ChildProcess;
  stderr: () => string;
}

/** Starts `tinyedge dev` and resolves once it listens. */
function startDev(args: string[]): Promise<Dev> {
  const child = spawn(process.execPath, [BIN, 'dev', '--port', '0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve({ url: m[1]!, child, stderr: () => err });
    });
    child.on('exit', (code) => reject(new Error(`tinyedge dev exited with ${code}: ${err}`)));
  });
}

/** Runs `tinyedge dev` expecting it to refuse to start; resolves with its status and stderr. */
function refusedDev(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, 'dev', '--port', '0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

/** Resolves once `dev`'s stderr matches `pattern` (its log follows the response). */
async function logged(dev: Dev, pattern: RegExp): Promise<string> {
  for (let i = 0; i < 200 && !pattern.test(dev.stderr()); i++) await new Promise((r) => setTimeout(r, 10));
  assert.match(dev.stderr(), pattern);
  return dev.stderr();
}

const get = async (url: string, init: { method?: 'GET' | 'POST'; body?: string } = {}) => {
  const r = await request(url, { method: init.method ?? 'GET', body: init.body });
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
};

describe('tinyedge dev: the local loop', needsKvm(), () => {
  const children: ChildProcess[] = [];
  let origin: Server;
  let originUrl = '';
  const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];

  before(async () => {
    origin = createServer((req, res) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`origin answered ${req.url}`);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  });

  after(() => {
    for (const c of children) c.kill('SIGTERM');
    origin.close();
  });

  const dev = async (args: string[]): Promise<Dev> => {
    const d = await startDev(args);
    children.push(d.child);
    return d;
  };

  test("--origin: the program's sub-request reaches the origin, with its Host, and the answer reaches the program", async () => {
    const d = await dev(['--origin', originUrl, buildGuest('sdk_hostcalls')]);
    const r = await get(`${d.url}/fetch`);
    assert.equal(r.status, 200);
    assert.equal(r.body, `status=200 len=32 body=origin answered /data?from=guest\n`);
    const last = seen.at(-1)!;
    assert.equal(last.url, '/data?from=guest');
    assert.equal(last.headers.host, new URL(originUrl).host);
    assert.match(d.stderr(), new RegExp(`sub-requests go to ${originUrl}`));
  });

  test('an origin that refuses answers the program -EIO, and the log says why', async () => {
    const d = await dev(['--origin', 'http://127.0.0.1:9', buildGuest('sdk_hostcalls')]);
    const r = await get(`${d.url}/fetch`);
    assert.equal(r.body, 'status=-5 len=0 body=\n');
    await logged(d, /! sub-request GET \/data\?from=guest to origin default: origin connection refused/);
  });

  test('the key-value store keeps its values across requests (each of which starts from the snapshot)', async () => {
    const d = await dev([buildGuest('sdk_hostcalls')]);
    assert.equal((await get(`${d.url}/kv/incr`)).body, 'counter=1 stored=0\n');
    assert.equal((await get(`${d.url}/kv/incr`)).body, 'counter=2 stored=0\n');
    assert.equal((await get(`${d.url}/kv/del`)).body, 'deleted=0\n');
    assert.equal((await get(`${d.url}/kv/incr`)).body, 'counter=1 stored=0\n');
    // Without an origin, a sub-request fails inside the program, as under serve.
    assert.equal((await get(`${d.url}/fetch`)).body, 'status=-5 len=0 body=\n');
  });

  test("--config --tenant: the tenant's generate program, recv and deliver hooks, routes, origin and store; the trace names each program", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinyedge-dev-'));
    const config = join(dir, 'tinyedge.yaml');
    writeFileSync(config, `
tenants:
  - name: other
    hosts: [other.test]
    token: other-token-0123456789
    programs:
      - { name: echo, file: ${buildGuest('sdk_headers')}, roles: [generate], routes: [{ prefix: / }] }
  - name: shop
    hosts: [shop.test]
    token: shop-token-0123456789
    origins: [{ name: default, url: "${originUrl}" }]
    kv: { memory: 64KiB }
    programs:
      - { name: calls, file: ${buildGuest('sdk_hostcalls')}, roles: [generate], routes: [{ prefix: /fetch }, { prefix: /kv }] }
      - { name: hooks, file: ${buildGuest('sdk_hostcalls')}, roles: [recv, deliver] }
`);
    const d = await dev(['--config', config, '--tenant', 'shop', '--trace']);
    assert.match(d.stderr(), /tinyedge dev: tenant shop of .*tinyedge\.yaml \(calls: generate, hooks: recv\+deliver\)/);
    // The generate program, with the store and the deliver hook's header.
    const kv = await get(`${d.url}/kv/incr`);
    assert.equal(kv.body, 'counter=1 stored=0\n');
    assert.equal(kv.headers['x-delivered'], 'status-200');
    assert.equal((await get(`${d.url}/kv/incr`)).body, 'counter=2 stored=0\n');
    // A sub-request to the tenant's origin.
    assert.equal((await get(`${d.url}/fetch`)).body, 'status=200 len=32 body=origin answered /data?from=guest\n');
    // recv rewrites /old/... to /new/..., which no program routes: the default origin answers, with recv's header.
    const rewritten = await get(`${d.url}/old/page`);
    assert.equal(rewritten.body, 'origin answered /new/page');
    assert.equal(seen.at(-1)!.headers['x-recv'], 'seen');
    assert.equal(rewritten.headers['x-delivered'], 'status-200');
    // recv answers /blocked itself.
    const blocked = await get(`${d.url}/blocked`);
    assert.equal(blocked.status, 403);
    assert.equal(blocked.body, 'blocked by recv\n');
    assert.equal(blocked.headers['x-delivered'], undefined, 'the deliver hook skips recv\'s own answer, as under serve');
    // 4 KiB into a 64 KiB store: the tenant's quota holds (16 values would not fit).
    assert.equal((await get(`${d.url}/kv/big`)).body, 'stored=0\n');
    // With two programs, each trace line names its program.
    const err = await logged(d, /^GET \/kv\/big 200 /m);
    assert.match(err, /^\[calls\] te_kv_set\(\{key="big", value="b{64}"\.\.\.\}\) <unfinished \.\.\.>$/m);
    assert.match(err, /^\[hooks\] te_wait\(0x[0-9a-f]+\) <unfinished \.\.\.>$/m);
  });

  test('--config: in a tenant without a default origin, a request no route matches answers 404', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinyedge-dev-'));
    const config = join(dir, 'lone.yaml');
    writeFileSync(config, `
tenants:
  - { name: lone, hosts: [lone.test], token: lone-token-0123456789, programs: [{ name: p, file: ${buildGuest('sdk_headers')}, routes: [{ prefix: /only }] }] }
`);
    const d = await dev(['--config', config]);
    assert.equal((await get(`${d.url}/only/x`)).status, 201);
    const missed = await get(`${d.url}/elsewhere?q=1`);
    assert.equal(missed.status, 404);
    assert.equal(missed.body, 'no route for GET /elsewhere\n');
  });

  test('--config: a tenant must be named when there are several; a missing one is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinyedge-dev-'));
    const config = join(dir, 'two.yaml');
    const program = buildGuest('sdk_headers');
    writeFileSync(config, `
tenants:
  - { name: a, hosts: [a.test], token: a-token-0123456789, programs: [{ name: p, file: ${program}, routes: [{ prefix: / }] }] }
  - { name: b, hosts: [b.test], token: b-token-0123456789, programs: [{ name: p, file: ${program}, routes: [{ prefix: / }] }] }
`);
    const unnamed = await refusedDev(['--config', config]);
    assert.equal(unnamed.code, 2);
    assert.match(unnamed.stderr, /^tinyedge: .*two\.yaml has 2 tenants: name one with --tenant \(a, b\)\n$/);
    const missing = await refusedDev(['--config', config, '--tenant', 'c']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /has no tenant c \(it has a, b\)/);
    const both = await refusedDev(['--config', config, '--tenant', 'a', program]);
    assert.equal(both.code, 2);
    const none = await refusedDev([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^tinyedge: name a program to serve, or a tenant with --config FILE --tenant NAME\n$/);
  });

  test('--trace prints the hypercalls of a request, decoded, and the system calls', async () => {
    const d = await dev(['--trace', buildGuest('sdk_hostcalls')]);
    await logged(d, /^te_wait\(NULL, abi_version=2\) <unfinished \.\.\.>$/m);
    assert.equal((await get(`${d.url}/kv/incr`)).body, 'counter=1 stored=0\n');
    const err = await logged(d, /^GET \/kv\/incr 200 /m);
    const request = err.slice(err.indexOf('listening on'));
    const lines = request.split('\n');
    const expect = (line: string): void => assert.ok(lines.includes(line), `no line ${line} in:\n${request}`);
    assert.match(lines[1]!, /^<\.\.\. te_wait resumed> = 0x[0-9a-f]+$/);
    expect('te_kv_get({key="counter"}) <unfinished ...>');
    expect('<... te_kv_get resumed> = -1 ENOENT (No such file or directory)');
    expect('te_kv_set({key="counter", value="1"}) <unfinished ...>');
    expect('<... te_kv_set resumed> = 0');
    assert.ok(lines.some((l) => /^te_wait\(0x[0-9a-f]+\) <unfinished \.\.\.>$/.test(l)), request);
  });

  test('--trace decodes hostile hypercall arguments without changing what the program gets', async () => {
    const program = buildGuest('hostile_kv_log');
    const plain = await dev([program]);
    const traced = await dev(['--trace', program]);
    for (const path of ['/key-huge', '/value-huge', '/log-huge', '/get-bad-buf', '/key-long', '/delete-junk']) {
      const a = await get(`${plain.url}${path}`);
      const b = await get(`${traced.url}${path}`);
      assert.deepEqual([b.status, b.body], [a.status, a.body], path);
    }
    const err = await logged(traced, /^GET \/delete-junk 200 /m);
    assert.match(err, /^te_log\("a{64}"\.\.\., 9223372036854775808\) = 0$/m);
    assert.match(err, /^te_kv_get\(\{key="a{64}"\.\.\.\}\) = -1 E2BIG \(Argument list too long\)$/m);
    assert.match(err, /^te_kv_get\(\{key="k"\}\) = -1 EFAULT \(Bad address\)$/m);
  });

  test('--trace decodes increments and compare-and-sets, hostile ones too', async () => {
    const d = await dev(['--trace', buildGuest('hostile_kv_atomics')]);
    for (const path of ['/incr-ok', '/cas-absent-junk', '/incr-struct-bad', '/cas-expected-huge', '/cas-flags-2']) assert.equal((await get(`${d.url}${path}`)).status, 200, path);
    const err = await logged(d, /^GET \/cas-flags-2 200 /m);
    assert.match(err, /^te_kv_increment\(\{key="n", delta=1\}\) <unfinished \.\.\.>$/m);
    assert.match(err, /^<\.\.\. te_kv_increment resumed> = 0$/m);
    assert.match(err, /^te_kv_compare_and_set\(\{key="k", expected=absent, value="v"\}\) <unfinished \.\.\.>$/m);
    assert.match(err, /^<\.\.\. te_kv_compare_and_set resumed> = 1$/m);
    assert.match(err, /^te_kv_increment\(0xdead0000\) = -1 EFAULT \(Bad address\)$/m);
    assert.match(err, /^te_kv_compare_and_set\(\{key="k", expected="a{64}"\.\.\., value="v"\}\) = -1 E2BIG \(Argument list too long\)$/m);
    assert.match(err, /^te_kv_compare_and_set\(\{key="k", flags=0x2, value="v"\}\) = -1 EINVAL \(Invalid argument\)$/m);
  });

  test("an SDK program's stdout is logged with its stderr", async () => {
    const d = await dev([buildGuest('sdk_stdout')]);
    assert.equal((await get(`${d.url}/hello`)).body, 'logged\n');
    const err = await logged(d, /^GET \/hello 200 /m);
    assert.match(err, /^ {2}\| stdout: handling \/hello$/m);
    assert.match(err, /^ {2}\| stderr: handling \/hello$/m);
  });
});
