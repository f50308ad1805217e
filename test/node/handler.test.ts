// tinyedge/node's node:http handler: a real http.Server whose requests are answered by programs in
// real VMs on a shared VM worker pool. The program's answer comes through with its own headers, the
// request reaches it without hop-by-hop fields, every failure reaches the client as its class only
// (the details go to the logger), bodies are bounded, and a closed handler leaves the pool alone.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { buildExample } from '../../guest/build.ts';
import { createHandler, type AdapterLogger, type ProgramHandler } from '../../src/node/index.ts';
import { clientFailure } from '../../src/http/failure.ts';
import { ProgramPool, SandboxError } from '../../src/sandbox/index.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { exchange } from '../helpers/raw-http.ts';

interface Logged {
  level: 'info' | 'warn';
  details: Record<string, unknown>;
  message: string;
}

/** A logger that keeps what it is told. */
function recorder(): AdapterLogger & { records: Logged[] } {
  const records: Logged[] = [];
  return {
    records,
    info: (details, message) => void records.push({ level: 'info', details, message }),
    warn: (details, message) => void records.push({ level: 'warn', details, message }),
  };
}

async function listen(handler: RequestListener): Promise<{ server: Server; url: string; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, port };
}

interface Echo {
  method: string;
  url: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  requests_since_boot: number;
}

