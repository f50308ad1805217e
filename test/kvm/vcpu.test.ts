// The KVM binding on its own, with hand-assembled guest code (no compiler, no VMM): a vCPU in
// real mode runs a few instructions, its exits come back typed, and its registers are read and
// written by name through the sync-regs area of kvm_run.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SREGS } from '../../src/kvm/constants.ts';
import { Kvm } from '../../src/kvm/kvm.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, type Mapping, mmap, munmap, PROT_READ, PROT_WRITE } from '../../src/kvm/libc.ts';
import type { Vcpu } from '../../src/kvm/vcpu.ts';
import type { Vm } from '../../src/kvm/vm.ts';
import { needsKvm } from '../helpers/kvm.ts';

const MEMORY_SIZE = 0x10000;
const CODE_AT = 0x1000;
/** `struct kvm_segment`: base (u64) then limit (u32), then the selector (u16). */
const SEGMENT_SELECTOR = 12;

/** A VM with 64 KiB of memory at guest address 0 and one vCPU in real mode at CODE_AT, CS base 0. */
class RealModeGuest {
  readonly vm: Vm;
  readonly vcpu: Vcpu;
  private readonly memory: Mapping;

  constructor(kvm: Kvm, code: number[]) {
    this.memory = mmap(MEMORY_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    new Uint8Array(this.memory.buffer).set(code, CODE_AT);
    this.vm = kvm.createVm();
    this.vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, size: MEMORY_SIZE, userspaceAddr: this.memory.address });
    this.vcpu = this.vm.createVcpu();
    const sregs = this.vcpu.getSregs();
    sregs.writeBigUInt64LE(0n, SREGS.cs);
    sregs.writeUInt16LE(0, SREGS.cs + SEGMENT_SELECTOR);
    this.vcpu.setSregs(sregs);
    // Until the first exit the sync-regs area holds nothing of the vCPU's: write every register.
    this.vcpu.regsBytes().fill(0);
    this.vcpu.setReg('rflags', 0x2);
    this.vcpu.setReg('rip', CODE_AT);
  }

  close(): void {
    this.vcpu.close();
    this.vm.close();
    munmap(this.memory);
  }
}

describe('a vCPU running hand-assembled code', needsKvm(), () => {
  let kvm: Kvm;
  before(() => {
    kvm = new Kvm();
  });
  after(() => kvm.close());

  test('registers written by name are what the guest computes with, and an out exits as io to its port', () => {
    const guest = new RealModeGuest(kvm, [
      0x89, 0xf8, // mov ax, di
      0x01, 0xf0, // add ax, si
      0xe6, 0x10, // out 0x10, al
      0xf4, // hlt
    ]);
    try {
      guest.vcpu.setReg('rdi', 0x1200);
      guest.vcpu.setReg('rsi', 0x34);
      assert.equal(guest.vcpu.enter(), 'io');
      assert.equal(guest.vcpu.ioPort(), 0x10);
      assert.equal(guest.vcpu.reg('rax') & 0xffff, 0x1234);
      assert.equal(guest.vcpu.reg('rdi'), 0x1200, 'the registers the guest did not change read back as written');
    } finally {
      guest.close();
    }
  });

  test('after an io exit the guest goes on to a hlt, which is an exit of its own', () => {
    const guest = new RealModeGuest(kvm, [0xe6, 0x10, 0xf4]); // out 0x10, al; hlt
    try {
      assert.equal(guest.vcpu.enter(), 'io');
      assert.equal(guest.vcpu.enter(), 'hlt');
    } finally {
      guest.close();
    }
  });

  test('a write to an address no memory slot backs exits as mmio', () => {
    const guest = new RealModeGuest(kvm, [
      0xb8, 0x00, 0x20, // mov ax, 0x2000
      0x8e, 0xd8, // mov ds, ax
      0xa2, 0x00, 0x00, // mov [0], al: guest physical 0x20000, past the 64 KiB slot
      0xf4, // hlt
    ]);
    try {
      assert.equal(guest.vcpu.enter(), 'mmio');
    } finally {
      guest.close();
    }
  });

  test('a negative value written to a register reads back as two\'s complement at each width', () => {
    const guest = new RealModeGuest(kvm, [0xf4]);
    try {
      const { vcpu } = guest;
      vcpu.setReg('r10', -2);
      assert.equal(vcpu.regSigned('r10'), -2);
      assert.equal(vcpu.reg32s('r10'), -2);
      assert.equal(vcpu.reg32('r10'), 0xffff_fffe);
      assert.equal(vcpu.reg('r10'), 2 ** 64 - 2);
      vcpu.setReg('r10', 2 ** 40 + 7);
      assert.equal(vcpu.reg('r10'), 2 ** 40 + 7);
      assert.equal(vcpu.reg32('r10'), 7);
      assert.equal(vcpu.reg('r9'), 0, 'writing one register leaves its neighbours alone');
      assert.equal(vcpu.reg('r11'), 0);
    } finally {
      guest.close();
    }
  });
});
