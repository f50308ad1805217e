// Guest RAM: one host mapping, seen from TypeScript as bytes. Every pointer and length the guest
// hands the host goes through `user()` / `writable()` (the user-accessible range) before it is
// touched. The host's own writes are recorded per page: KVM's dirty log sees only the guest's,
// and a reset must undo both.
import { type Mapping, madvise, MADV_DONTNEED, MADV_POPULATE_WRITE } from '../../kvm/libc.ts';
import { PAGE_SIZE } from '../x86/layout.ts';

/** A guest pointer or length that does not lie inside guest memory the program may touch. */
export class GuestFault extends Error {
  constructor(readonly address: number, readonly length: number) {
    super(`bad guest address 0x${address.toString(16)} (+${length})`);
    this.name = 'GuestFault';
  }
}

export class GuestMemory {
  readonly mapping: Mapping;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** One bit per page the host wrote since the last `takeHostDirty()`, in KVM's bitmap layout. */
  readonly hostDirty: Uint32Array;
  readonly size: number;
  /** Anonymous memory reads back zeros after MADV_DONTNEED; a private file mapping would not. */
  private readonly anonymous: boolean;

  /**
   * Guest memory in `mapping` (owned by the caller): `anonymous` when it reads back zeros after
   * MADV_DONTNEED (not a private file mapping). `userStart` and `userEnd` bound the addresses a
   * guest may pass to system calls.
   */
  constructor(mapping: Mapping, anonymous: boolean, public userStart: number, public userEnd: number) {
    this.anonymous = anonymous;
    this.mapping = mapping;
    this.size = mapping.length;
    this.bytes = new Uint8Array(this.mapping.buffer);
    this.view = new DataView(this.mapping.buffer);
    this.hostDirty = new Uint32Array(Math.ceil(this.size / PAGE_SIZE / 32));
  }

  /** Records that the host wrote [addr, addr+len). */
  markDirty(addr: number, len: number): void {
    if (len <= 0) return;
    const last = Math.floor((addr + len - 1) / PAGE_SIZE);
    for (let page = Math.floor(addr / PAGE_SIZE); page <= last; page++) this.hostDirty[page >>> 5]! |= 1 << (page & 31);
  }

  /** Like `user()`, for a range the host is about to write. */
  writable(addr: number, len: number): Uint8Array {
    const view = this.user(addr, len);
    this.markDirty(addr, len);
    return view;
  }

  get hostAddress(): bigint {
    return this.mapping.address;
  }

  /** Checks that [addr, addr+len) is user memory; returns addr. Throws GuestFault otherwise. */
  check(addr: number, len: number): number {
    if (!(addr >= this.userStart && len >= 0 && addr + len <= this.userEnd && Number.isSafeInteger(addr + len))) {
      throw new GuestFault(addr, len);
    }
    return addr;
  }

  /** The guest bytes [addr, addr+len) as a view (no copy), after a bounds check. */
  user(addr: number, len: number): Uint8Array {
    this.check(addr, len);
    return this.bytes.subarray(addr, addr + len);
  }

  /** A NUL-terminated string of at most `max` bytes from guest memory. */
  cString(addr: number, max = 4096): string {
    this.check(addr, 1);
    const end = Math.min(addr + max, this.userEnd);
    const nul = this.bytes.indexOf(0, addr);
    if (nul < 0 || nul >= end) throw new GuestFault(addr, max);
    return Buffer.from(this.bytes.buffer, addr, nul - addr).toString('utf8');
  }

  u64(addr: number): number {
    this.check(addr, 8);
    return this.view.getUint32(addr + 4, true) * 0x1_0000_0000 + this.view.getUint32(addr, true);
  }

  /** A 64-bit value anywhere in guest RAM (no user-range check): for host-owned structures. */
  u64Raw(addr: number): number {
    return this.view.getUint32(addr + 4, true) * 0x1_0000_0000 + this.view.getUint32(addr, true);
  }

  setU64(addr: number, value: number | bigint): void {
    this.check(addr, 8);
    this.markDirty(addr, 8);
    this.view.setBigUint64(addr, BigInt.asUintN(64, BigInt(value)), true);
  }

  setU32(addr: number, value: number): void {
    this.check(addr, 4);
    this.markDirty(addr, 4);
    this.view.setUint32(addr, value >>> 0, true);
  }

  /**
   * Faults in [addr, addr+len) ahead of a large host write: one system call instead of a page
   * fault per page. Only a speed-up, so a kernel without MADV_POPULATE_WRITE is fine.
   */
  populate(addr: number, len: number): void {
    try {
      madvise(this.mapping, addr, len, MADV_POPULATE_WRITE);
    } catch {
      // Older kernel: the pages fault in one by one as they are written.
    }
  }

  /** Zeroes whole pages; large anonymous ranges go back to the host kernel instead of being written. */
  zeroPages(addr: number, len: number): void {
    if (this.anonymous && len >= 16 * PAGE_SIZE) madvise(this.mapping, addr, len, MADV_DONTNEED);
    else this.bytes.fill(0, addr, addr + len);
    this.markDirty(addr, len);
  }
}