describe('the node:http handler', needsKvm(), () => {
  let pool: ProgramPool;
  let echo: ProgramHandler;
  let misbehave: ProgramHandler;
  const log = recorder();
  let echoAt: { server: Server; url: string; port: number };
  let misbehaveAt: { server: Server; url: string; port: number };

  before(async () => {
    pool = await ProgramPool.start();
    echo = await createHandler({ program: buildExample('echo'), pool });
    misbehave = await createHandler({ program: buildGuest('sdk_misbehave'), pool, timeoutMs: 300, concurrency: 1, queueTimeoutMs: 50, maxRequestBytes: 4096, logger: log });
    echoAt = await listen(echo);
    misbehaveAt = await listen(misbehave);
  });
  after(async () => {
    for (const at of [echoAt, misbehaveAt]) await new Promise((resolve) => at.server.close(resolve));
    await Promise.all([echo.close(), misbehave.close()]);
    await pool.close();
  });

  test('answers with the program response and its headers, from a fresh instance every time', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await request(`${echoAt.url}/items?id=${i}`, { method: 'POST', headers: { 'x-test': 'yes', 'content-type': 'text/plain' }, body: 'the body' });
      const text = await r.body.text();
      assert.equal(r.statusCode, 200);
      assert.equal(r.headers['x-echo'], 'tinyedge');
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.headers['content-length'], String(Buffer.byteLength(text)));
      const got = JSON.parse(text) as Echo;
      assert.deepEqual([got.method, got.url, got.path, got.body, got.headers['x-test']], ['POST', `/items?id=${i}`, '/items', 'the body', 'yes']);
      assert.equal(got.requests_since_boot, 0);
    }
  });

  test('a persistent mount keeps its state between requests, from a warmed snapshot, up to its reset bound', async () => {
    const counter = await createHandler({ program: buildGuest('sdk_persistent'), pool, concurrency: 1, lifecycle: 'persistent', resetAfterRequests: 3, warmup: { requests: 2 } });
    const at = await listen(counter);
    try {
      const bodies: string[] = [];
      for (let i = 0; i < 4; i++) bodies.push(await (await fetch(`${at.url}/n`)).text());
      // The warm-up's two requests are in the snapshot; the instance goes back to it after three.
      assert.deepEqual(bodies.map((b) => /count=(\d+) warm=(\d+)/.exec(b)?.slice(1).join('/')), ['3/2', '4/2', '5/2', '3/2']);
    } finally {
      await new Promise((resolve) => at.server.close(resolve));
      await counter.close();
    }
  });

  test('a HEAD request gets the program headers and Content-Length, without the body', async () => {
    const r = await request(`${echoAt.url}/head`, { method: 'HEAD' });
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['x-echo'], 'tinyedge');
    assert.ok(Number(r.headers['content-length']) > 0);
    assert.equal(await r.body.text(), '');
  });

  test('hop-by-hop request fields, and the fields Connection names, never reach the program', async () => {
    const answer = await exchange(echoAt.port, 'GET /h HTTP/1.1\r\nHost: t\r\nConnection: close, x-secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Kept: k\r\n\r\n');
    const body = answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4);
    const headers = Object.keys((JSON.parse(body) as Echo).headers).map((h) => h.toLowerCase());
    assert.deepEqual(headers.sort(), ['host', 'x-kept']);
  });

  test('a request in absolute form reaches the program as a path, as every other request', async () => {
    const answer = await exchange(echoAt.port, 'GET http://elsewhere.test/abs?q=1 HTTP/1.1\r\nHost: elsewhere.test\r\nConnection: close\r\n\r\n');
    const got = JSON.parse(answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4)) as Echo;
    assert.deepEqual([got.url, got.path], ['/abs?q=1', '/abs']);
  });

  test('the program response reaches the client without its hop-by-hop fields, framed by the handler', async () => {
    const hop = await createHandler({ program: buildGuest('sdk_hop_by_hop'), pool });
    const at = await listen(hop);
    try {
      const r = await request(`${at.url}/`);
      assert.equal(await r.body.text(), 'hop\n');
      assert.equal(r.headers['x-public'], 'yes');
      assert.equal(r.headers['content-length'], '4');
      for (const name of ['x-private', 'upgrade', 'proxy-authenticate']) assert.equal(r.headers[name], undefined, name);
      assert.notEqual(r.headers['keep-alive'], 'timeout=99');
    } finally {
      await new Promise((resolve) => at.server.close(resolve));
      await hop.close();
    }
  });

  test('a program past its time limit gets the client a 504 with a fixed text, and the logger the reason', async () => {
    const r = await request(`${misbehaveAt.url}/loop`);
    assert.equal(r.statusCode, 504);
    assert.equal(await r.body.text(), 'program timed out\n');
    const warned = log.records.find((l) => l.level === 'warn' && l.details.url === '/loop');
    assert.match(warned?.message ?? '', /300 ms time limit/);
    assert.equal(warned?.details.status, 504);
  });

  test('a program fault gets the client a 502 that carries none of the guest text or addresses', async () => {
    const r = await request(`${misbehaveAt.url}/crash`);
    assert.equal(r.statusCode, 502);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(await r.body.text(), 'program fault\n');
    const warned = log.records.find((l) => l.level === 'warn' && l.details.url === '/crash');
    assert.match(warned?.message ?? '', /0x[0-9a-f]+/, 'the logger gets the fault with its addresses');
  });

  test('a response header the program made up gets the client a 502', async () => {
    const r = await request(`${misbehaveAt.url}/badheader`);
    assert.equal(r.statusCode, 502);
    assert.equal(await r.body.text(), 'program sent an invalid response\n');
  });

  test('a response header value HTTP/1.1 cannot carry gets the client a 502; UTF-8 bytes go out as sent', async () => {
    const odd = await createHandler({ program: buildGuest('sdk_header_bytes'), pool });
    const at = await listen(odd);
    try {
      for (const path of ['/ctl', '/del']) {
        const r = await request(`${at.url}${path}`);
        assert.equal(r.statusCode, 502, path);
        assert.equal(await r.body.text(), 'program sent an invalid response\n');
      }
      const utf8 = await request(`${at.url}/utf8`);
      assert.equal(utf8.statusCode, 200);
      assert.deepEqual(Buffer.from(String(utf8.headers['x-odd']), 'latin1'), Buffer.from('€'));
      await utf8.body.text();
      const fine = await request(`${at.url}/`);
      assert.equal(fine.headers['x-fine'], 'yes');
      assert.equal(await fine.body.text(), 'fine\n');
    } finally {
      await new Promise((resolve) => at.server.close(resolve));
      await odd.close();
    }
  });

  test('the instance that failed is reset: the next request is served normally', async () => {
    const r = await request(`${misbehaveAt.url}/ok`);
    assert.equal(r.statusCode, 200);
    assert.equal(await r.body.text(), 'ok served=0\n');
  });

  test('a body declared larger than the limit gets a 413, and its connection serves the next request', async () => {
    const big = 'x'.repeat(5000);
    const answer = await exchange(misbehaveAt.port, `POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: ${big.length}\r\n\r\n${big}GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
    assert.deepEqual(answer.statusLines, ['HTTP/1.1 413 Payload Too Large', 'HTTP/1.1 200 OK']);
    assert.match(answer.text, /\r\n\r\nrequest too large for the program\n/);
  });

  test('a chunked body that grows past the limit gets a 413, and its connection serves the next request', async () => {
    const chunk = `${(3000).toString(16)}\r\n${'x'.repeat(3000)}\r\n`;
    const answer = await exchange(misbehaveAt.port, `POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}${chunk}0\r\n\r\nGET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
    assert.deepEqual(answer.statusLines, ['HTTP/1.1 413 Payload Too Large', 'HTTP/1.1 200 OK']);
  });

  test('requests beyond the program concurrency wait for its queue timeout, then get a 503', async () => {
    // One instance, held for the 300 ms time limit by one of the two; the other waits 50 ms.
    const answers = await Promise.all([request(`${misbehaveAt.url}/loop`), request(`${misbehaveAt.url}/loop`)]);
    const seen = await Promise.all(answers.map(async (r) => `${r.statusCode} ${await r.body.text()}`));
    assert.deepEqual(seen.sort(), ['503 program busy\n', '504 program timed out\n']);
  });

  test('a closed handler answers as an internal failure while the shared pool goes on serving other programs', async () => {
    const other = await createHandler({ program: buildExample('hello'), pool });
    const at = await listen(other);
    try {
      await other.close();
      const closed = await request(`${at.url}/`);
      const internal = clientFailure(new SandboxError('internal', 'closed'));
      assert.equal(closed.statusCode, internal.status);
      assert.equal(await closed.body.text(), internal.body);
      const r = await request(`${echoAt.url}/still`);
      assert.equal(r.statusCode, 200);
      await r.body.text();
    } finally {
      await new Promise((resolve) => at.server.close(resolve));
    }
  });

  test('a program that is not a static x86-64 executable is refused when the handler is made', async () => {
    // Loaded on a worker thread, the refusal comes back as a SandboxError (a ProgramLoadError, which
    // names the stage) with the loader's reason.
    await assert.rejects(createHandler({ program: Buffer.from('#!/bin/sh\necho hi\n'), pool }), (err: unknown) => {
      assert.ok(err instanceof SandboxError);
      assert.match(err.message, /not an ELF executable/);
      return true;
    });
  });
});
