// Guest RAM: one host mapping, seen from TypeScript as bytes, and the guest's virtual addresses
// translated into it. Every pointer and length the guest hands the host goes through `check()`,
// `user()`, `writable()` or `segments()` before it is touched: they read the guest's page tables
// as the CPU would, so a page the program may not read (or write) is a GuestFault, whatever the
// host could reach. Inside guest RAM the map is the identity (a pointer is an offset into the
// mapping); above it pages live wherever the address space put them, and a page mapped but not
// yet touched is backed on the spot, as the kernel faults pages in for a system call. The host's
// own writes are recorded per page: KVM's dirty log sees only the guest's, and a reset must undo
// both.
import { type Mapping, madvise, MADV_DONTNEED, MADV_POPULATE_WRITE, mprotect, PROT_READ, PROT_WRITE } from '../../kvm/libc.ts';
import { type Layout, PAGE_SIZE } from '../x86/layout.ts';
import { entryFrame, PTE_P, PTE_RW, PTE_US, walkEntry } from '../x86/paging.ts';

/** A guest pointer or length that does not lie inside guest memory the program may touch. */
export class GuestFault extends Error {
  constructor(readonly address: number, readonly length: number) {
    super(`bad guest address 0x${address.toString(16)} (+${length})`);
    this.name = 'GuestFault';
  }
}

/** The end of a process's user address space under 4-level paging: no user address reaches it. */
export const TASK_SIZE_MAX = 0x7fff_ffff_f000;

/** Backs a page above guest RAM that the program mapped but never touched; false when it may not be accessed so. */
export type FaultIn = (page: number, write: boolean) => boolean;

/** The most bytes above guest RAM `forEachPiece` translates at a time. */
const PIECE = 64 * 1024;
const READ = PTE_P | PTE_US;
const WRITE = PTE_P | PTE_US | PTE_RW;

/** A range of guest RAM (physical addresses) a translated range lies in. */
type Run = [at: number, length: number];

export class GuestMemory {
  readonly mapping: Mapping;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** All of guest RAM as a Buffer, to decode strings without a view per string. */
  private readonly buf: Buffer;
  /** All of guest RAM as 32-bit words, for reading page-table entries. */
  readonly words: Uint32Array;
  /** One bit per page the host wrote since the last `takeHostDirty()`, in KVM's bitmap layout. */
  readonly hostDirty: Uint32Array;
  readonly size: number;
  /** Anonymous memory reads back zeros after MADV_DONTNEED; a private file mapping would not. */
  private readonly anonymous: boolean;
  /** Where the identity map's leaf entries start. */
  private readonly pageTablesAddr: number;
  /** Copies handed out by `writable()` for ranges that are not contiguous in guest RAM, written back by `flush()`. */
  private pending: Array<{ copy: Uint8Array; runs: Run[] }> = [];
  /** Set by the address space: backs a page of a mapping above guest RAM on first touch. */
  faultIn: FaultIn = () => false;

  /**
   * Guest memory in `mapping` (owned by the caller), laid out as `layout` says: `anonymous` when
   * it reads back zeros after MADV_DONTNEED (not a private file mapping). Inside guest RAM,
   * `userStart` and `userEnd` bound the addresses a guest may pass to system calls.
   */
  constructor(mapping: Mapping, anonymous: boolean, layout: Layout, public userStart: number, public userEnd: number) {
    this.anonymous = anonymous;
    this.mapping = mapping;
    this.size = mapping.length;
    this.bytes = new Uint8Array(this.mapping.buffer);
    this.view = new DataView(this.mapping.buffer);
    this.buf = Buffer.from(this.mapping.buffer);
    this.words = new Uint32Array(this.mapping.buffer);
    this.hostDirty = new Uint32Array(Math.ceil(this.size / PAGE_SIZE / 32));
    this.pageTablesAddr = layout.pageTablesAddr;
  }

  /** Records that the host wrote [addr, addr+len) (physical). */
  markDirty(addr: number, len: number): void {
    if (len <= 0) return;
    const last = Math.floor((addr + len - 1) / PAGE_SIZE);
    for (let page = Math.floor(addr / PAGE_SIZE); page <= last; page++) this.hostDirty[page >>> 5]! |= 1 << (page & 31);
  }

  get hostAddress(): bigint {
    return this.mapping.address;
  }

  /**
   * True when [addr, addr+len) lies in the identity-mapped user part and every page of it is
   * present and user-accessible (and writable, for `write`) in the guest's page tables.
   */
  private identity(addr: number, len: number, write: boolean, lowest = this.userStart): boolean {
    if (!(addr >= lowest && len >= 0 && addr + len <= this.userEnd)) return false;
    const need = write ? WRITE : READ;
    const base = this.pageTablesAddr >>> 2;
    const last = Math.floor((addr + len - 1) / PAGE_SIZE);
    for (let page = Math.floor(addr / PAGE_SIZE); page <= last; page++) {
      if ((this.words[base + page * 2]! & need) !== need) return false;
    }
    return true;
  }

