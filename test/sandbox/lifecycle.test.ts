// Program lifecycles: an ephemeral instance is reset after every request; a persistent one keeps
// its state from request to request and is reset after a fault, a timeout, N requests, a dirtied-
// memory bound, or when the program asks (te_reset_after()) — and never shares it with another
// program or version. The program under test counts its requests in a global.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Instance } from '../../src/sandbox/instance.ts';
import { ProgramPool } from '../../src/sandbox/program-pool.ts';
import type { ProgramOptions, SandboxRequest } from '../../src/sandbox/types.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { guestPrograms } from '../helpers/programs.ts';

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });
const count = (body: Buffer): number => Number(/count=(\d+)/.exec(body.toString())?.[1]);
const failsWith = (kind: string) => (err: unknown): boolean => err instanceof SandboxError && err.kind === kind;

describe('program lifecycles', needsKvm(), () => {
  const programs = guestPrograms();
  let elf: string;
  const instances: Instance[] = [];
  before(() => {
    elf = buildGuest('sdk_persistent');
  });
  after(() => {
    for (const i of instances) i.close();
  });
  /** A new instance of the counting program with `options`. */
  const instance = (options: Partial<ProgramOptions> = {}): Instance => {
    const i = programs.load(elf, { mode: 'sdk', name: 'sdk_persistent', timeoutMs: 300, ...options }).instance();
    instances.push(i);
    return i;
  };
  /** The counts `urls` get, one after another. */
  const counts = async (inst: Instance, urls: string[]): Promise<number[]> => {
    const out: number[] = [];
    for (const url of urls) out.push(count((await inst.call(get(url))).body));
    return out;
  };

  test('an ephemeral instance starts every request from the snapshot', async () => {
    const inst = instance();
    assert.deepEqual(await counts(inst, ['/', '/', '/']), [1, 1, 1]);
    assert.equal(count(inst.handle(get('/')).body), 1);
  });

  test('a persistent instance keeps its state from one request to the next', async () => {
    const inst = instance({ lifecycle: 'persistent' });
    assert.deepEqual(await counts(inst, ['/', '/', '/']), [1, 2, 3]);
    // The synchronous path and a deferred reset keep it too.
    assert.equal(count(inst.handle(get('/')).body), 4);
    assert.equal(count((await inst.call(get('/'), { reset: 'later' })).body), 5);
    assert.equal(inst.reset(), 0, 'no reset was due');
    assert.equal(count((await inst.call(get('/'))).body), 6);
  });

  test('a fault resets a persistent instance: the next request starts from the snapshot', async () => {
    const inst = instance({ lifecycle: 'persistent' });
    assert.deepEqual(await counts(inst, ['/', '/']), [1, 2]);
    await assert.rejects(inst.call(get('/fault')), failsWith('fault'));
    assert.deepEqual(await counts(inst, ['/', '/']), [1, 2]);
  });

  test('a timeout resets a persistent instance', async () => {
    const inst = instance({ lifecycle: 'persistent' });
    assert.deepEqual(await counts(inst, ['/', '/']), [1, 2]);
    await assert.rejects(inst.call(get('/spin')), failsWith('timeout'));
    assert.deepEqual(await counts(inst, ['/']), [1]);
  });

  test('resetAfterRequests resets after that many requests', async () => {
    const inst = instance({ lifecycle: 'persistent', resetAfterRequests: 3 });
    assert.deepEqual(await counts(inst, ['/', '/', '/', '/', '/', '/', '/']), [1, 2, 3, 1, 2, 3, 1]);
    // A fault starts the count again.
    await assert.rejects(inst.call(get('/fault')), failsWith('fault'));
    assert.deepEqual(await counts(inst, ['/', '/', '/', '/']), [1, 2, 3, 1]);
  });

  test('te_reset_after() resets after the response that asked, which is delivered', async () => {
    const inst = instance({ lifecycle: 'persistent' });
    assert.deepEqual(await counts(inst, ['/', '/reset', '/', '/']), [1, 2, 1, 2]);
    // Deferred: the reset waits for reset(), and happens there.
    assert.equal(count((await inst.call(get('/reset'), { reset: 'later' })).body), 3);
    assert.ok(inst.reset() > 0, 'the reset ran and restored pages');
    assert.deepEqual(await counts(inst, ['/']), [1]);
  });

  test('resetAboveDirtyBytes resets once the memory dirtied since the last reset exceeds it', async () => {
    const inst = instance({ lifecycle: 'persistent', resetAboveDirtyBytes: 1024 * 1024 });
    // Small requests stay well under 1 MiB of dirtied pages: the state stays.
    assert.deepEqual(await counts(inst, ['/', '/grow?kb=64', '/grow?kb=64', '/']), [1, 2, 3, 4]);
    // 2 MiB more crosses the bound: the instance is reset after that response.
    assert.deepEqual(await counts(inst, ['/grow?kb=2048', '/']), [5, 1]);
  });

  test('hostile uses of te_reset_after(): with a bad response, with every flag bit, in an ephemeral program', async () => {
    const inst = instance({ lifecycle: 'persistent' });
    assert.deepEqual(await counts(inst, ['/', '/']), [1, 2]);
    // Asking for a reset and then not responding: the request fails, and the instance is reset all the same.
    await assert.rejects(inst.call(get('/reset-bad')), failsWith('bad-response'));
    assert.deepEqual(await counts(inst, ['/', '/']), [1, 2]);
    // Every bit of te_response.flags set (unknown ones too): the response stands, and the reset bit counts.
    const all = await inst.call(get('/all-flags'));
    assert.equal(all.status, 200);
    assert.equal(all.cache.uncacheable, true);
    assert.deepEqual(await counts(inst, ['/']), [1]);
    // An ephemeral program is reset after every request: the flag changes nothing.
    const eph = instance();
    assert.deepEqual(await counts(eph, ['/reset', '/', '/all-flags', '/']), [1, 1, 1, 1]);
  });

  test('a persistent lifecycle needs an SDK program, and reset bounds must be bounds', () => {
    const load = (options: Partial<ProgramOptions>): unknown => programs.load(elf, { mode: 'sdk', name: 'x', ...options });
    assert.throws(() => load({ mode: 'cgi', lifecycle: 'persistent' }), /persistent lifecycle needs an SDK program/);
    assert.throws(() => load({ lifecycle: 'persistent', resetAfterRequests: 0 }), /resetAfterRequests must be a positive integer/);
    assert.throws(() => load({ lifecycle: 'persistent', resetAfterRequests: 1.5 }), /resetAfterRequests must be a positive integer/);
    assert.throws(() => load({ lifecycle: 'persistent', resetAboveDirtyBytes: -1 }), /resetAboveDirtyBytes must be a positive size/);
    assert.throws(() => load({ lifecycle: 'forever' as 'persistent' }), /unknown lifecycle forever/);
  });
});

