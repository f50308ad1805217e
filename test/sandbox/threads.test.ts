// Threads in request VMs: the threads a program starts before its wait are part of the snapshot
// and work in every request; threads started during a request are gone after the reset; a VM made
// from the snapshot (on a new or a reused shell) is the same as the one reset; a deadlocked
// request ends and the next one is served. Real KVM, glibc and musl builds of sdk_threads.c.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SREGS } from '../../src/kvm/constants.ts';
import { type LocalProgramOptions, type Program } from '../../src/sandbox/program.ts';
import { type Instance } from '../../src/sandbox/instance.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { buildGuest, hasCompiler, type GuestVariant } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { guestPrograms } from '../helpers/programs.ts';

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });
const text = (inst: Instance, url: string): string => inst.handle(get(url)).body.toString();

describe('threads in request VMs', needsKvm(), () => {
  const programs = guestPrograms();
  const load = (name: string, variant: GuestVariant, options: Partial<LocalProgramOptions> = {}): Program => {
    const flags = name === 'sdk_threads' ? ['-pthread'] : [];
    return programs.load(buildGuest(name, variant, flags), { mode: 'sdk', name, ...options });
  };

  for (const variant of ['glibc', 'musl'] as const) {
    const compiler = hasCompiler(variant) ? {} : { skip: `no compiler for ${variant} guests` };

    test(`${variant}: a worker started before the wait serves every request, as the snapshot left it`, compiler, () => {
      const p = load('sdk_threads', variant);
      // The booting VM, then a VM made from the snapshot: the same answers.
      for (const inst of [p.instance(), p.instance()]) {
        for (const n of [7, 12, 7]) assert.equal(text(inst, `/work?n=${n}`), `worker 2: ${n * n}, jobs done since the snapshot: 1\n`);
        inst.close();
      }
    });

    test(`${variant}: a thread sleeping in the snapshot runs on during a request`, compiler, () => {
      const inst = load('sdk_threads', variant).instance();
      // On a loaded machine the ticker's sleep may end before the handler reads the count, so a
      // request may start at 1; a counter the reset failed to restore would start at 2 or more.
      for (let i = 0; i < 3; i++) assert.match(text(inst, '/ticks'), /^ticks at the start: [01], the ticker ran meanwhile: yes\n$/);
      inst.close();
    });

    test(`${variant}: a thread started during a request is gone after it; the next request sees the snapshot's threads`, compiler, () => {
      const inst = load('sdk_threads', variant).instance();
      for (let i = 0; i < 3; i++) {
        // Thread ids go on from the snapshot's in every request: the new thread is always 4.
        assert.equal(text(inst, '/spawn'), 'started thread 4, threads now: 4\n');
        assert.equal(text(inst, '/alive?tid=4'), 'thread 4: gone, threads: 3\n');
        assert.equal(text(inst, '/alive?tid=2'), 'thread 2: alive, threads: 3\n');
      }
      inst.close();
    });

    test(`${variant}: a request that deadlocks while another thread still sleeps ends at the time limit, and the next is served`, compiler, () => {
      const inst = load('sdk_threads', variant, { timeoutMs: 300 }).instance();
      assert.throws(() => inst.handle(get('/deadlock')), (err: unknown) => err instanceof SandboxError && err.kind === 'timeout');
      assert.equal(text(inst, '/work?n=3'), 'worker 2: 9, jobs done since the snapshot: 1\n');
      inst.close();
    });
  }

  test("a VM made from a snapshot on a shell another program used starts with the snapshot's FS and GS base", () => {
    // The first program leaves its own FS base in the pooled shells it gives back.
    const first = load('sdk_isolation', 'glibc');
    const used = [first.instance(), first.instance()];
    for (const inst of used) text(inst, '/');
    for (const inst of used) inst.close();
    const p = load('sdk_fsbase', 'glibc');
    const expected = `fs=${p.snapshot.sregs.readBigUInt64LE(SREGS.fs).toString(16)} gs=0\n`;
    const booted = p.instance();
    const fresh = p.instance();
    assert.equal(text(fresh, '/'), expected);
    assert.equal(text(fresh, '/'), expected);
    assert.equal(text(booted, '/'), expected);
    booted.close();
    fresh.close();
  });
});
