// `tinyedge dev` end to end: the CLI serves a program over real HTTP, in SDK and CGI mode.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { request } from 'undici';
import { buildGuest, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');

/** Starts `tinyedge dev` and resolves with its URL once it listens. */
function startDev(args: string[]): Promise<{ url: string; child: ChildProcess; stderr: () => string }> {
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

describe('tinyedge dev', needsKvm(), () => {
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) c.kill('SIGTERM');
  });

  test('serves an SDK program: request headers and a POST body reach it, its headers reach the client', async () => {
    const dev = await startDev([buildGuest('sdk_headers')]);
    children.push(dev.child);
    const res = await request(`${dev.url}/items?id=7`, { method: 'POST', headers: { 'x-test': 'from-client' }, body: 'posted data' });
    assert.equal(res.statusCode, 201);
    assert.equal(res.headers['x-echo-test'], 'from-client');
    assert.equal(res.headers['x-program'], 'sdk_headers');
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
    assert.match(String(res.headers['server-timing']), /^call;dur=[\d.]+, reset;dur=[\d.]+$/);
    assert.equal(await res.body.text(), 'method=POST x-test=from-client body=posted data\n');
    await new Promise((r) => setTimeout(r, 50));
    assert.match(dev.stderr(), /\| served a request\nPOST \/items\?id=7 201/);
  });

  test('serves a CGI program: CGI variables, stdin body and its Status and headers', async () => {
    const dev = await startDev(['--cgi', buildGuest('cgi_env')]);
    children.push(dev.child);
    const res = await request(`${dev.url}/x/y?a=b`, { method: 'POST', headers: { 'x-test': 'cgi', 'content-type': 'application/json', 'user-agent': 'ua/1' }, body: '{"k":1}' });
    assert.equal(res.statusCode, 202);
    assert.equal(res.headers['x-cgi-method'], 'POST');
    const body = await res.body.text();
    for (const line of ['REQUEST_METHOD=POST', 'QUERY_STRING=a=b', 'PATH_INFO=/x/y', 'CONTENT_TYPE=application/json', 'CONTENT_LENGTH=7', 'HTTP_X_TEST=cgi', 'HTTP_USER_AGENT=ua/1', 'body={"k":1}']) {
      assert.ok(body.split('\n').includes(line), `missing ${line} in:\n${body}`);
    }
  });

  test('a guest fault answers 502 and a timeout 504 with the class only, the details on stderr, and the next request is served', async () => {
    const dev = await startDev(['--timeout', '200', buildGuest('sdk_misbehave')]);
    children.push(dev.child);
    const crash = await request(`${dev.url}/crash`);
    assert.equal(crash.statusCode, 502);
    assert.equal(await crash.body.text(), 'program fault\n');
    const loop = await request(`${dev.url}/loop`);
    assert.equal(loop.statusCode, 504);
    assert.equal(await loop.body.text(), 'program timed out\n');
    const ok = await request(`${dev.url}/`);
    assert.equal(ok.statusCode, 200);
    assert.equal(await ok.body.text(), 'ok served=0\n');
    assert.match(dev.stderr(), /^GET \/crash 502 fault: page fault at 0x0 \(rip 0x[0-9a-f]+ in \w+/m);
    assert.match(dev.stderr(), /^GET \/loop 504 timeout: .*200 ms time limit/m);
  });

  test('--lifecycle persistent keeps the program\'s state between requests, up to --reset-after-requests; --warmup runs before the snapshot', async () => {
    const dev = await startDev(['--lifecycle', 'persistent', '--reset-after-requests', '3', '--warmup', '2', buildGuest('sdk_persistent')]);
    children.push(dev.child);
    const counts: string[] = [];
    for (let i = 0; i < 5; i++) counts.push(/count=\d+ warm=\d+/.exec(await (await request(`${dev.url}/`)).body.text())?.[0] ?? '?');
    // Two warm-up requests before the snapshot: every reset goes back to count=2.
    assert.deepEqual(counts, ['count=3 warm=2', 'count=4 warm=2', 'count=5 warm=2', 'count=3 warm=2', 'count=4 warm=2']);
  });

  test("a program's connection fields and framing stop at dev; a request body over the limit answers 413", async () => {
    const dev = await startDev([buildGuest('sdk_hop_by_hop')]);
    children.push(dev.child);
    const res = await request(`${dev.url}/`);
    assert.equal(res.headers['x-public'], 'yes');
    for (const name of ['x-private', 'upgrade', 'proxy-authenticate']) assert.equal(res.headers[name], undefined, name);
    assert.notEqual(res.headers['keep-alive'], 'timeout=99');
    assert.equal(res.headers['content-length'], '4');
    assert.equal(await res.body.text(), 'hop\n');
    // Over the program's default request limit (1 MiB): answered, not cut off mid-upload.
    const big = await request(`${dev.url}/`, { method: 'POST', body: 'x'.repeat(1_100_000) });
    assert.equal(big.statusCode, 413);
    assert.equal(await big.body.text(), 'request too large for the program\n');
  });

  test('a program that is not a static executable is refused at start with exit status 125', async () => {
    const child = spawn(process.execPath, [BIN, 'dev', '--port', '0', join(ROOT, 'package.json')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise((r) => child.on('exit', r));
    assert.equal(code, 125);
    assert.match(err, /^tinyedge: not an ELF executable\n$/);
  });
});
