// KVM's dirty log for a request VM's memory slot, plus the host's own writes: which pages a
// reset must copy back from the snapshot.
import { KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE } from '../../kvm/constants.ts';
import { type Mapping, MAP_ANONYMOUS, MAP_PRIVATE, mmap, munmap, PROT_READ, PROT_WRITE } from '../../kvm/libc.ts';
import type { Vm } from '../../kvm/vm.ts';
import { PAGE_SIZE } from '../x86/layout.ts';
import type { GuestMemory } from './guest-memory.ts';

const SLOT = 0;

/** The frozen memory a reset copies pages back from. */
export interface PageSource {
  readonly bytes: Uint8Array;
}

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
        // Lowest bit first, so pages come in ascending order (callers batch runs).
        const lowest = bits & -bits;
        bits ^= lowest;
        each(w * 32 + 31 - Math.clz32(lowest));
        count++;
      }
    }
    if (protect) this.vm.clearDirtyLog(SLOT, 0, this.pages, this.bitmap.address);
    return count;
  }

  /**
   * Pages written since the last `forEachDirty` (the last reset), by the guest or the host,
   * re-protecting nothing: a persistent instance's growth between resets. The hot pages (at most
   * HOT_PAGES_MAX), left writable, count whether or not they were written since.
   */
  count(mem: GuestMemory): number {
    this.vm.getDirtyLog(SLOT, this.bitmap.address);
    const kvm = this.words;
    const host = mem.hostDirty;
    let n = 0;
    for (let w = 0; w < kvm.length; w++) {
      let bits = (kvm[w]! | host[w]!) >>> 0;
      while (bits !== 0) {
        bits &= bits - 1;
        n++;
      }
    }
    return n;
  }

  /**
   * Forgets everything logged so far (for a shell given new memory contents): the next
   * `forEachDirty` sees only writes made from now on, and every page is write-protected again.
   */
  forget(): void {
    this.vm.getDirtyLog(SLOT, this.bitmap.address);
    this.vm.clearDirtyLog(SLOT, 0, this.pages, this.bitmap.address);
    this.previous.fill(0);
    this.hot.fill(0);
    this.hotCount = 0;
    this.resets = 0;
  }

  /** Copies every dirtied page back from `snapshot`; returns how many there were. */
  restorePages(mem: GuestMemory, snapshot: PageSource): number {
    const src = snapshot.bytes;
    const dst = mem.bytes;
    // Pages come in ascending order: neighbours are copied as one run (one view, one copy).
    let runStart = -1;
    let runEnd = -1;
    const flush = (): void => {
      if (runStart >= 0) dst.set(src.subarray(runStart * PAGE_SIZE, runEnd * PAGE_SIZE), runStart * PAGE_SIZE);
    };
    const count = this.forEachDirty(mem, (page) => {
      if (page === runEnd) {
        runEnd++;
        return;
      }
      flush();
      runStart = page;
      runEnd = page + 1;
    });
    flush();
    return count;
  }

  close(): void {
    munmap(this.bitmap);
  }
}
