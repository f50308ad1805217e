// The guest's address space: its mappings (vmas.ts), the page-table entries that enforce them,
// and where their memory comes from. Guest RAM is one pool of frames (the Arena): inside guest
// RAM an address is its own frame (identity), which is where the program, its heap, its stack
// and small mappings live; above guest RAM, mappings are address space only (reservations, large
// or hinted mappings) and their pages get free frames when first touched, by the program (a page
// fault the run loop hands to `faultIn`) or by the host on its behalf. A frame lent to such a
// page, or used for a page table, leaves the identity map, so the program reaches it only through
// the page that owns it. Free frames stay identity-mapped read-write, as all of the arena always
// was. Whenever an entry becomes stricter (unmapped, read-only, lent away), KVM must be told
// (`GuestMemory.invalidate`); every entry changed since the last snapshot is invalidated again
// when a reset puts the tables back.
import { type Arena } from './arena.ts';
import type { GuestMemory } from './guest-memory.ts';
import { type Layout, PAGE_SIZE } from '../x86/layout.ts';
import { ensureEntry, entryFrame, entryOrSkip, identityEntry, leafEntry, type PageFlags, PTE_KEPT, PTE_P, PTE_RW, PTE_US, USER_RW, walkEntry } from '../x86/paging.ts';
import { MAX_MAP_COUNT, type Vma, VmaList } from './vmas.ts';

export const PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
/** Touching a page above guest RAM backs the 64 KiB around it; touching right after what is backed, the rest of its 2 MiB. */
const CHUNK = 64 * 1024;
const LARGE_CHUNK = 2 * 1024 * 1024;
const NX_HIGH = 0x8000_0000;

/** What a snapshot keeps of the address space (the Arena is kept beside it). */
export interface AddressSpaceState {
  readonly vmas: readonly Vma[];
}

/** Physical ranges, coalesced as they are added, collapsing into one span past a bound. */
class FrameRanges {
  private runs: Array<[number, number]> = [];

  add(at: number, len: number): void {
    const last = this.runs[this.runs.length - 1];
    if (last && last[1] === at) last[1] = at + len;
    else this.runs.push([at, at + len]);
    if (this.runs.length > 256) {
      const lo = Math.min(...this.runs.map((r) => r[0]));
      const hi = Math.max(...this.runs.map((r) => r[1]));
      this.runs = [[lo, hi]];
    }
  }

  get empty(): boolean {
    return this.runs.length === 0;
  }

  /** Hands each range to `each` and forgets them. */
  drain(each: (at: number, len: number) => void): void {
    const runs = this.runs;
    this.runs = [];
    for (const [lo, hi] of runs) each(lo, hi - lo);
  }
}

/** Page flags for `prot`, or undefined for PROT_NONE (the page keeps its frame, without access). */
export function protFlags(prot: number): PageFlags | undefined {
  if ((prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) === 0) return undefined;
  return { user: true, write: (prot & PROT_WRITE) !== 0, exec: (prot & PROT_EXEC) !== 0 };
}

export class AddressSpace {
  readonly vmas = new VmaList();
  /** Frames whose entries changed since the last snapshot (a reset invalidates them again). */
  private sinceSnapshot = new FrameRanges();
  /** Frames whose entries became stricter in the current operation. */
  private stricter = new FrameRanges();
  /** Set by every change to the mappings; lets a reset skip putting back an untouched list. */
  private changed = false;
  /** Set when a page could not be backed for lack of free frames. */
  outOfMemory = false;

  constructor(private readonly mem: GuestMemory, private readonly layout: Layout, private readonly arena: Arena) {
    mem.faultIn = (page, write) => this.faultIn(page, write ? 'write' : 'read');
  }

  /** True for addresses inside guest RAM, where each page is its own frame. */
  isIdentity(addr: number): boolean {
    return addr < this.layout.memorySize;
  }

  // --- page-table entries ---------------------------------------------------------------------

