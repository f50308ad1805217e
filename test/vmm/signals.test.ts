// Signals delivered to the guest (docs/vmm.md, "Signals"): C programs compared with their native
// runs — handlers for faults and for raised signals, masks, sigsuspend, alternate stacks, the FPU
// state in the frame, a stack overflow caught on the alternate stack, abort(), the signal calls'
// answers to hostile arguments — and forged
// rt_sigreturn frames and handlers that cannot run, which must raise what Linux raises and never
// reach the host. Then the trace's lines for deliveries, a handler that faults forever (bounded by
// the time limit), and /proc/self/maps against the address space's own mappings.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Kvm } from '../../src/kvm/kvm.ts';
import { mapsText } from '../../src/vmm/linux/procfs.ts';
import { Machine } from '../../src/vmm/machine.ts';
import { CaptureStdio } from '../../src/sandbox/stdio.ts';
import { buildGuest, hasCompiler, type GuestVariant } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { nativeAndVm, runInVm } from '../helpers/native.ts';

for (const variant of ['glibc', 'pie', 'musl'] as GuestVariant[]) {
  describe(`signals (${variant})`, { ...needsKvm(), skip: needsKvm().skip || (!hasCompiler(variant) && `no compiler for ${variant}`) }, () => {
    test('faults, raised signals, masks, alternate stacks, the FPU state in the frame and signals to threads: the same lines as natively', async () => {
      const { native, vm } = await nativeAndVm(buildGuest('signals', variant), [], 'ignore');
      assert.equal(native.status, 0, native.stderr);
      assert.deepEqual(vm, native);
      assert.match(vm.stdout, /^read of 0x10: sig 11 code 1 addr 0x10\n/);
      assert.match(vm.stdout, /\nxmm0 changed in the frame: 0x600df00d; xmm1 kept 1; MXCSR rounding 0x6000\n/);
      assert.match(vm.stdout, /\nkill\(\) while the main thread blocks it: the handler ran in the other thread 1\ndone\n$/);
    });

    test('a stack overflow is caught by a SIGSEGV handler on the alternate stack, as natively', async () => {
      const { native, vm } = await nativeAndVm(buildGuest('signals', variant), ['overflow'], 'ignore');
      assert.equal(native.status, 3, native.stderr);
      assert.deepEqual(vm, native);
    });
  });
}

describe('signal system calls with hostile arguments', needsKvm(), () => {
  for (const variant of ['glibc', 'pie'] as GuestVariant[]) {
    test(`bad numbers, sizes, pointers, flags and targets answer as natively (${variant})`, async () => {
      const { native, vm } = await nativeAndVm(buildGuest('hostile_signals', variant), [], 'ignore');
      assert.equal(native.status, 0, native.stderr);
      assert.deepEqual(vm, native);
      assert.match(vm.stdout, /\nread back: flags 0xdc000807 mask 0xfffffffffffbfeff\n/);
      assert.match(vm.stdout, /\npending: 0x200\nstill running\n$/);
    });
  }
});

describe('signals: endings', needsKvm(), () => {
  test('abort() after its SIGABRT handler returned ends the program with SIGABRT (134)', async () => {
    const { native, vm } = await nativeAndVm(buildGuest('signals'), ['abort'], 'ignore');
    assert.equal(native.signal, 'SIGABRT');
    assert.deepEqual(vm, { status: 134, signal: null, stdout: native.stdout, stderr: 'tinyedge: program killed by SIGABRT\n' });
  });

  test('a stack overflow whose handler has no alternate stack ends the program with the fault, as before signals', async () => {
    const { native, vm } = await nativeAndVm(buildGuest('signals'), ['overflow-no-altstack'], 'ignore');
    assert.equal(native.signal, 'SIGSEGV');
    assert.equal(vm.status, 125);
    assert.equal(vm.stdout, native.stdout);
    assert.match(vm.stderr, /^tinyedge: page fault at 0x[0-9a-f]+ \(rip 0x[0-9a-f]+ in recurse\+0x[0-9a-f]+\): write of unmapped memory \(stack overflow\)\n$/);
  });

  test('a SIGSEGV handler that returns to the faulting read runs until the time limit ends it', async () => {
    const run = await runInVm(buildGuest('signals'), ['segv-loop'], 'ignore', ['--timeout', '1000']);
    assert.deepEqual(run, { status: 124, signal: null, stdout: 'reading 0x10 under a handler that returns\n', stderr: 'tinyedge: program ran past its 1000 ms time limit\n' });
  });

  test('forged rt_sigreturn frames and handlers that cannot run raise what Linux raises; the last ends the program', async () => {
    const { native, vm } = await nativeAndVm(buildGuest('sigreturn_hostile'), [], 'ignore');
    assert.equal(native.signal, 'SIGSEGV', native.stderr);
    assert.deepEqual(vm, { status: 139, signal: null, stdout: native.stdout, stderr: 'tinyedge: program killed by SIGSEGV\n' });
    for (const line of ['the captured frame: landed', 'non-canonical rip: signal 11 code 128', 'kernel rip: signal 11 code 1 addr 0xffff800000000000',
      'non-canonical rsp: signal 7 code 128', 'kernel code segment: signal 11 code 128', 'XSTATE_BV beyond XCR0: signal 11 code 128',
      'MXCSR reserved bit: signal 11 code 128', 'handler without SA_RESTORER: signal 11 code 128', 'mask of all signals: landed 1, KILL 0 STOP 0 USR1 1 RTMAX 1']) {
      assert.ok(vm.stdout.includes(`${line}`), `no "${line}" in:\n${vm.stdout}`);
    }
  });
});

