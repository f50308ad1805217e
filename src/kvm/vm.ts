// A KVM virtual machine: guest memory slots, the dirty log, capabilities, vCPU creation.
import * as K from './constants.ts';
import { check, checkRetryingEintr, close, ioctlInt, ioctlPtr } from './libc.ts';
import type { Kvm } from './kvm.ts';
import { Vcpu } from './vcpu.ts';

export interface MemoryRegion {
  slot: number;
  guestPhysAddr: number;
  size: number;
  userspaceAddr: bigint;
  logDirtyPages?: boolean;
}

export class Vm {
  private readonly scratch = Buffer.alloc(128);

  constructor(readonly kvm: Kvm, readonly fd: number) {}

  setUserMemoryRegion(region: MemoryRegion): void {
    const b = this.scratch.fill(0, 0, 32);
    b.writeUInt32LE(region.slot, 0);
    b.writeUInt32LE(region.logDirtyPages ? K.KVM_MEM_LOG_DIRTY_PAGES : 0, 4);
    b.writeBigUInt64LE(BigInt(region.guestPhysAddr), 8);
    b.writeBigUInt64LE(BigInt(region.size), 16);
    b.writeBigUInt64LE(region.userspaceAddr, 24);
    check('KVM_SET_USER_MEMORY_REGION', ioctlPtr(this.fd, K.KVM_SET_USER_MEMORY_REGION, b.subarray(0, 32)));
  }

  /** KVM_ENABLE_CAP on the VM with up to four 64-bit arguments. */
  enableCap(cap: number, args: bigint[] = []): void {
    const b = this.scratch.fill(0, 0, 104);
    b.writeUInt32LE(cap, 0);
    args.forEach((a, i) => b.writeBigUInt64LE(a, 8 + i * 8));
    check(`KVM_ENABLE_CAP(${cap})`, ioctlPtr(this.fd, K.KVM_ENABLE_CAP, b.subarray(0, 104)));
  }

  /**
   * KVM_GET_DIRTY_LOG of `slot` into the bitmap at host address `bitmap` (one bit per 4 KiB page).
   * The bitmap must not move while the kernel writes it: allocate it with mmap, not on the JS heap.
   */
  getDirtyLog(slot: number, bitmap: bigint): void {
    const b = this.scratch.fill(0, 0, 16);
    b.writeUInt32LE(slot, 0);
    b.writeBigUInt64LE(bitmap, 8);
    check('KVM_GET_DIRTY_LOG', ioctlPtr(this.fd, K.KVM_GET_DIRTY_LOG, b.subarray(0, 16)));
  }

  /** KVM_CLEAR_DIRTY_LOG: re-protects the pages set in `bitmap`, starting at page `firstPage` (a multiple of 64). */
  clearDirtyLog(slot: number, firstPage: number, numPages: number, bitmap: bigint): void {
    const b = this.scratch.fill(0, 0, 24);
    b.writeUInt32LE(slot, 0);
    b.writeUInt32LE(numPages, 4);
    b.writeBigUInt64LE(BigInt(firstPage), 8);
    b.writeBigUInt64LE(bitmap, 16);
    check('KVM_CLEAR_DIRTY_LOG', ioctlPtr(this.fd, K.KVM_CLEAR_DIRTY_LOG, b.subarray(0, 24)));
  }

  createVcpu(id = 0): Vcpu {
    const fd = checkRetryingEintr('KVM_CREATE_VCPU', () => ioctlInt(this.fd, K.KVM_CREATE_VCPU, id));
    return new Vcpu(this, fd);
  }

  close(): void {
    close(this.fd);
  }
}