  /**
   * Writes the leaf entry at `at` (physical), noting what KVM must forget: when the guest could
   * have used the old entry in a way the new one forbids, its frame goes on the stricter list
   * (unless the caller makes KVM forget the frame itself: `forgotten`); when the new entry gives
   * access, its frame goes on the snapshot list, since a reset takes that access away again.
   */
  private setEntry(at: number, low: number, high: number, forgotten = false): void {
    const words = this.mem.words;
    const oldLow = words[at >>> 2]!;
    const oldHigh = words[(at >>> 2) + 1]!;
    if (oldLow === low && oldHigh === high) return;
    const oldFrame = entryFrame(oldLow, oldHigh);
    if ((oldLow & PTE_P) !== 0 && !forgotten) {
      const looser = (low & PTE_P) !== 0 && entryFrame(low, high) === oldFrame &&
        ((oldLow & PTE_RW) === 0 || (low & PTE_RW) !== 0) && ((oldLow & PTE_US) === 0 || (low & PTE_US) !== 0) &&
        ((oldHigh & NX_HIGH) !== 0 || (high & NX_HIGH) === 0);
      if (!looser) this.stricter.add(oldFrame, PAGE_SIZE);
    }
    if ((low & PTE_P) !== 0) this.sinceSnapshot.add(entryFrame(low, high), PAGE_SIZE);
    words[at >>> 2] = low;
    words[(at >>> 2) + 1] = high;
    this.mem.markDirty(at, 8);
  }

  /** Tells KVM to forget the frames whose entries became stricter. */
  private settle(): void {
    this.stricter.drain((at, len) => this.mem.invalidate(at, len));
  }

  /**
   * Sets the identity entries of [start, end): mapped with `flags`, kept without access
   * (undefined), or absent (null). `forgotten`: the caller makes KVM forget these frames.
   */
  private setIdentityRange(start: number, end: number, flags: PageFlags | undefined | null, forgotten = false): void {
    // Identity frames lie below 4 GiB: an entry's high half is only its NX bit, and its low half
    // is the frame plus the same flag bits for every page of the range.
    const [bits, high] = flags === null ? [0, 0] : leafEntry(0, flags);
    const words = this.mem.words;
    for (let page = start; page < end; page += PAGE_SIZE) {
      const at = identityEntry(this.layout, page);
      const low = flags === null ? 0 : (page + bits) >>> 0;
      if (words[at >>> 2] !== low || words[(at >>> 2) + 1] !== high) this.setEntry(at, low, high, forgotten);
    }
  }

  /** Leaf entry of `page` above guest RAM, or -1 while no table holds it. */
  private highEntry(page: number): number {
    return walkEntry(this.mem.words, page);
  }

  /**
   * Calls `each(page, entry)` for every page of [start, end) above guest RAM that has a frame
   * (mapped or kept), skipping the parts no table covers.
   */
  private forEachBacked(start: number, end: number, each: (page: number, entry: number) => void): void {
    const words = this.mem.words;
    for (let page = start; page < end;) {
      const at = entryOrSkip(words, page);
      if (at < 0) {
        page = -at;
        continue;
      }
      if ((words[at >>> 2]! & (PTE_P | PTE_KEPT)) !== 0) each(page, at);
      page += PAGE_SIZE;
    }
  }

  /**
   * Takes `len` bytes of free frames (contiguous) out of the arena and the identity map, zeroed;
   * -1 when there is no such run.
   */
  private takeFrames(len: number): number {
    const at = this.arena.allocate(len);
    if (at < 0) return -1;
    // Zeroing drops KVM's translations of the frames as well.
    this.setIdentityRange(at, at + len, null, true);
    this.mem.scrub(at, len);
    return at;
  }

  /** Gives frames back to the arena and the identity map, zeroed. */
  private returnFrames(at: number, len: number): void {
    this.mem.scrub(at, len);
    this.setIdentityRange(at, at + len, USER_RW);
    this.arena.release(at, len);
  }

  // --- backing pages above guest RAM ----------------------------------------------------------

  /** True when the page above guest RAM has a frame (mapped or kept). */
  private backed(page: number): boolean {
    const at = this.highEntry(page);
    return at >= 0 && (this.mem.words[at >>> 2]! & (PTE_P | PTE_KEPT)) !== 0;
  }

