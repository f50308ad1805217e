// A VM shell (VM, vCPU, mapping) goes back to a per-thread pool when its machine closes, and the
// next program booted on this thread may be another tenant's. That program must find at `_start`
// exactly what it finds on a never-used VM: general registers, RFLAGS, segment selectors, FS and GS
// base, and the whole XSAVE area (x87, SSE, AVX, MXCSR).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Kvm } from '../../src/kvm/kvm.ts';
import { Machine } from '../../src/vmm/machine.ts';
import { drainShellPool } from '../../src/vmm/memory/shell.ts';
import type { Stdio } from '../../src/vmm/linux/syscalls/context.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

/** Stdout collected in memory; stderr dropped. */
function capture(): Stdio & { bytes(): Buffer } {
  const chunks: Buffer[] = [];
  return {
    write(fd: 1 | 2, data: Uint8Array): number {
      if (fd === 1) chunks.push(Buffer.from(data));
      return data.length;
    },
    read: () => 0,
    poll: (entries) => entries.map(() => 0),
    bytes: () => Buffer.concat(chunks),
  };
}

/** Field offsets of `struct dump` in test/guests/regs_dump.c. */
const DUMP = { gpr: 0, rflags: 128, selectors: 136, fsBase: 184, gsBase: 192, xsave: 256, size: 256 + 4096 };
const GPR_NAMES = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'rsp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
const SELECTOR_NAMES = ['cs', 'ds', 'es', 'fs', 'gs', 'ss'];

/** The dump as named fields, so a difference reads as "ymm8" or "mxcsr", not a byte offset. */
function fields(dump: Buffer): Record<string, string> {
  assert.equal(dump.length, DUMP.size, 'regs_dump wrote a whole dump');
  const out: Record<string, string> = {};
  const u64 = (at: number): string => dump.readBigUInt64LE(at).toString(16);
  GPR_NAMES.forEach((name, i) => (out[name] = u64(DUMP.gpr + i * 8)));
  out.rflags = u64(DUMP.rflags);
  SELECTOR_NAMES.forEach((name, i) => (out[name] = u64(DUMP.selectors + i * 8)));
  out.fs_base = u64(DUMP.fsBase);
  out.gs_base = u64(DUMP.gsBase);
  const x = DUMP.xsave;
  // Legacy region: FCW, FSW, FTW, FOP, FIP, FDP, MXCSR, MXCSR_MASK, st0-7, xmm0-15.
  out.fcw = dump.readUInt16LE(x).toString(16);
  out.fsw = dump.readUInt16LE(x + 2).toString(16);
  out.ftw = dump.readUInt8(x + 4).toString(16);
  out.mxcsr = dump.readUInt32LE(x + 24).toString(16);
  for (let i = 0; i < 8; i++) out[`st${i}`] = dump.subarray(x + 32 + i * 16, x + 42 + i * 16).toString('hex');
  // ymm_i = xmm_i (legacy region, offset 160) and its upper half (AVX component, offset 576).
  for (let i = 0; i < 16; i++) out[`ymm${i}`] = dump.subarray(x + 576 + i * 16, x + 592 + i * 16).toString('hex') + dump.subarray(x + 160 + i * 16, x + 176 + i * 16).toString('hex');
  out.xstate_bv = dump.readBigUInt64LE(x + 512).toString(16);
  // Everything else in the area (AVX-512 and other components where XCR0 has them) compared whole.
  out.rest = dump.subarray(x + 832).toString('hex');
  return out;
}

describe('pooled VM shells', needsKvm(), () => {
  let kvm: Kvm;
  let dumpElf: Buffer;
  let dirtyElf: Buffer;

  before(() => {
    kvm = new Kvm();
    dumpElf = readFileSync(buildGuest('regs_dump', 'glibc', ['-nostdlib', '-fno-stack-protector']));
    dirtyElf = readFileSync(buildGuest('regs_dirty', 'glibc', ['-mavx2', '-mfsgsbase']));
  });
  after(() => {
    drainShellPool();
    kvm.close();
  });

  /** Boots `elf` (on a pooled shell if this thread has one) and runs it to its exit; returns stdout. */
  function run(elf: Buffer, resettable: boolean): Buffer {
    const stdio = capture();
    const m = Machine.boot(kvm, elf, { memoryMiB: 16, argv: ['prog'], env: [], stdio, resettable });
    try {
      const result = m.run(10_000);
      assert.deepEqual(result, { kind: 'exit', status: 0 });
    } finally {
      m.close();
    }
    return stdio.bytes();
  }

  for (const resettable of [true, false]) {
    test(`a program booted on a shell another program dirtied sees what it sees on a never-used VM (${resettable ? 'request' : 'run'} VMs)`, () => {
      drainShellPool();
      const fresh = fields(run(dumpElf, resettable));
      // The never-used VM itself: the defaults a program may rely on at _start.
      assert.equal(fresh.mxcsr, '1f80');
      assert.equal(fresh.fcw, '37f');
      assert.equal(fresh.gs_base, '0');
      assert.equal(fresh.ymm8, '0'.repeat(64));

      run(dirtyElf, resettable); // leaves its shell in this thread's pool
      const pooled = fields(run(dumpElf, resettable));
      assert.deepEqual(pooled, fresh);
    });
  }
});
