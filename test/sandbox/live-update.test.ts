// Live update: a persistent program's next version starts from the state its running version
// hands over (te_on_live_update, taken from one instance of the old version; te_on_live_restore,
// before the new version's snapshot, so every instance of it has the state). The program under
// test hands over its request count.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ProgramPool } from '../../src/sandbox/program-pool.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { guestPrograms } from '../helpers/programs.ts';

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });
const countOf = (r: { body: Buffer }): number => Number(/count=(\d+)/.exec(r.body.toString())?.[1]);

describe('live update', needsKvm(), () => {
  let pool: ProgramPool;
  let elf: Buffer;
  before(async () => {
    pool = await ProgramPool.start();
    elf = readFileSync(buildGuest('sdk_persistent'));
  });
  after(async () => {
    await pool.close();
  });
  const options = { mode: 'sdk' as const, name: 'live', lifecycle: 'persistent' as const, concurrency: 1, queueTimeoutMs: 1000 };

  test('the new version starts, in every instance, from the state one instance of the old version handed over', async () => {
    await pool.load('t/l@1', elf, options);
    for (let i = 0; i < 5; i++) await pool.call('t/l@1', get('/'));
    const state = await pool.liveUpdateState('t/l@1');
    assert.equal(Buffer.from(state!).toString(), '5');
    // Taking the state is not a request of the program's: the old version goes on where it was.
    assert.equal(countOf(await pool.call('t/l@1', get('/'))), 6);
    await pool.load('t/l@2', elf, { ...options, concurrency: 2, liveRestore: state });
    const together = await Promise.all([pool.call('t/l@2', get('/')), pool.call('t/l@2', get('/'))]);
    assert.deepEqual(together.map(countOf).sort(), [6, 6], 'both instances start from the restored count (plus their own request)');
    // Its resets go back to the restored state, not to before it.
    assert.equal(countOf(await pool.call('t/l@2', get('/reset'))), 7);
  });

  test('an ephemeral program, or one of ABI version 1, hands nothing over', async () => {
    await pool.load('t/e@1', elf, { ...options, lifecycle: 'ephemeral' });
    assert.equal(await pool.liveUpdateState('t/e@1'), undefined);
    await pool.load('t/v1@1', readFileSync(buildGuest('sdk_abi_unversioned')), options);
    assert.equal(await pool.liveUpdateState('t/v1@1'), undefined);
  });
});

describe('live restore, hostile cases', needsKvm(), () => {
  const programs = guestPrograms();
  let elf: string;
  before(() => {
    elf = buildGuest('sdk_persistent');
  });

  test('state the new version cannot take is refused at load; garbage state is the program\'s to judge', async () => {
    // Larger than the new version's request limit: the load fails, naming why.
    assert.throws(() => programs.load(elf, { mode: 'sdk', name: 'l', lifecycle: 'persistent', maxRequestBytes: 16 * 1024, liveRestore: new Uint8Array(64 * 1024) }),
      (err: unknown) => err instanceof SandboxError && /live-update state of 65536 bytes exceeds this version's maxRequestSize/.test(err.message));
    // Bytes the program does not understand: it ignores them (its own callback decides).
    const inst = programs.load(elf, { mode: 'sdk', name: 'l', lifecycle: 'persistent', liveRestore: new Uint8Array(1000).fill(0xff) }).instance();
    try {
      assert.equal(countOf(await inst.call(get('/'))), 1);
    } finally {
      inst.close();
    }
    // An ephemeral program gets no restore at all.
    const eph = programs.load(elf, { mode: 'sdk', name: 'l', liveRestore: Buffer.from('41') }).instance();
    try {
      assert.equal(countOf(await eph.call(get('/'))), 1);
    } finally {
      eph.close();
    }
  });
});
