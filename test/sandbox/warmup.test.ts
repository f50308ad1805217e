// Warm-up before the snapshot (program option `warmup`): N synthetic requests, flagged
// TE_REQUEST_PRESNAPSHOT, run after main() reaches its wait and before the snapshot, so what they
// leave is in every instance, of either lifecycle; the upload check after the snapshot stays as it
// was. The program under test counts requests, and flagged ones apart, in globals.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ProgramPool } from '../../src/sandbox/program-pool.ts';
import type { ProgramOptions, SandboxRequest } from '../../src/sandbox/types.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { guestPrograms } from '../helpers/programs.ts';

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });
const ENOSYS = 38;

describe('warm-up before the snapshot', needsKvm(), () => {
  const programs = guestPrograms();
  let elf: string;
  before(() => {
    elf = buildGuest('sdk_persistent');
  });
  const load = (options: Partial<ProgramOptions>) => programs.load(elf, { mode: 'sdk', name: 'sdk_persistent', timeoutMs: 300, ...options });

  test('warm-up requests run before the snapshot, flagged, and every instance starts from what they left', async () => {
    const program = load({ warmup: { requests: 5, path: '/?from=warmup' } });
    const a = program.instance();
    const b = program.instance();
    try {
      // Five flagged requests counted before the snapshot; host calls answered -ENOSYS then.
      const expected = `count=6 warm=5 flags=0 kv=-${ENOSYS}\n`;
      assert.equal((await a.call(get('/'))).body.toString(), expected);
      assert.equal((await a.call(get('/'))).body.toString(), expected, 'the reset goes back to the warmed snapshot');
      assert.equal((await b.call(get('/'))).body.toString(), expected, 'a new instance starts warmed too');
      // The upload check after the snapshot carries TE_REQUEST_WARMUP only.
      assert.equal((await a.call(get('/'), { warmup: true })).body.toString(), `count=6 warm=5 flags=1 kv=-${ENOSYS}\n`);
    } finally {
      a.close();
      b.close();
    }
  });

  test('a persistent program goes on from its warmed state, and its resets go back to it', async () => {
    const program = load({ lifecycle: 'persistent', warmup: { requests: 3 } });
    const inst = program.instance();
    try {
      const counts: string[] = [];
      for (const url of ['/', '/', '/reset', '/']) counts.push(/count=\d+ warm=\d+/.exec((await inst.call(get(url))).body.toString())![0]);
      assert.deepEqual(counts, ['count=4 warm=3', 'count=5 warm=3', 'count=6 warm=3', 'count=4 warm=3']);
    } finally {
      inst.close();
    }
  });

  test('a warm-up request that fails fails the load, saying which and why', () => {
    assert.throws(() => load({ warmup: { requests: 3, path: '/warm-fail' } }), (err: unknown) => err instanceof SandboxError && /^warm-up request 1 of 3 \(GET \/warm-fail\) failed: answered 500/.test(err.message));
    assert.throws(() => load({ warmup: { requests: 2, path: '/fault' } }), (err: unknown) => err instanceof SandboxError && err.kind === 'fault' && /^warm-up request 1 of 2/.test(err.message));
    assert.throws(() => load({ warmup: { requests: 2, path: '/spin' } }), (err: unknown) => err instanceof SandboxError && err.kind === 'timeout');
    // The init time limit covers main() and the warm-up together.
    assert.throws(() => load({ initTimeoutMs: 150, warmup: { requests: 100, path: '/sleep?ms=5' } }), (err: unknown) => err instanceof SandboxError && err.kind === 'timeout');
  });

  test('a warm-up the host cannot make is refused before the program boots', () => {
    for (const warmup of [{ requests: 0 }, { requests: 10_001 }, { requests: 1.5 }, { requests: Number.NaN }, { requests: 1, path: 'no-slash' }, { requests: 1, path: '/a b' }, { requests: 1, path: `/${'x'.repeat(9000)}` }]) {
      assert.throws(() => load({ warmup }), (err: unknown) => err instanceof SandboxError && err.kind === 'program' && /^warmup\.(requests|path) must be/.test(err.message), JSON.stringify(warmup).slice(0, 80));
    }
    assert.throws(() => load({ mode: 'cgi', warmup: { requests: 1 } }), /needs an SDK program/);
  });
});

describe('warm-up on a loader thread', needsKvm(), () => {
  let pool: ProgramPool;
  before(async () => {
    pool = await ProgramPool.start();
  });
  after(async () => {
    await pool.close();
  });

  test('the pool loads a program with its warm-up and the upload check, and serves the warmed state', async () => {
    await pool.load('t/w@1', readFileSync(buildGuest('sdk_persistent')), { mode: 'sdk', name: 'w', concurrency: 1, queueTimeoutMs: 1000, warmup: { requests: 7, path: '/' } }, { req: get('/') });
    assert.equal((await pool.call('t/w@1', get('/'))).body.toString(), `count=8 warm=7 flags=0 kv=-${ENOSYS}\n`);
  });
});