  /**
   * Gives every page of [start, end) above guest RAM that has no frame one, with the entry `prot`
   * asks for; false when frames ran out before all had one.
   */
  private back(start: number, end: number, prot: number): boolean {
    const flags = protFlags(prot);
    for (let page = start; page < end;) {
      if (this.backed(page)) {
        page += PAGE_SIZE;
        continue;
      }
      let runEnd = page + PAGE_SIZE;
      while (runEnd < end && !this.backed(runEnd)) runEnd += PAGE_SIZE;
      // As much of the run as one contiguous piece of free frames holds, halving until it fits.
      let len = runEnd - page;
      let frames = this.takeFrames(len);
      while (frames < 0 && len > PAGE_SIZE) {
        len = Math.max(PAGE_SIZE, Math.floor(len / 2 / PAGE_SIZE) * PAGE_SIZE);
        frames = this.takeFrames(len);
      }
      if (frames < 0) return false;
      for (let i = 0; i < len; i += PAGE_SIZE) {
        const at = ensureEntry(this.mem, page + i, () => this.takeFrames(PAGE_SIZE));
        if (at < 0) {
          this.returnFrames(frames + i, len - i);
          return false;
        }
        const [low, high] = leafEntry(frames + i, flags);
        this.setEntry(at, low, high);
      }
      page += len;
    }
    return true;
  }

  /** Takes the frames of the pages of [start, end) above guest RAM back; the pages fault in afresh. */
  private unback(start: number, end: number): void {
    const words = this.mem.words;
    // Frames go back in runs, so that one scrub zeroes and forgets each run.
    let run: [number, number] | undefined;
    const flush = (): void => {
      if (run) this.returnFrames(run[0], run[1] - run[0]);
      run = undefined;
    };
    this.forEachBacked(start, end, (_page, at) => {
      const frame = entryFrame(words[at >>> 2]!, words[(at >>> 2) + 1]!);
      this.setEntry(at, 0, 0, true);
      if (run && run[1] === frame) run[1] += PAGE_SIZE;
      else {
        flush();
        run = [frame, frame + PAGE_SIZE];
      }
    });
    flush();
  }

  /**
   * A page fault (or a host access) at `page` above guest RAM: backs it, and a chunk around it,
   * when a mapping there allows `access`. False when the access is not allowed or memory ran out
   * (`outOfMemory` tells which).
   */
  faultIn(page: number, access: 'read' | 'write' | 'exec'): boolean {
    const vma = this.vmas.find(page);
    if (!vma || vma.kind !== 'demand' || this.backed(page)) return false;
    const need = access === 'write' ? PROT_WRITE : access === 'exec' ? PROT_EXEC : PROT_READ | PROT_WRITE | PROT_EXEC;
    if ((vma.prot & need) === 0) return false;
    const size = this.backed(Math.floor(page / CHUNK) * CHUNK - PAGE_SIZE) ? LARGE_CHUNK : CHUNK;
    const start = Math.max(vma.start, Math.floor(page / size) * size);
    const end = Math.min(vma.end, Math.floor(page / size) * size + size);
    this.changed = true;
    const ok = this.back(start, end, vma.prot) || this.back(page, page + PAGE_SIZE, vma.prot);
    this.settle();
    if (!ok) this.outOfMemory = true;
    return ok;
  }

  // --- mappings -------------------------------------------------------------------------------

  /**
   * Maps [start, end) with `prot` as `kind`, replacing nothing (the caller cleared the range):
   * identity pages must be claimed in the arena already; demand pages are backed now when `eager`.
   * False when frames for an eager mapping ran out (the mapping is then undone).
   */
  map(vma: Vma, eager: boolean): boolean {
    this.changed = true;
    this.vmas.insert(vma);
    let ok = true;
    if (vma.kind === 'identity') this.setIdentityRange(vma.start, vma.end, protFlags(vma.prot));
    else if (eager && !this.back(vma.start, vma.end, vma.prot)) ok = false;
    this.settle();
    if (!ok) this.unmap(vma.start, vma.end);
    return ok;
  }

  /** Removes every mapping in [start, end): their frames go back to the arena, zeroed. */
  unmap(start: number, end: number): void {
    this.changed = true;
    for (const piece of this.vmas.overlapping(start, end)) {
      if (piece.kind === 'demand') {
        this.unback(piece.start, piece.end);
        continue;
      }
      // Identity pages: inside the arena they become free frames again; elsewhere (the program, the stack) they stay unused.
      const inArena = { start: Math.max(piece.start, this.arena.start), end: Math.min(piece.end, this.arena.end) };
      if (inArena.start < inArena.end) {
        this.mem.zeroPages(inArena.start, inArena.end - inArena.start);
        this.setIdentityRange(inArena.start, inArena.end, USER_RW);
        this.arena.release(inArena.start, inArena.end - inArena.start);
      }
      if (piece.start < inArena.start) this.setIdentityRange(piece.start, Math.min(piece.end, inArena.start), null);
      if (piece.end > inArena.end) this.setIdentityRange(Math.max(piece.start, inArena.end), piece.end, null);
    }
    this.vmas.cut(start, end);
    this.settle();
  }