describe('signals in the trace', needsKvm(), () => {
  test('deliveries print strace-style, with the siginfo; rt_sigreturn prints the mask it restores', async () => {
    const run = await runInVm(buildGuest('signals'), [], 'ignore', ['--trace']);
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stderr.split('\n');
    for (const line of [
      '--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10} ---',
      '--- SIGTRAP {si_signo=SIGTRAP, si_code=SI_KERNEL} ---',
      '--- SIGSEGV {si_signo=SIGSEGV, si_code=SI_KERNEL, si_addr=NULL} ---',
      'tgkill(1, 1, SIGUSR1) = 0',
      '--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_TKILL, si_pid=1, si_uid=1000} ---',
      '--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid=1, si_uid=1000} ---',
      'rt_sigreturn({mask=[]}) = 0',
      '--- SIGRT_4 {si_signo=SIGRT_4, si_code=SI_TKILL, si_pid=1, si_uid=1000} ---',
    ]) assert.ok(lines.includes(line), `no line "${line}" in the trace`);
    assert.ok(lines.some((l) => /^--- SIGILL \{si_signo=SIGILL, si_code=ILL_ILLOPN, si_addr=0x[0-9a-f]+\} ---$/.test(l)));
    assert.ok(lines.some((l) => /^--- SIGFPE \{si_signo=SIGFPE, si_code=FPE_INTDIV, si_addr=0x[0-9a-f]+\} ---$/.test(l)));
    // The handler's rt_sigreturn after sigsuspend puts back the mask sigsuspend replaced.
    assert.ok(lines.includes('rt_sigreturn({mask=[USR2]}) = -1 EINTR (Interrupted system call)'), 'no rt_sigreturn returning sigsuspend\'s EINTR');
  });

  test('a pending signal whose default action ends the program prints how it ended', async () => {
    const run = await runInVm(buildGuest('signals'), ['abort'], 'ignore', ['--trace']);
    assert.equal(run.status, 134);
    assert.match(run.stderr, /\ntgkill\(1, 1, SIGABRT\) = \?\n\+\+\+ killed by SIGABRT \+\+\+\n/);
  });
});

describe('/proc/self/maps', needsKvm(), () => {
  test('lists the address space\'s mappings in the kernel\'s format; glibc finds the main stack through it', () => {
    const kvm = new Kvm();
    const stdio = new CaptureStdio(1 << 20);
    const m = Machine.boot(kvm, readFileSync(buildGuest('proc_maps')), { memoryMiB: 64, argv: ['proc_maps'], env: [], stdio });
    try {
      assert.deepEqual(m.run(20_000), { kind: 'exit', status: 0 }, stdio.text());
      const [maps, report] = stdio.stdout().toString('utf8').split('--\n');
      assert.equal(maps, mapsText(m.space.vmas.all()));
      const lines = maps!.split('\n').slice(0, -1);
      for (const line of lines) assert.match(line, /^[0-9a-f]{8,}-[0-9a-f]{8,} [r-][w-][x-]p 00000000 00:00 0 ( {32}.+)?$/);
      const { stackBottom, stackTop } = m.layout;
      const hex = (n: number): string => n.toString(16).padStart(8, '0');
      assert.ok(lines.includes(`${hex(stackBottom)}-${hex(stackTop)} rw-p 00000000 00:00 0${' '.repeat(34)}[stack]`), maps);
      assert.ok(lines.some((l) => l.endsWith(' [heap]')), maps);
      assert.ok(lines.some((l) => / r-xp .* proc_maps$/.test(l)), maps);
      assert.equal(report, `pthread_getattr_np 0 stack 0x${stackBottom.toString(16)} size 0x${(stackTop - stackBottom).toString(16)}\n`
        + 'write -1 13, O_DIRECTORY -1 20, /proc/self/status -1 13\n');
    } finally {
      m.close();
      kvm.close();
    }
  });
});
