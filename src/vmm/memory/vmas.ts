// The guest's mappings as the kernel's VMAs: sorted, non-overlapping ranges of virtual addresses,
// each with its protection and how it is backed. Splitting, replacing and finding gaps happen
// here; what the page tables say is the address space's business (address-space.ts).

/**
 * `identity`: inside guest RAM, each page backed by the frame of the same address, from the
 * start. `demand`: above guest RAM, pages backed by free frames when first touched.
 */
export type VmaKind = 'identity' | 'demand';

export interface Vma {
  start: number;
  end: number;
  /** PROT_READ | PROT_WRITE | PROT_EXEC bits. */
  prot: number;
  kind: VmaKind;
  /** What /proc/self/maps would name: the program, [heap], [stack], a file, or '' (anonymous). */
  name: string;
  /** The program's own segments, which alone may be executable without the program's permission to map executable memory. */
  program?: boolean;
}

/** The most mappings a program may have, as the kernel's default vm.max_map_count. */
export const MAX_MAP_COUNT = 65530;

export class VmaList {
  private list: Vma[] = [];

  get count(): number {
    return this.list.length;
  }

  all(): readonly Vma[] {
    return this.list;
  }

  /** A copy for a snapshot. */
  save(): Vma[] {
    return this.list.map((v) => ({ ...v }));
  }

  restore(state: readonly Vma[]): void {
    this.list = state.map((v) => ({ ...v }));
  }

  /** Index of the first mapping that ends after `addr`. */
  private firstEndingAfter(addr: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.list[mid]!.end <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The mapping that contains `addr`, if any. */
  find(addr: number): Vma | undefined {
    const v = this.list[this.firstEndingAfter(addr)];
    return v && v.start <= addr ? v : undefined;
  }

  /** The parts of mappings inside [start, end), clipped to it, in order (copies). */
  overlapping(start: number, end: number): Vma[] {
    const out: Vma[] = [];
    for (let i = this.firstEndingAfter(start); i < this.list.length && this.list[i]!.start < end; i++) {
      const v = this.list[i]!;
      out.push({ ...v, start: Math.max(v.start, start), end: Math.min(v.end, end) });
    }
    return out;
  }

  /** True when no mapping touches [start, end). */
  isFree(start: number, end: number): boolean {
    const v = this.list[this.firstEndingAfter(start)];
    return !v || v.start >= end;
  }

  /** How many mappings there would be after cutting [start, end) out (a cut inside one mapping splits it). */
  countAfterCut(start: number, end: number): number {
    const i = this.firstEndingAfter(start);
    const v = this.list[i];
    return v && v.start < start && v.end > end ? this.list.length + 1 : this.list.length;
  }

  /** Removes [start, end) from every mapping, splitting those it cuts through. */
  cut(start: number, end: number): void {
    const i = this.firstEndingAfter(start);
    let j = i;
    const keep: Vma[] = [];
    for (; j < this.list.length && this.list[j]!.start < end; j++) {
      const v = this.list[j]!;
      if (v.start < start) keep.push({ ...v, end: start });
      if (v.end > end) keep.push({ ...v, start: end });
    }
    this.list.splice(i, j - i, ...keep);
  }

  /** Inserts `vma`, whose range must be free, merging it with equal neighbours. */
  insert(vma: Vma): void {
    const i = this.firstEndingAfter(vma.start);
    const item = { ...vma };
    const prev = this.list[i - 1];
    const next = this.list[i];
    if (prev && prev.end === item.start && same(prev, item)) {
      prev.end = item.end;
      if (next && next.start === prev.end && same(prev, next)) {
        prev.end = next.end;
        this.list.splice(i, 1);
      }
      return;
    }
    if (next && next.start === item.end && same(next, item)) {
      next.start = item.start;
      return;
    }
    this.list.splice(i, 0, item);
  }

  /**
   * The highest `len`-byte gap inside [floor, ceiling), or -1. Gaps are searched from the top
   * down, as the kernel places mappings below its mmap base.
   */
  highestGap(len: number, floor: number, ceiling: number): number {
    // Mappings that start below the ceiling, from the highest down; the gap above each is checked.
    let k = this.firstEndingAfter(ceiling);
    if (this.list[k] && this.list[k]!.start < ceiling) k++;
    let top = ceiling;
    for (let i = k - 1; i >= -1; i--) {
      const bottom = i >= 0 ? Math.max(this.list[i]!.end, floor) : floor;
      if (top - bottom >= len) return top - len;
      if (i < 0) return -1;
      top = Math.min(top, this.list[i]!.start);
      if (top - floor < len) return -1;
    }
    return -1;
  }
}

const same = (a: Vma, b: Vma): boolean => a.prot === b.prot && a.kind === b.kind && a.name === b.name && a.program === b.program;
