// Frozen program state and the reset that returns to it. A snapshot is guest memory in a memfd
// (new instances map it copy-on-write, so making one copies nothing) plus the vCPU registers,
// FPU/AVX state and the host-side process state. A reset copies back only the pages dirtied since
// the snapshot: KVM's dirty log (manual protect) names the guest's writes, GuestMemory the host's.
import koffi from 'koffi';
import { KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE } from '../kvm/constants.ts';
import { check, close, type Mapping, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, mmap, munmap, PROT_READ, PROT_WRITE } from '../kvm/libc.ts';
import type { Vm } from '../kvm/vm.ts';
import type { LoadedProgram } from './elf.ts';
import { type Layout, PAGE_SIZE } from './layout.ts';
import type { Machine, PendingCall } from './machine.ts';
import type { GuestMemory } from './memory.ts';
import type { ArenaState } from './arena.ts';
import type { FileTableState } from './syscalls/files.ts';

const libc = koffi.load('libc.so.6');
const memfdCreate = libc.func('int memfd_create(const char *name, unsigned int flags)') as (name: string, flags: number) => number;
const ftruncate = libc.func('int ftruncate(int fd, long length)') as (fd: number, length: number) => number;
const MFD_CLOEXEC = 1;
const SLOT = 0;

/** Pages dirtied in two resets running stay writable (see DirtyLog); at most this many. */
const HOT_PAGES_MAX = 32;
/** Every so many resets the hot set is re-protected, so pages that cooled down drop out. */
const HOT_DECAY_RESETS = 1024;

/**
 * KVM's dirty log for the one memory slot, in a bitmap the kernel writes (so not on the JS heap).
 *
 * With manual protect, a dirty bit stays set (and the page writable) until we clear it. Clearing
 * re-protects the page, and the guest's next write to it costs a write-protection fault — a VM
 * exit, dear on nested KVM. Pages a program writes in every request (its stack, the response, the
 * PRNG state) are therefore left unprotected ("hot"): they show up dirty at every reset and are
 * copied back every time, which is far cheaper than a fault per page per request.
 */
export class DirtyLog {
  private readonly bitmap: Mapping;
  private readonly words: Uint32Array;
  private readonly pages: number;
  /** Pages dirty at the previous reset, and the hot pages (left unprotected), as bitmaps. */
  private readonly previous: Uint32Array;
  private readonly hot: Uint32Array;
  private hotCount = 0;
  private resets = 0;

  constructor(private readonly vm: Vm, memorySize: number) {
    vm.enableCap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, [BigInt(KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)]);
    this.pages = memorySize / PAGE_SIZE;
    this.bitmap = mmap(Math.max(PAGE_SIZE, this.pages / 8), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    this.words = new Uint32Array(this.bitmap.buffer, 0, this.pages / 32);
    this.previous = new Uint32Array(this.pages / 32);
    this.hot = new Uint32Array(this.pages / 32);
  }

