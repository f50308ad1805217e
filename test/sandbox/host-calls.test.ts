// Host calls and hook phases through the async call path: sub-requests, the key-value store,
// recv decisions and deliver headers, with the host side provided by the test.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Kvm } from '../../src/kvm/kvm.ts';
import { Program } from '../../src/sandbox/program.ts';
import { type HostCalls, type Instance } from '../../src/sandbox/instance.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });

describe('host calls and hooks', needsKvm(), () => {
  let kvm: Kvm;
  let program: Program;
  let inst: Instance;
  const store = new Map<string, Uint8Array>();
  const fetches: string[] = [];
  const host: HostCalls = {
    async fetch(call) {
      fetches.push(`${call.method} ${call.origin || 'default'} ${call.url}`);
      await new Promise((r) => setTimeout(r, 5));
      return { status: 200, headers: [['content-type', 'text/plain']], body: Buffer.from('origin data') };
    },
    kvGet: (key) => store.get(key),
    kvSet: (key, value) => {
      if (value.length > 1024) return false;
      store.set(key, value);
      return true;
    },
    kvDelete: (key) => store.delete(key),
  };

  before(() => {
    kvm = new Kvm();
    program = new Program(kvm, readFileSync(buildGuest('sdk_hostcalls')), { mode: 'sdk', name: 'sdk_hostcalls', timeoutMs: 500 });
    inst = program.instance();
  });
  after(() => {
    inst.close();
    program.close();
    kvm.close();
  });

  test('a program fetches from its origin during a request and gets status and body', async () => {
    const r = await inst.call(get('/fetch'), { host });
    assert.equal(r.body.toString(), 'status=200 len=11 body=origin data\n');
    assert.deepEqual(fetches, ['GET default /data?from=guest']);
  });

  test('the key-value store survives resets and requests, and refuses values over the quota', async () => {
    store.clear();
    assert.equal((await inst.call(get('/kv/incr'), { host })).body.toString(), 'counter=1 stored=0\n');
    assert.equal((await inst.call(get('/kv/incr'), { host })).body.toString(), 'counter=2 stored=0\n');
    assert.equal(Buffer.from(store.get('counter')!).toString(), '2');
    // te_kv_set returns the host's -ENOSPC as it is.
    assert.equal((await inst.call(get('/kv/big'), { host })).body.toString(), 'stored=-28\n');
    assert.equal((await inst.call(get('/kv/del'), { host })).body.toString(), 'deleted=0\n');
    assert.equal((await inst.call(get('/kv/incr'), { host })).body.toString(), 'counter=1 stored=0\n');
  });

  test('without host services the calls fail inside the guest, not in the host', () => {
    const r = inst.handle(get('/fetch'));
    assert.match(r.body.toString(), /^status=-38 /);
  });

  test('a host call that outlives the time limit ends the request with a timeout', async () => {
    const slow: HostCalls = { fetch: () => new Promise((r) => setTimeout(() => r({ status: 200, headers: [], body: Buffer.from('late') }), 2000)) };
    await assert.rejects(inst.call(get('/fetch'), { host: slow }), (err: unknown) => err instanceof SandboxError && err.kind === 'timeout');
    assert.equal((await inst.call(get('/other'), { host })).body.toString(), 'generated /other\n');
  });

  test('a recv hook can pass, rewrite with a header, or answer synthetically', async () => {
    assert.deepEqual((await inst.call(get('/pass/x'), { phase: 'recv' })).recv, { action: 'pass', url: undefined, setHeaders: [] });
    assert.deepEqual((await inst.call(get('/old/a?b=1'), { phase: 'recv' })).recv, { action: 'lookup', url: '/new/a?b=1', setHeaders: [['X-Recv', 'seen']] });
    const synth = await inst.call(get('/blocked'), { phase: 'recv' });
    assert.equal(synth.recv?.action, 'synth');
    assert.equal(synth.status, 403);
    assert.equal(synth.body.toString(), 'blocked by recv\n');
  });

  test('a deliver hook sees the response status and sets headers on it', async () => {
    const r = await inst.call(get('/page'), { phase: 'deliver', response: { status: 404, headers: [['content-type', 'text/html']] } });
    assert.deepEqual(r.headers, [['X-Delivered', 'status-404']]);
  });
});

describe('bogus pointers in hypercalls', needsKvm(), () => {
  let kvm: Kvm;
  let program: Program;
  let inst: Instance;
  const host: HostCalls = {
    fetch: async () => ({ status: 200, headers: [], body: Buffer.from('x') }),
    kvGet: () => undefined,
    kvSet: () => true,
    kvDelete: () => true,
  };

  before(() => {
    kvm = new Kvm();
    program = new Program(kvm, readFileSync(buildGuest('sdk_bogus')), { mode: 'sdk', name: 'sdk_bogus' });
    inst = program.instance();
  });
  after(() => {
    inst.close();
    program.close();
    kvm.close();
  });

  test('host calls with pointers outside guest memory fail inside the guest with EFAULT', async () => {
    // A log line longer than 4 KiB is cut to its first 4 KiB (which are checked): that call succeeds.
    assert.equal((await inst.call(get('/log'), { host })).body.toString(), 'log=-14,0\n');
    assert.equal((await inst.call(get('/fetch'), { host })).body.toString(), 'fetch=-14,-14\n');
    assert.equal((await inst.call(get('/kv'), { host })).body.toString(), 'kv=-14,-14,-14,-14\n');
  });

  test('a response pointing outside guest memory is an error, and the instance keeps serving', async () => {
    for (const [url, message] of [
      ['/body', /response points outside the program's memory \(0xdead0000\)/],
      ['/headers', /response points outside the program's memory/],
      ['/hugelen', /response body of \d+ bytes exceeds the limit/],
      ['/wait', /program answered a batch it was not given \(WAIT with 0xdead0000\)/],
    ] as const) {
      await assert.rejects(inst.call(get(url), { host }), (err: unknown) => err instanceof SandboxError && err.kind === 'bad-response' && message.test(err.message), url);
      assert.equal((await inst.call(get('/'), { host })).body.toString(), 'fine\n');
    }
  });
});
