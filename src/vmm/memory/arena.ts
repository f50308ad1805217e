// Address-space bookkeeping for brk and mmap inside one region of guest memory: the heap grows
// up from the program's end, anonymous mappings are placed top-down, and freed ranges return to
// a sorted free list. Addresses and lengths here are page aligned.
import { PAGE_SIZE } from '../x86/layout.ts';

interface Range {
  start: number;
  end: number;
}

export interface ArenaState {
  readonly free: readonly Range[];
  readonly brk: number;
}

export class Arena {
  /** Free ranges, sorted by address, never adjacent (merged on free). */
  private free: Range[];
  readonly brkStart: number;
  /** The current program break (not page aligned). */
  brk: number;

  constructor(readonly start: number, readonly end: number) {
    this.free = [{ start, end }];
    this.brkStart = start;
    this.brk = start;
  }

  /** A copy of the bookkeeping, to put back with `restore` (snapshots). */
  save(): ArenaState {
    return { free: this.free.map((r) => ({ ...r })), brk: this.brk };
  }

  restore(state: ArenaState): void {
    this.free = state.free.map((r) => ({ ...r }));
    this.brk = state.brk;
  }

  /** Bytes not handed out, for diagnostics. */
  freeBytes(): number {
    return this.free.reduce((n, r) => n + (r.end - r.start), 0);
  }

  /** Takes `len` bytes from the highest free range that fits; returns its address or -1. */
  allocate(len: number): number {
    for (let i = this.free.length - 1; i >= 0; i--) {
      const r = this.free[i]!;
      if (r.end - r.start >= len) {
        r.end -= len;
        if (r.end === r.start) this.free.splice(i, 1);
        return r.end;
      }
    }
    return -1;
  }

  /** True when all of [addr, addr+len) is free. */
  isFree(addr: number, len: number): boolean {
    return this.free.some((r) => r.start <= addr && addr + len <= r.end);
  }

  /** True when [addr, addr+len) lies inside the arena. */
  contains(addr: number, len: number): boolean {
    return addr >= this.start && addr + len <= this.end;
  }

  /** Marks [addr, addr+len) as used whatever it was (MAP_FIXED semantics). */
  claim(addr: number, len: number): void {
    const end = addr + len;
    const next: Range[] = [];
    for (const r of this.free) {
      if (r.end <= addr || r.start >= end) next.push(r);
      else {
        if (r.start < addr) next.push({ start: r.start, end: addr });
        if (r.end > end) next.push({ start: end, end: r.end });
      }
    }
    this.free = next;
  }

  /** Returns [addr, addr+len) to the free list (parts already free are fine). */
  release(addr: number, len: number): void {
    this.claim(addr, len);
    const end = addr + len;
    let i = this.free.findIndex((r) => r.start > addr);
    if (i < 0) i = this.free.length;
    this.free.splice(i, 0, { start: addr, end });
    // Merge with neighbours.
    const prev = this.free[i - 1];
    const cur = this.free[i]!;
    const nxt = this.free[i + 1];
    if (nxt && nxt.start === cur.end) {
      cur.end = nxt.end;
      this.free.splice(i + 1, 1);
    }
    if (prev && prev.end === cur.start) {
      prev.end = cur.end;
      this.free.splice(i, 1);
    }
  }

  /**
   * Moves the program break (brk(2)): growing needs the pages above the break to be free;
   * shrinking frees them. Returns the break after the call (the old one when growth failed) and
   * the range that was freed, which the caller must zero.
   */
  setBrk(requested: number): { brk: number; freed?: Range } {
    if (requested < this.brkStart) return { brk: this.brk };
    const oldEnd = Math.ceil(this.brk / PAGE_SIZE) * PAGE_SIZE;
    const newEnd = Math.ceil(requested / PAGE_SIZE) * PAGE_SIZE;
    if (newEnd > oldEnd) {
      if (!this.contains(oldEnd, newEnd - oldEnd) || !this.isFree(oldEnd, newEnd - oldEnd)) return { brk: this.brk };
      this.claim(oldEnd, newEnd - oldEnd);
    }
    this.brk = requested;
    if (newEnd < oldEnd) {
      this.release(newEnd, oldEnd - newEnd);
      return { brk: requested, freed: { start: newEnd, end: oldEnd } };
    }
    return { brk: requested };
  }
}