  /** The frame behind the page at `page` (above guest RAM), backing it if the program may touch it so. */
  private frameOf(page: number, write: boolean): number {
    const need = write ? WRITE : READ;
    let at = walkEntry(this.words, page);
    if (at < 0 || (this.words[at >>> 2]! & need) !== need) {
      if (!this.faultIn(page, write)) throw new GuestFault(page, PAGE_SIZE);
      at = walkEntry(this.words, page);
      if (at < 0 || (this.words[at >>> 2]! & need) !== need) throw new GuestFault(page, PAGE_SIZE);
    }
    return entryFrame(this.words[at >>> 2]!, this.words[(at >>> 2) + 1]!);
  }

  /**
   * Where [addr, addr+len) lies in guest RAM, as runs of contiguous bytes; throws GuestFault
   * unless the program may read (or write) all of it.
   */
  private runs(addr: number, len: number, write: boolean, lowest = this.userStart): Run[] {
    if (this.identity(addr, len, write, lowest)) return [[addr, len]];
    if (!(addr >= this.size && len >= 0 && addr + len <= TASK_SIZE_MAX && Number.isSafeInteger(addr + len))) throw new GuestFault(addr, len);
    const runs: Run[] = [];
    for (let page = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE; page < addr + len; page += PAGE_SIZE) {
      const from = Math.max(addr, page);
      const n = Math.min(addr + len, page + PAGE_SIZE) - from;
      const at = this.frameOf(page, write) + (from - page);
      const last = runs[runs.length - 1];
      if (last && last[0] + last[1] === at) last[1] += n;
      else runs.push([at, n]);
    }
    return runs;
  }

  /** Checks that the program may read (or, with `write`, write) [addr, addr+len); returns addr. Throws GuestFault otherwise. */
  check(addr: number, len: number, write = false): number {
    if (!this.identity(addr, len, write)) this.runs(addr, len, write);
    return addr;
  }

  /**
   * The guest bytes [addr, addr+len), to read: a view of guest memory (no copy) when they lie
   * together in it, a copy otherwise.
   */
  user(addr: number, len: number): Uint8Array {
    if (this.identity(addr, len, false)) return this.bytes.subarray(addr, addr + len);
    const runs = this.runs(addr, len, false);
    if (runs.length === 1) return this.bytes.subarray(runs[0]![0], runs[0]![0] + len);
    return this.gather(runs, len);
  }

  /** The guest bytes [addr, addr+len) copied into a new Buffer, checked as `user()` checks. */
  copy(addr: number, len: number): Buffer {
    if (len === 0) return Buffer.alloc(0);
    if (!this.identity(addr, len, false)) return Buffer.from(this.user(addr, len));
    const out = Buffer.allocUnsafe(len);
    // A short copy costs less as a loop than through a view of the source (Buffer.copy makes one).
    if (len <= 64) for (let i = 0; i < len; i++) out[i] = this.bytes[addr + i]!;
    else this.buf.copy(out, 0, addr, addr + len);
    return out;
  }

  /** The guest bytes [addr, addr+len) as text, one character per byte (latin1), checked as `user()` checks. */
  latin1(addr: number, len: number): string {
    if (len === 0) return '';
    if (this.identity(addr, len, false)) return this.buf.toString('latin1', addr, addr + len);
    const bytes = this.user(addr, len);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  }

  /**
   * The guest bytes [addr, addr+len), to write: a view when they lie together in guest memory,
   * otherwise a copy that `flush()` (before the guest runs again) writes back.
   */
  writable(addr: number, len: number): Uint8Array {
    if (this.identity(addr, len, true)) {
      this.markDirty(addr, len);
      return this.bytes.subarray(addr, addr + len);
    }
    const runs = this.runs(addr, len, true);
    for (const [at, n] of runs) this.markDirty(at, n);
    if (runs.length === 1) return this.bytes.subarray(runs[0]![0], runs[0]![0] + len);
    const copy = this.gather(runs, len);
    this.pending.push({ copy, runs });
    return copy;
  }

  /**
   * Hands `each` the guest bytes [addr, addr+len) as views of guest memory, in address order, a
   * piece at a time (above guest RAM, at most PIECE bytes each), for large reads and writes; stops
   * when `each` returns false. Pages past the pieces handed out are not touched, so a large buffer
   * is backed only as far as it is used. A piece the program may not access throws GuestFault.
   */
  forEachPiece(addr: number, len: number, write: boolean, each: (view: Uint8Array) => boolean): void {
    // The kernel's access_ok(): a range that leaves the user half fails before anything is done.
    if (!(addr >= 0 && len >= 0 && addr + len <= TASK_SIZE_MAX && Number.isSafeInteger(addr + len))) throw new GuestFault(addr, len);
    if (this.identity(addr, len, write)) {
      if (write) this.markDirty(addr, len);
      each(this.bytes.subarray(addr, addr + len));
      return;
    }
    for (let at = addr; at < addr + len;) {
      const n = Math.min(addr + len, Math.floor(at / PIECE) * PIECE + PIECE) - at;
      for (const [frame, k] of this.runs(at, n, write)) {
        if (write) this.markDirty(frame, k);
        if (!each(this.bytes.subarray(frame, frame + k))) return;
      }
      at += n;
    }
  }