describe('persistent programs in the pool', needsKvm(), () => {
  let pool: ProgramPool;
  let elf: Buffer;
  before(async () => {
    pool = await ProgramPool.start();
    elf = readFileSync(buildGuest('sdk_persistent'));
  });
  after(async () => {
    await pool.close();
  });

  test('state carries over between the requests of one program version, and never to another', async () => {
    const options = { mode: 'sdk' as const, name: 'sdk_persistent', lifecycle: 'persistent' as const, concurrency: 1, queueTimeoutMs: 1000 };
    await pool.load('t/a@1', elf, options);
    await pool.load('t/a@2', elf, options);
    await pool.load('t/b@1', elf, options);
    const seen = async (key: string, n: number): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push(count((await pool.call(key, get('/'))).body));
      return out;
    };
    assert.deepEqual(await seen('t/a@1', 3), [1, 2, 3]);
    // Another version of the same program, and another program built from the same file, start
    // from their own snapshots: the pool never hands one's instance to the other.
    assert.deepEqual(await seen('t/a@2', 2), [1, 2]);
    assert.deepEqual(await seen('t/b@1', 1), [1]);
    assert.deepEqual(await seen('t/a@1', 1), [4]);
    // Concurrent requests queue for the one instance and each sees the state the previous left.
    const together = await Promise.all([1, 2, 3, 4].map(() => pool.call('t/a@2', get('/'))));
    assert.deepEqual(together.map((r) => count(r.body)).sort((x, y) => x - y), [3, 4, 5, 6]);
    // A fault through the pool resets the instance too.
    await assert.rejects(pool.call('t/a@1', get('/fault')), failsWith('fault'));
    assert.deepEqual(await seen('t/a@1', 1), [1]);
  });
});