  /**
   * Calls `each(page)` for every page written since the last call, by the guest (KVM's log) or by
   * the host (GuestMemory's record, then cleared), and re-protects the guest's pages that are not
   * hot. `keepHot` false re-protects everything (used when taking a snapshot).
   */
  forEachDirty(mem: GuestMemory, each: (page: number) => void, keepHot = true): number {
    this.vm.getDirtyLog(SLOT, this.bitmap.address);
    const kvm = this.words;
    const host = mem.hostDirty;
    const decay = !keepHot || ++this.resets % HOT_DECAY_RESETS === 0;
    if (decay) {
      this.hot.fill(0);
      this.hotCount = 0;
    }
    let count = 0;
    let protect = false;
    for (let w = 0; w < kvm.length; w++) {
      const guest = kvm[w]!;
      let bits = guest | host[w]!;
      if (bits === 0) {
        this.previous[w] = 0;
        continue;
      }
      host[w] = 0;
      if (keepHot && guest !== 0) {
        // Promote pages dirty twice in a row, while there is room.
        let fresh = guest & this.previous[w]! & ~this.hot[w]!;
        while (fresh !== 0 && this.hotCount < HOT_PAGES_MAX) {
          const bit = fresh & -fresh;
          fresh &= ~bit;
          this.hot[w]! |= bit;
          this.hotCount++;
        }
      }
      this.previous[w] = guest;
      // What stays in the bitmap is what KVM_CLEAR_DIRTY_LOG re-protects.
      kvm[w] = guest & ~this.hot[w]!;
      if (kvm[w] !== 0) protect = true;
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits);
        bits &= ~(1 << bit);
        each(w * 32 + bit);
        count++;
      }
    }
    if (protect) this.vm.clearDirtyLog(SLOT, 0, this.pages, this.bitmap.address);
    return count;
  }

  /** Copies every dirtied page back from `snapshot`; returns how many there were. */
  restorePages(mem: GuestMemory, snapshot: Snapshot): number {
    const src = snapshot.bytes;
    const dst = mem.bytes;
    return this.forEachDirty(mem, (page) => {
      const at = page * PAGE_SIZE;
      dst.set(src.subarray(at, at + PAGE_SIZE), at);
    });
  }

  close(): void {
    munmap(this.bitmap);
  }
}

export class Snapshot {
  private readonly fd: number;
  private readonly shared: Mapping;
  /** The frozen guest memory (read it; never write it). */
  readonly bytes: Uint8Array;
  readonly layout: Layout;
  readonly program: LoadedProgram;
  readonly userStart: number;
  readonly userEnd: number;
  readonly allowRead: readonly string[];
  readonly regs: Uint8Array;
  readonly sregs: Buffer;
  readonly xsave: Buffer;
  readonly host: { arena: ArenaState; files: FileTableState; fsBase: bigint; pending: PendingCall | undefined };
  /** Pages the snapshot holds (the rest are zero). */
  readonly pageCount: number;

  /**
   * Freezes `machine`, which must be resettable and stopped (after boot, or yielded). The machine
   * itself then stands exactly at the snapshot and can go on serving as an instance.
   */
  constructor(machine: Machine) {
    const { mem, layout, vcpu } = machine;
    if (!machine.dirtyLog) throw new Error('snapshot of a machine that does not track dirty pages');
    this.layout = layout;
    this.program = machine.program;
    this.userStart = mem.userStart;
    this.userEnd = mem.userEnd;
    this.allowRead = machine.files.allowRead;
    this.fd = check('memfd_create', memfdCreate('tinyedge-snapshot', MFD_CLOEXEC));
    try {
      check('ftruncate', ftruncate(this.fd, layout.memorySize));
      this.shared = mmap(layout.memorySize, PROT_READ | PROT_WRITE, MAP_SHARED, this.fd, 0);
    } catch (err) {
      close(this.fd);
      throw err;
    }
    this.bytes = new Uint8Array(this.shared.buffer);
    // Everything the guest or the host ever wrote since boot is dirty; the rest is still zero.
    const src = mem.bytes;
    this.pageCount = machine.dirtyLog.forEachDirty(mem, (page) => {
      const at = page * PAGE_SIZE;
      this.bytes.set(src.subarray(at, at + PAGE_SIZE), at);
    }, false);
    this.regs = Uint8Array.from(vcpu.regsBytes());
    this.sregs = vcpu.getSregs();
    this.xsave = vcpu.getXsave();
    this.host = machine.hostState();
  }

  /** A private (copy-on-write) mapping of the snapshot memory, to back a new instance. */
  privateMapping(): Mapping {
    return mmap(this.layout.memorySize, PROT_READ | PROT_WRITE, MAP_PRIVATE, this.fd, 0);
  }

  close(): void {
    munmap(this.shared);
    close(this.fd);
  }
}
