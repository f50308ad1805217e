// The program pool: programs load on a loader thread and are adopted by this thread, requests run
// on this thread a slice at a time with their host calls, a full queue is refused, an unloaded
// program finishes what it started, and a slow or failing load holds nothing but its loader.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { HostCalls } from '../../src/sandbox/instance.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { ProgramPool, QueueFullError } from '../../src/sandbox/program-pool.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });

/** This process's open descriptors whose target matches `pattern` (fds are shared by all threads). */
function openFds(pattern: RegExp): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (pattern.test(readlinkSync(`/proc/self/fd/${fd}`))) n++;
    } catch {
      // Closed between the listing and the readlink.
    }
  }
  return n;
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `read` until it returns `want` or a few seconds pass (threads close fds asynchronously); returns the last value. */
async function settlesAt(read: () => number, want: number): Promise<number> {
  let got = read();
  for (let i = 0; i < 100 && got !== want; i++) {
    await pause(50);
    got = read();
  }
  return got;
}

/** `read`'s value once it has not changed for a while. */
async function steady(read: () => number): Promise<number> {
  let got = read();
  for (let same = 0, i = 0; same < 4 && i < 100; i++) {
    await pause(50);
    const now = read();
    same = now === got ? same + 1 : 0;
    got = now;
  }
  return got;
}

const SNAPSHOT_FD = /^\/memfd:tinyedge-snapshot/;
const VM_FD = /^anon_inode:kvm-vm$/;
const KVM_FD = /^\/dev\/kvm$/;

