// Signal state in request VMs: actions, masks, alternate stacks and pending signals are part of
// the snapshot, and whatever a request changes of them is undone by the reset, so that a pooled
// VM is indistinguishable from a new one (test/guests/sdk_signals.c changes all of it in every
// request). Real KVM, glibc and musl builds.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Kvm } from '../../src/kvm/kvm.ts';
import { Program } from '../../src/sandbox/program.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { buildGuest, hasCompiler } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const get: SandboxRequest = { method: 'GET', url: '/', headers: [['Host', 'test']], body: new Uint8Array(0) };
/** What every request finds: the snapshot's state (SIGUSR2 handled once before the wait). */
const SNAPSHOT_STATE = 'USR1 default, USR2 handled, blocked 0, pending 0, alternate stack flags 2 size 0, hits 0 1\n';

describe('signal state in request VMs', needsKvm(), () => {
  let kvm: Kvm;
  before(() => {
    kvm = new Kvm();
  });
  after(() => kvm.close());

  for (const variant of ['glibc', 'musl'] as const) {
    test(`${variant}: each request finds the snapshot's actions, mask, alternate stack and pending set, whatever the one before changed`, hasCompiler(variant) ? {} : { skip: `no compiler for ${variant}` }, () => {
      const p = new Program(kvm, readFileSync(buildGuest('sdk_signals', variant)), { mode: 'sdk', name: 'sdk_signals' });
      try {
        // The booting VM, reset after each request, then a VM made from the snapshot.
        for (const inst of [p.instance(), p.instance()]) {
          for (let i = 0; i < 3; i++) assert.equal(inst.handle(get).body.toString(), SNAPSHOT_STATE);
          inst.close();
        }
      } finally {
        p.close();
      }
    });
  }
});