  private gather(runs: readonly Run[], len: number): Uint8Array {
    const copy = new Uint8Array(len);
    let offset = 0;
    for (const [at, n] of runs) {
      copy.set(this.bytes.subarray(at, at + n), offset);
      offset += n;
    }
    return copy;
  }

  /** Writes back the copies `writable()` handed out; the run loop calls it before entering the guest. */
  flush(): void {
    if (this.pending.length === 0) return;
    for (const { copy, runs } of this.pending) {
      let offset = 0;
      for (const [at, n] of runs) {
        this.bytes.set(copy.subarray(offset, offset + n), at);
        offset += n;
      }
    }
    this.pending = [];
  }

  /**
   * Instruction bytes at `addr`, as ring 3 reads them: any page the program can read, the stub
   * page included (which system calls may not point into); a copy.
   */
  code(addr: number, len: number): Uint8Array {
    return this.gather(this.runs(addr, len, false, PAGE_SIZE), len);
  }

  /** A NUL-terminated string of at most `max` bytes from guest memory. */
  cString(addr: number, max = 4096): string {
    const parts: Uint8Array[] = [];
    for (let at = addr; at < addr + max;) {
      const chunk = this.user(at, Math.min(Math.floor(at / PAGE_SIZE) * PAGE_SIZE + PAGE_SIZE, addr + max) - at);
      const nul = chunk.indexOf(0);
      if (nul >= 0) {
        parts.push(chunk.subarray(0, nul));
        return Buffer.concat(parts).toString('utf8');
      }
      parts.push(chunk);
      at += chunk.length;
    }
    throw new GuestFault(addr, max);
  }

  u32(addr: number): number {
    if (this.identity(addr, 4, false)) return this.view.getUint32(addr, true);
    const b = this.user(addr, 4);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }

  u64(addr: number): number {
    if (this.identity(addr, 8, false)) return this.view.getUint32(addr + 4, true) * 0x1_0000_0000 + this.view.getUint32(addr, true);
    return this.u32(addr + 4) * 0x1_0000_0000 + this.u32(addr);
  }

  /** A signed 64-bit value (lengths and times the kernel reads as signed). */
  i64(addr: number): bigint {
    if (this.identity(addr, 8, false)) return this.view.getBigInt64(addr, true);
    const b = this.user(addr, 8);
    return new DataView(b.buffer, b.byteOffset, 8).getBigInt64(0, true);
  }

  /** A 64-bit value anywhere in guest RAM (physical, no user-range check): for host-owned structures. */
  u64Raw(addr: number): number {
    return this.view.getUint32(addr + 4, true) * 0x1_0000_0000 + this.view.getUint32(addr, true);
  }

  setU64(addr: number, value: number | bigint): void {
    const b = this.writable(addr, 8);
    new DataView(b.buffer, b.byteOffset, 8).setBigUint64(0, BigInt.asUintN(64, BigInt(value)), true);
  }

  setU32(addr: number, value: number): void {
    const b = this.writable(addr, 4);
    new DataView(b.buffer, b.byteOffset, 4).setUint32(0, value >>> 0, true);
  }

  /**
   * Faults in [addr, addr+len) (physical) ahead of a large host write: one system call instead of
   * a page fault per page. Only a speed-up, so a kernel without MADV_POPULATE_WRITE is fine.
   */
  populate(addr: number, len: number): void {
    try {
      madvise(this.mapping, addr, len, MADV_POPULATE_WRITE);
    } catch {
      // Older kernel: the pages fault in one by one as they are written.
    }
  }

  /** Zeroes whole pages (physical); large anonymous ranges go back to the host kernel instead of being written. */
  zeroPages(addr: number, len: number): void {
    if (this.anonymous && len >= 16 * PAGE_SIZE) madvise(this.mapping, addr, len, MADV_DONTNEED);
    else this.bytes.fill(0, addr, addr + len);
    this.markDirty(addr, len);
  }

  /**
   * Makes KVM forget every translation to the frames [addr, addr+len) (physical) that the guest
   * may hold, so that page-table entries the host made stricter or pointed elsewhere take effect:
   * KVM (with shadow paging, as on nested KVM, and with EPT alike) does not see the host write
   * the guest's tables, but it drops its mappings of host pages whose protection changes. Their
   * contents stay.
   */
  invalidate(addr: number, len: number): void {
    if (len <= 0) return;
    mprotect(this.mapping, addr, len, PROT_READ);
    mprotect(this.mapping, addr, len, PROT_READ | PROT_WRITE);
  }

  /** Zeroes whole frames and makes KVM forget every translation to them (see `invalidate`). */
  scrub(addr: number, len: number): void {
    if (len <= 0) return;
    // Dropping anonymous pages does both at once; a private view of a snapshot would read the snapshot back.
    if (this.anonymous) madvise(this.mapping, addr, len, MADV_DONTNEED);
    else {
      this.invalidate(addr, len);
      this.bytes.fill(0, addr, addr + len);
    }
    this.markDirty(addr, len);
  }
}