describe('the program pool', needsKvm(), () => {
  let pool: ProgramPool;
  const store = new Map<string, Uint8Array>();
  const host: HostCalls = {
    fetch: async () => ({ status: 200, headers: [['content-type', 'text/plain']], body: Buffer.from('from origin') }),
    kvGet: (k) => store.get(k),
    kvSet: (k, v) => (store.set(k, v), true),
    kvDelete: (k) => store.delete(k),
  };

  before(async () => {
    pool = await ProgramPool.start();
  });
  after(async () => {
    await pool.close();
  });

  test('a program loads and answers requests on this thread, with host calls', async () => {
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

  test('waits that began at different times each end after their own queue timeout, in order', async () => {
    await pool.load('t/slow@2', readFileSync(buildGuest('sdk_misbehave')), { mode: 'sdk', name: 'slow', concurrency: 1, queueTimeoutMs: 150, timeoutMs: 2000 });
    const first = pool.call('t/slow@2', get('/loop'));
    const ended: string[] = [];
    const wait = (name: string): Promise<number> => {
      const began = Date.now();
      return pool.call('t/slow@2', get('/')).then(
        () => assert.fail(`${name} got an instance`),
        (err: unknown) => {
          assert.ok(err instanceof QueueFullError, String(err));
          ended.push(name);
          return Date.now() - began;
        },
      );
    };
    const a = wait('a');
    await new Promise((r) => setTimeout(r, 60));
    const b = wait('b');
    const c = wait('c');
    const waited = await Promise.all([a, b, c]);
    assert.deepEqual(ended, ['a', 'b', 'c']);
    // Never before its own timeout (the one timer of the queue was armed for the oldest wait).
    for (const ms of waited) assert.ok(ms >= 150 - 1, `refused after ${ms} ms`);
    await assert.rejects(first, (err: unknown) => err instanceof SandboxError && err.kind === 'timeout');
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

  test('a program that fails to load is refused with its reason', async () => {
    await assert.rejects(pool.load('t/bad@1', readFileSync(buildGuest('hello')), { mode: 'sdk', name: 'bad', concurrency: 1, queueTimeoutMs: 10 }), /before calling wait_for_requests/);
    assert.equal(pool.has('t/bad@1'), false);
  });

  test('a file that is not a static executable is refused as the program\'s failure, not an internal one', async () => {
    await assert.rejects(pool.load('t/text@1', Buffer.from('#!/bin/sh\necho hi\n'), { mode: 'sdk', name: 'text', concurrency: 1, queueTimeoutMs: 10 }),
      (err: unknown) => err instanceof SandboxError && err.kind === 'program' && /ELF/i.test(err.message));
  });

  test('a load that fails at init or at its warm-up changes nothing, and leaves no VM or snapshot behind', async () => {
    await pool.load('t/kept@1', readFileSync(buildGuest('sdk_misbehave')), { mode: 'sdk', name: 'kept', concurrency: 4, queueTimeoutMs: 1000 });
    const snapshots = await steady(() => openFds(SNAPSHOT_FD));
    const vms = await steady(() => openFds(VM_FD));
    await assert.rejects(pool.load('t/kept@2', readFileSync(buildGuest('hello')), { mode: 'sdk', name: 'kept', concurrency: 4, queueTimeoutMs: 1000 }), /before calling wait_for_requests/);
    const warmup = { req: get('/crash') };
    await assert.rejects(pool.load('t/kept@3', readFileSync(buildGuest('sdk_misbehave')), { mode: 'sdk', name: 'kept', concurrency: 4, queueTimeoutMs: 1000 }, warmup), (err: unknown) => err instanceof SandboxError && err.kind === 'fault');
    assert.equal(pool.has('t/kept@2'), false);
    assert.equal(pool.has('t/kept@3'), false);
    assert.equal(await settlesAt(() => openFds(SNAPSHOT_FD), snapshots), snapshots);
    assert.equal(await settlesAt(() => openFds(VM_FD), vms), vms);
    // As many requests as instances, at once: every instance answers.
    const results = await Promise.all(Array.from({ length: 4 }, (_, i) => pool.call('t/kept@1', get(`/${i}`))));
    assert.deepEqual(results.map((r) => r.body.toString()), Array(4).fill('ok served=0\n'));
  });

  test('this thread holds its own descriptor of an adopted snapshot; the loader keeps none', async () => {
    const before = await steady(() => openFds(SNAPSHOT_FD));
    await pool.load('t/fds@1', readFileSync(buildGuest('sdk_misbehave')), { mode: 'sdk', name: 'fds', concurrency: 2, queueTimeoutMs: 1000 });
    assert.equal(await settlesAt(() => openFds(SNAPSHOT_FD), before + 1), before + 1);
    await Promise.all([pool.call('t/fds@1', get('/a')), pool.call('t/fds@1', get('/b'))]);
    pool.unload('t/fds@1');
    assert.equal(await settlesAt(() => openFds(SNAPSHOT_FD), before), before);
  });

  test('the warm-up runs on the loader with host calls answered by this thread', async () => {
    let fetched = 0;
    const warmHost: HostCalls = { fetch: async () => (fetched++, { status: 200, headers: [], body: Buffer.from('warm') }) };
    await pool.load('t/warm@1', readFileSync(buildGuest('sdk_hostcalls')), { mode: 'sdk', name: 'warm', concurrency: 2, queueTimeoutMs: 1000 }, { req: get('/fetch'), host: warmHost });
    assert.equal(fetched, 1);
    assert.equal((await pool.call('t/warm@1', get('/fetch'), { host })).body.toString(), 'status=200 len=11 body=from origin\n');
  });

  test('a slow start-up holds only its loader: loaded programs answer and other loads finish meanwhile', async (t) => {
    await pool.load('t/busy@1', readFileSync(buildGuest('sdk_misbehave')), { mode: 'sdk', name: 'busy', concurrency: 2, queueTimeoutMs: 1000 });
    const kvmFds = await steady(() => openFds(KVM_FD));
    const slowSeconds = 8;
    let slowDone = false;
    const slow = pool.load('t/slowinit@1', readFileSync(buildGuest('sdk_slow_init')), { mode: 'sdk', name: 'slowinit', env: [`SLOW_INIT_SECONDS=${slowSeconds}`], initTimeoutMs: 60_000, concurrency: 2, queueTimeoutMs: 1000 }).finally(() => (slowDone = true));
    await pause(500);
    const took: number[] = [];
    for (let i = 0; i < 4; i++) {
      const t0 = performance.now();
      assert.equal((await pool.call('t/busy@1', get(`/during/${i}`))).body.toString(), 'ok served=0\n');
      took.push(Math.round(performance.now() - t0));
    }
    t.diagnostic(`request times (ms): ${took.join(', ')}`);
    // Generous for a loaded 2-core machine; the start-up would have held them for seconds.
    assert.ok(took.every((ms) => ms < 2000), `request times (ms): ${took.join(', ')}`);
    await pool.load('t/other@1', readFileSync(buildGuest('sdk_headers')), { mode: 'sdk', name: 'other', concurrency: 2, queueTimeoutMs: 1000 }, { req: get('/') });
    assert.equal((await pool.call('t/other@1', get('/'))).status, 201);
    assert.equal(slowDone, false, 'the slow load was still in its start-up meanwhile');
    await slow;
    assert.equal((await pool.call('t/slowinit@1', get('/'))).body.toString(), 'ready\n');
    // The second loader, started for the overlapping load, has ended and closed its /dev/kvm.
    assert.equal(await settlesAt(() => openFds(KVM_FD), kvmFds), kvmFds);
  });

  test('a long call gives the thread back between slices: another call starts and ends while it runs', async () => {
    await pool.load('t/spin@1', readFileSync(buildGuest('sdk_misbehave')), { mode: 'sdk', name: 'spin', concurrency: 2, queueTimeoutMs: 1000, timeoutMs: 5000 });
    const order: string[] = [];
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 1);
    // Never ends: only its time limit stops it, and only if the thread keeps turning meanwhile
    // can the other call run; held for the whole call, the other call would begin after it.
    const looping = pool.call('t/spin@1', get('/loop')).then(() => order.push('loop answered'), (err: unknown) => order.push(err instanceof SandboxError ? `loop ${err.kind}` : 'loop failed'));
    await pause(0);
    const other = await pool.call('t/spin@1', get('/quick'));
    order.push('other answered');
    const ticksDuring = ticks;
    await looping;
    clearInterval(ticker);
    assert.equal(other.body.toString(), 'ok served=0\n');
    assert.deepEqual(order, ['other answered', 'loop timeout']);
    assert.ok(ticksDuring > 0, 'timers ran while the loop was on the vCPU');
  });

  test('a call that burns CPU finishes across many slices with its answer intact', async () => {
    const r = await pool.call('t/spin@1', get('/burn?ms=30'));
    assert.equal(r.body.toString(), 'burnt\n');
  });

  test('the answer comes back before the reset; the next request still sees a fresh instance', async () => {
    await pool.load('t/fresh@1', readFileSync(buildGuest('sdk_misbehave')), { mode: 'sdk', name: 'fresh', concurrency: 1, queueTimeoutMs: 1000 });
    for (let i = 0; i < 3; i++) {
      const r = await pool.call('t/fresh@1', get(`/n${i}`));
      assert.equal(r.body.toString(), 'ok served=0\n');
      assert.equal(r.timing.resetUs, undefined, 'reset after the answer was handed back');
    }
    // Back to back with one instance: the second waits for the first one's reset.
    const both = await Promise.all([pool.call('t/fresh@1', get('/a')), pool.call('t/fresh@1', get('/b'))]);
    assert.deepEqual(both.map((r) => r.body.toString()), ['ok served=0\n', 'ok served=0\n']);
  });
});
