// The guest's address space under `tinyedge run`, against Linux: test/guests/hostile_mmap.c makes
// hostile mmap, munmap, mprotect and madvise calls (huge lengths, hints and MAP_FIXED at the top
// of the user half, MAP_FIXED over a reservation, protections changed over holes, partial unmaps)
// and prints what each did, natively and in the VM alike. Touching a guard page, a reservation,
// an unmapped page or a read-only page kills the program natively (SIGSEGV) and fails the run in
// the VM with a page-fault report. A 16 GiB reservation costs a 64 MiB guest no memory.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildGuest, hasCompiler, type GuestVariant } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { nativeAndVm, runInVm } from '../helpers/native.ts';

/** What each touching mode's fault report says, after "page fault at 0x…". */
const FAULTS: Record<string, RegExp> = {
  guard: /read of unmapped memory \(a PROT_NONE page: a guard page or reserved address space\)/,
  reserved: /read of unmapped memory \(a PROT_NONE page: a guard page or reserved address space\)/,
  unmapped: /read of unmapped memory\n?$/,
  readonly: /write to read-only memory/,
  edge: /read of unmapped memory \(a PROT_NONE page: a guard page or reserved address space\)/,
};

for (const variant of ['glibc', 'pie', 'musl'] as GuestVariant[]) {
  describe(`address space (${variant})`, { ...needsKvm(), skip: needsKvm().skip || (!hasCompiler(variant) && `no compiler for ${variant}`) }, () => {
    test('hostile mmap, munmap, mprotect and madvise calls answer as natively', async () => {
      const { native, vm } = await nativeAndVm(buildGuest('hostile_mmap', variant), [], 'ignore');
      assert.equal(native.status, 0, native.stderr);
      assert.deepEqual(vm, native);
      assert.match(vm.stdout, /\nstill running\n$/);
    });

    for (const [mode, report] of Object.entries(FAULTS)) {
      test(`touching memory it may not (${mode}) faults, as natively`, async () => {
        const { native, vm } = await nativeAndVm(buildGuest('hostile_mmap', variant), [mode], 'ignore');
        assert.equal(native.signal, 'SIGSEGV');
        assert.equal(vm.status, 125);
        assert.equal(vm.stdout, native.stdout);
        assert.match(vm.stdout, /; (reading|writing) (it|its middle|the page after it)\n$/);
        assert.match(vm.stderr, /^tinyedge: page fault at 0x[0-9a-f]+ \(rip 0x[0-9a-f]+( in [^)]+)?\): /);
        assert.match(vm.stderr, report);
      });
    }
  });
}

describe('address space: memory and executable pages', needsKvm(), () => {
  test('a 16 GiB reservation in a 64 MiB guest, touched in 8 pages 2 GiB apart, costs under 1 MiB, and 40 MiB can still be filled', async () => {
    const run = await runInVm(buildGuest('hostile_mmap'), ['big'], 'ignore', ['--memory', '64MiB']);
    assert.deepEqual(run, {
      status: 0,
      signal: null,
      stdout: '16 GiB reserved, 8 pages 2 GiB apart touched: yes\nfree memory went down by less than 1 MiB: yes\nthen 40 MiB mapped and filled: yes\n',
      stderr: '',
    });
  });

  test('executable anonymous memory is EACCES unless the program may have it; its own code may always be made executable', async () => {
    const program = buildGuest('hostile_mmap');
    const refused = await runInVm(program, ['exec'], 'ignore');
    assert.deepEqual([refused.status, refused.stdout], [0, 'mmap(RWX anonymous) = -EACCES\nmprotect(anonymous, RX) = -13\nmprotect(own code, RX) = 0\n']);
    // Allowed, code written to anonymous memory runs, inside guest RAM and above it, as natively.
    const { native, vm } = await nativeAndVm(program, ['exec'], 'ignore', ['--executable-memory']);
    assert.deepEqual(vm, native);
    assert.equal(vm.stdout, 'mmap(RWX anonymous) mapped\nmprotect(anonymous, RX) = 0\n  code written there returns 42\n  code in the RWX page returns 42\nmprotect(own code, RX) = 0\n');
  });
});
