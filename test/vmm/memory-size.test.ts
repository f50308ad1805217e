// The guest memory sizes the VMM boots: from MIN_MEMORY_MIB (the smallest that fits a program, an
// SDK program's default request region and its stack) to 4 GiB, in 2 MiB steps. Outside them, loading a program is a
// SandboxError that names the range, never a RangeError from the layout.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SandboxError } from '../../src/vmm/errors.ts';
import { computeLayout, MAX_MEMORY_GIB, MiB, MIN_MEMORY_MIB } from '../../src/vmm/x86/layout.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { guestPrograms } from '../helpers/programs.ts';

test('the smallest size has a layout; 6 MiB has none', () => {
  assert.ok(computeLayout(MIN_MEMORY_MIB * MiB).arenaEnd > 0);
  assert.throws(() => computeLayout(6 * MiB), RangeError);
});

describe('guest memory sizes a program loads with', needsKvm(), () => {
  const programs = guestPrograms();
  const load = (memoryMiB: number) => programs.load(buildGuest('sdk_headers'), { mode: 'sdk', name: 'sdk_headers', memoryMiB });

  test('the smallest size runs an SDK program', () => {
    const inst = load(MIN_MEMORY_MIB).instance();
    assert.equal(inst.handle({ method: 'GET', url: '/x', headers: [['Host', 'test']], body: new Uint8Array(0) }).status, 201);
    inst.close();
  });

  test('sizes outside the range are a SandboxError naming it', () => {
    for (const memoryMiB of [4, MIN_MEMORY_MIB - 2, MIN_MEMORY_MIB + 1, MAX_MEMORY_GIB * 1024 + 2]) {
      assert.throws(() => load(memoryMiB), (err: unknown) =>
        err instanceof SandboxError && err.kind === 'program' && err.message === `guest memory must be an even number of MiB from ${MIN_MEMORY_MIB} MiB to ${MAX_MEMORY_GIB} GiB (got ${memoryMiB} MiB)`, String(memoryMiB));
    }
  });
});
