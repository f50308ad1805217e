// VM worker threads: programs load on every worker, requests run off the HTTP thread with host
// calls answered on it, a full queue is refused, and an unloaded program finishes what it started.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { HostCalls } from '../../src/sandbox/program.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { QueueFullError, VmWorkers } from '../../src/server/vm-pool.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });

describe('VM workers', needsKvm(), () => {
  let pool: VmWorkers;
  const store = new Map<string, Uint8Array>();
  const host: HostCalls = {
    fetch: async () => ({ status: 200, headers: [['content-type', 'text/plain']], body: Buffer.from('from origin') }),
    kvGet: (k) => store.get(k),
    kvSet: (k, v) => (store.set(k, v), true),
    kvDelete: (k) => store.delete(k),
  };

  before(async () => {
    pool = await VmWorkers.start(2);
  });
  after(async () => {
    await pool.close();
  });

  test('a program loads on every worker and answers requests with host calls served by this thread', async () => {
    const loaded = await pool.load('t/hostcalls@1', readFileSync(buildGuest('sdk_hostcalls')), { mode: 'sdk', name: 'hostcalls', concurrency: 4, queueTimeoutMs: 1000, timeoutMs: 1000 });
    assert.ok(loaded.timing.initUs > 0);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => pool.call('t/hostcalls@1', get(i % 2 ? '/fetch' : '/kv/incr'), { host })));
    assert.equal(results.filter((r) => r.body.toString() === 'status=200 len=11 body=from origin\n').length, 10);
    assert.equal(Buffer.from(store.get('counter')!).toString().length > 0, true);
  });

  test('a request waits for a free instance up to the queue timeout, then is refused', async () => {
    await pool.load('t/slow@1', readFileSync(buildGuest('sdk_misbehave')), { mode: 'sdk', name: 'slow', concurrency: 1, queueTimeoutMs: 50, timeoutMs: 300 });
    const first = pool.call('t/slow@1', get('/loop'));
    await assert.rejects(pool.call('t/slow@1', get('/')), (err: unknown) => err instanceof QueueFullError && /all instances of program t\/slow@1 are busy/.test(err.message));
    await assert.rejects(first, (err: unknown) => err instanceof SandboxError && err.kind === 'timeout');
    assert.equal((await pool.call('t/slow@1', get('/'))).body.toString(), 'ok served=0\n');
  });

  test('an unloaded program finishes its in-flight requests and accepts no new ones', async () => {
    await pool.load('t/old@1', readFileSync(buildGuest('sdk_hostcalls')), { mode: 'sdk', name: 'old', concurrency: 2, queueTimeoutMs: 100, timeoutMs: 1000 });
    const slowHost: HostCalls = { fetch: () => new Promise((r) => setTimeout(() => r({ status: 200, headers: [], body: Buffer.from('late') }), 100)) };
    const inflight = pool.call('t/old@1', get('/fetch'), { host: slowHost });
    await new Promise((r) => setTimeout(r, 20));
    pool.unload('t/old@1');
    assert.equal((await inflight).body.toString(), 'status=200 len=4 body=late\n');
    await assert.rejects(pool.call('t/old@1', get('/')), /not loaded/);
  });

  test('a program that fails to load on the workers is refused with its reason', async () => {
    await assert.rejects(pool.load('t/bad@1', readFileSync(buildGuest('hello')), { mode: 'sdk', name: 'bad', concurrency: 1, queueTimeoutMs: 10 }), /before calling wait_for_requests/);
    assert.equal(pool.has('t/bad@1'), false);
  });
});