  /** Changes the protection of [start, end), which must lie inside one mapping. */
  protect(start: number, end: number, prot: number): void {
    const vma = this.vmas.find(start);
    if (!vma || vma.end < end) throw new Error('protect: range not inside one mapping');
    this.changed = true;
    this.vmas.cut(start, end);
    this.vmas.insert({ ...vma, start, end, prot });
    if (vma.kind === 'identity') this.setIdentityRange(start, end, protFlags(prot));
    else {
      const flags = protFlags(prot);
      const words = this.mem.words;
      this.forEachBacked(start, end, (_page, at) => {
        const [low, high] = leafEntry(entryFrame(words[at >>> 2]!, words[(at >>> 2) + 1]!), flags);
        this.setEntry(at, low, high);
      });
    }
    this.settle();
  }

  /** MADV_DONTNEED: the pages of [start, end) (all mapped) read back zeros; above guest RAM they lose their frames. */
  discard(start: number, end: number): void {
    this.changed = true;
    for (const piece of this.vmas.overlapping(start, end)) {
      if (piece.kind === 'demand') this.unback(piece.start, piece.end);
      else this.mem.zeroPages(piece.start, piece.end - piece.start);
    }
    this.settle();
  }

  /**
   * The frames behind [start, start+len) of one mapping, backed already, as views in address
   * order: for the host filling a mapping (file contents), whatever its protection.
   */
  frames(start: number, len: number): Uint8Array[] {
    const views: Uint8Array[] = [];
    const words = this.mem.words;
    for (let page = Math.floor(start / PAGE_SIZE) * PAGE_SIZE; page < start + len; page += PAGE_SIZE) {
      const at = this.isIdentity(page) ? identityEntry(this.layout, page) : this.highEntry(page);
      if (at < 0 || (words[at >>> 2]! & (PTE_P | PTE_KEPT)) === 0) throw new Error(`frames: page 0x${page.toString(16)} is not backed`);
      const from = Math.max(start, page);
      const frame = entryFrame(words[at >>> 2]!, words[(at >>> 2) + 1]!) + (from - page);
      const n = Math.min(start + len, page + PAGE_SIZE) - from;
      this.mem.markDirty(frame, n);
      const last = views[views.length - 1];
      if (last && last.byteOffset + last.length === frame) views[views.length - 1] = this.mem.bytes.subarray(last.byteOffset, frame + n);
      else views.push(this.mem.bytes.subarray(frame, frame + n));
    }
    return views;
  }

  /** True when every page of [start, end) is mapped. */
  mapped(start: number, end: number): boolean {
    let at = start;
    for (const piece of this.vmas.overlapping(start, end)) {
      if (piece.start !== at) return false;
      at = piece.end;
    }
    return at >= end;
  }

  /** Mappings after cutting [start, end) out of them, to hold against MAX_MAP_COUNT. */
  wouldExceedCount(start: number, end: number, adding = 0): boolean {
    return this.vmas.countAfterCut(start, end) + adding > MAX_MAP_COUNT;
  }

  // --- snapshots ------------------------------------------------------------------------------

  /** The state a snapshot keeps; from here on, changes are counted against it. */
  save(): AddressSpaceState {
    this.sinceSnapshot = new FrameRanges();
    this.changed = false;
    return { vmas: this.vmas.save() };
  }

  /**
   * Back to `state`, after the page tables went back with the rest of memory: KVM forgets every
   * frame whose entry changed since the snapshot (`fresh`: a new VM, which has nothing to forget).
   */
  restore(state: AddressSpaceState, fresh: boolean): void {
    if (fresh) this.sinceSnapshot = new FrameRanges();
    else this.sinceSnapshot.drain((at, len) => this.mem.invalidate(at, len));
    this.outOfMemory = false;
    if (fresh || this.changed) this.vmas.restore(state.vmas);
    this.changed = false;
  }
}
