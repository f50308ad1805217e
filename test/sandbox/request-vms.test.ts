// Request VMs in-process: isolation between requests, fresh entropy, recovery after failures,
// and the limits on responses. Real KVM, real guest programs built with gcc -static.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type LocalProgramOptions, type Program } from '../../src/sandbox/program.ts';
import { type Instance } from '../../src/sandbox/instance.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { guestPrograms } from '../helpers/programs.ts';

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });
const text = (inst: Instance, url: string): string => inst.handle(get(url)).body.toString();

describe('request VMs', needsKvm(), () => {
  const programs = guestPrograms();
  const load = (name: string, options: Partial<LocalProgramOptions> = {}): Program => programs.load(buildGuest(name), { mode: 'sdk', name, ...options });

  test('a request never sees globals, heap, stack, thread-locals or vector registers written by an earlier one', () => {
    const inst = load('sdk_isolation').instance();
    for (let i = 0; i < 5; i++) {
      assert.equal(text(inst, `/${i}`), 'global=0 data=pristine heap=clean tls=0 stack=clean ymm=clean\n');
    }
    inst.close();
  });

  test('a second instance made from the snapshot starts from the same frozen state', () => {
    const p = load('sdk_isolation');
    const first = p.instance();
    text(first, '/');
    const second = p.instance();
    assert.equal(text(second, '/'), 'global=0 data=pristine heap=clean tls=0 stack=clean ymm=clean\n');
    assert.equal(text(first, '/'), 'global=0 data=pristine heap=clean tls=0 stack=clean ymm=clean\n');
    first.close();
    second.close();
  });

  test('two requests never get the same random bytes, from getrandom, rand() or the request', () => {
    const p = load('sdk_random');
    const a = p.instance();
    const b = p.instance();
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) {
      for (const inst of [a, b]) {
        const line = text(inst, '/');
        const m = /^getrandom=([0-9a-f]{32}) rand=(\d+) request=([0-9a-f]{64})\n$/.exec(line);
        assert.ok(m, line);
        for (const part of m.slice(1)) {
          assert.ok(!seen.has(part), `repeated random value ${part}`);
          seen.add(part);
        }
      }
    }
    a.close();
    b.close();
  });

  test('after a crash, a timeout, memory exhaustion or an exit the next request is served normally', () => {
    const inst = load('sdk_misbehave', { timeoutMs: 300, memoryMiB: 32 }).instance();
    // Filling 32 MiB page by page takes a few hundred ms of exits on a loaded machine with nested
    // KVM: that request gets an instance whose time limit it cannot reach first.
    const patient = load('sdk_misbehave', { timeoutMs: 60_000, memoryMiB: 32 }).instance();
    const failures: Array<[string, string, RegExp]> = [
      ['/crash', 'fault', /page fault at 0x0 .*NULL pointer dereference/],
      ['/loop', 'timeout', /300 ms time limit/],
      ['/oom', 'out-of-memory', /out of guest memory \(32 MiB\)/],
      ['/exit', 'fault', /exited with status 3 during a request/],
      ['/noresponse', 'bad-response', /without responding/],
      ['/badheader', 'bad-response', /invalid response header name "Bad Header"/],
    ];
    for (const [url, kind, message] of failures) {
      const vm = url === '/oom' ? patient : inst;
      assert.throws(() => vm.handle(get(url)), (err: unknown) => err instanceof SandboxError && err.kind === kind && message.test(err.message), url);
      assert.equal(text(vm, '/'), 'ok served=0\n', `after ${url}`);
    }
    inst.close();
    patient.close();
  });

  test('a response larger than the limit is an error, not a truncated success', () => {
    const inst = load('sdk_misbehave', { maxResponseBytes: 1024 * 1024 }).instance();
    assert.throws(() => inst.handle(get('/big')), (err: unknown) => err instanceof SandboxError && err.kind === 'bad-response' && /exceeds the limit of 1048576/.test(err.message));
    assert.equal(text(inst, '/'), 'ok served=0\n');
    inst.close();
  });

  test('the wall clock inside a request is the current time, not the snapshot time', async () => {
    const inst = load('sdk_misbehave').instance();
    const first = Number(text(inst, '/clock'));
    assert.ok(Math.abs(first - Date.now()) < 1000, `guest clock ${first} vs host ${Date.now()}`);
    await new Promise((r) => setTimeout(r, 250));
    const second = Number(text(inst, '/clock'));
    assert.ok(second - first >= 240, `clock advanced ${second - first} ms`);
    inst.close();
  });

  test('response headers, status, cache policy, tags and logs come back from the program', () => {
    const inst = load('sdk_headers').instance();
    const r = inst.handle({ method: 'POST', url: '/p?q=1', headers: [['X-Test', 'abc']], body: Buffer.from('payload') });
    assert.equal(r.status, 201);
    assert.deepEqual(r.headers, [['Content-Type', 'text/plain; charset=utf-8'], ['X-Echo-Test', 'abc'], ['X-Program', 'sdk_headers']]);
    assert.equal(r.body.toString(), 'method=POST x-test=abc body=payload\n');
    assert.deepEqual(r.cache, { ttl: 30, grace: 5, keep: 60, tags: ['product-1', 'catalog'], uncacheable: false });
    assert.deepEqual(r.logs, ['served a request']);
    inst.close();
  });

  test('a program that exits before wait_for_requests() fails to load with a clear error', () => {
    assert.throws(() => load('hello'), (err: unknown) => err instanceof SandboxError && err.kind === 'program' && /exited with status 0 before calling wait_for_requests\(\)/.test(err.message));
  });

  test('a request larger than the program allows is refused before it enters the VM', () => {
    const inst = load('sdk_headers', { maxRequestBytes: 4096 }).instance();
    assert.throws(() => inst.handle({ method: 'POST', url: '/', headers: [], body: Buffer.alloc(10_000) }), (err: unknown) => err instanceof SandboxError && /exceeds the program's limit/.test(err.message));
    assert.equal(inst.handle(get('/')).status, 201);
    inst.close();
  });

  test('CGI mode runs any static program per request with the body on stdin', () => {
    const p = programs.load(buildGuest('cgi_env'), { mode: 'cgi', name: 'cgi_env' });
    const inst = p.instance();
    for (let i = 0; i < 2; i++) {
      const r = inst.handle({ method: 'PUT', url: '/a/b?x=1&y=2', headers: [['X-Test', 'v'], ['Content-Type', 'text/plain'], ['User-Agent', 'ua']], body: Buffer.from('the body') });
      assert.equal(r.status, 202);
      assert.deepEqual(r.headers, [['Content-Type', 'text/plain'], ['X-Cgi-Method', 'PUT']]);
      assert.equal(r.body.toString(), [
        'REQUEST_METHOD=PUT', 'QUERY_STRING=x=1&y=2', 'PATH_INFO=/a/b', 'SCRIPT_NAME=/cgi_env', 'CONTENT_TYPE=text/plain',
        'CONTENT_LENGTH=8', 'SERVER_PROTOCOL=HTTP/1.1', 'GATEWAY_INTERFACE=CGI/1.1', 'HTTP_X_TEST=v', 'HTTP_USER_AGENT=ua', 'body=the body', '',
      ].join('\n'));
    }
    inst.close();
  });
  test('response header values with control characters or DEL are a bad response; UTF-8 bytes go out as sent', () => {
    const inst = load('sdk_header_bytes').instance();
    for (const path of ['/ctl', '/del']) {
      assert.throws(() => inst.handle(get(path)), (err: unknown) => err instanceof SandboxError && err.kind === 'bad-response', path);
    }
    const utf8 = inst.handle(get('/utf8'));
    const value = utf8.headers.find(([n]) => n === 'X-Odd')?.[1];
    assert.deepEqual(Buffer.from(value ?? '', 'latin1'), Buffer.from('€'));
    assert.equal(text(inst, '/'), 'fine\n');
    inst.close();
  });
  test('request strings go in as bytes: up to U+00FF one byte each, a string with wider characters as UTF-8', () => {
    const inst = load('sdk_raw').instance();
    const seen = (headers: Array<[string, string]>, url = '/list'): Buffer => inst.handle({ method: 'GET', url, headers, body: new Uint8Array(0) }).body;
    // All narrow: each character one byte, é as 0xE9 (as Node's parser hands over the byte it got).
    assert.deepEqual(seen([['Host', 'test'], ['X-A', 'caf\u00e9']]), Buffer.from('GET /list\nHost: test\nX-A: caf\xe9\n', 'latin1'));
    // One wide string: it goes in as UTF-8, and only it; the narrow one beside it stays one byte a character.
    assert.deepEqual(seen([['Host', 'test'], ['X-A', 'caf\u00e9'], ['X-B', '\u20ac1']]),
      Buffer.concat([Buffer.from('GET /list\nHost: test\nX-A: caf\xe9\nX-B: ', 'latin1'), Buffer.from('\u20ac1\n', 'utf8')]));
    // A wide URL: its UTF-8 length is what the program is told.
    assert.deepEqual(seen([['Host', 'test']], '/\u20ac'), Buffer.concat([Buffer.from('GET /'), Buffer.from('\u20ac', 'utf8'), Buffer.from('\nHost: test\n')]));
    inst.close();
  });
});
