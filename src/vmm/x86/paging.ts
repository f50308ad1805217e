// 4-level page tables, written by the host into guest RAM. Guest RAM itself is identity-mapped
// (virtual = physical) through tables built at boot at the top of RAM; addresses above it are
// mapped through tables allocated from guest RAM when first needed. Leaf entries carry the
// permissions; Accessed and Dirty are preset so the CPU never writes the tables (which would dirty
// pages a reset then has to copy back).
import { type Layout, PAGE_SIZE, PD_ADDR, PDPT_ADDR, PML4_ADDR } from './layout.ts';
import type { GuestMemory } from '../memory/guest-memory.ts';

export const PTE_P = 0x1;
export const PTE_RW = 0x2;
export const PTE_US = 0x4;
const A = 0x20;
const D = 0x40;
/**
 * A software bit (the CPU ignores bits 9–11, and every bit of an entry whose P bit is clear): the
 * page keeps its frame, named by the entry, but may not be accessed (PROT_NONE).
 */
export const PTE_KEPT = 0x200;
/** NX is bit 63: bit 31 of the high 32-bit half. */
const NX_HIGH = 0x8000_0000;
/** Bits 12–31 of an entry: the low part of its frame's address. */
const FRAME_LOW = 0xffff_f000;
/** Bits 32–51: the high part. */
const FRAME_HIGH = 0x000f_ffff;
const UPPER = PTE_P | PTE_RW | PTE_US | A;
const GiB = 1024 * 1024 * 1024;

export interface PageFlags {
  write: boolean;
  exec: boolean;
  user: boolean;
}

export const USER_RW: PageFlags = { write: true, exec: false, user: true };
export const KERNEL_RW: PageFlags = { write: true, exec: false, user: false };
/** The stub page: ring 3 must be able to run the syscall entry on KVMs where `syscall` stays in ring 3. */
export const STUB_RX: PageFlags = { write: false, exec: true, user: true };

/** The two 32-bit halves of a leaf entry for `frame`: mapped with `flags`, or kept without access (`undefined`). */
export function leafEntry(frame: number, flags: PageFlags | undefined): [number, number] {
  const high = Math.floor(frame / 0x1_0000_0000);
  if (!flags) return [((frame % 0x1_0000_0000) | PTE_KEPT) >>> 0, high];
  const low = PTE_P | A | D | (flags.write ? PTE_RW : 0) | (flags.user ? PTE_US : 0);
  return [((frame % 0x1_0000_0000) + low) >>> 0, (high | (flags.exec ? 0 : NX_HIGH)) >>> 0];
}

/** The frame an entry names (present or kept). */
export function entryFrame(low: number, high: number): number {
  return (high & FRAME_HIGH) * 0x1_0000_0000 + (low & FRAME_LOW);
}

function writeEntry(mem: GuestMemory, at: number, addr: number, low: number, nx: boolean): void {
  mem.view.setUint32(at, (addr + low) >>> 0, true);
  mem.view.setUint32(at + 4, Math.floor(addr / 0x1_0000_0000) | (nx ? NX_HIGH : 0), true);
}

/** Builds PML4 → PDPT → PDs → PTs covering all of guest RAM, every leaf not present. */
export function buildPageTables(mem: GuestMemory, layout: Layout): void {
  const gib = Math.ceil(layout.memorySize / GiB);
  mem.bytes.fill(0, PML4_ADDR, PD_ADDR + gib * PAGE_SIZE);
  mem.bytes.fill(0, layout.pageTablesAddr, layout.memorySize);
  mem.markDirty(PML4_ADDR, PD_ADDR + gib * PAGE_SIZE - PML4_ADDR);
  mem.markDirty(layout.pageTablesAddr, layout.memorySize - layout.pageTablesAddr);
  writeEntry(mem, PML4_ADDR, PDPT_ADDR, UPPER, false);
  for (let g = 0; g < gib; g++) writeEntry(mem, PDPT_ADDR + g * 8, PD_ADDR + g * PAGE_SIZE, UPPER, false);
  const tables = layout.memorySize / (2 * 1024 * 1024);
  for (let t = 0; t < tables; t++) {
    writeEntry(mem, PD_ADDR + t * 8, layout.pageTablesAddr + t * PAGE_SIZE, UPPER, false);
  }
}

/** Address of the leaf entry that maps `addr` inside guest RAM (the identity map). */
export function identityEntry(layout: Layout, addr: number): number {
  return layout.pageTablesAddr + Math.floor(addr / PAGE_SIZE) * 8;
}

/**
 * Sets the identity entries of [addr, addr+len) (page aligned, inside guest RAM): mapped with
 * `flags`, kept without access (`undefined`), or absent (`null`: the frame is not the page's).
 */
export function setIdentity(mem: GuestMemory, layout: Layout, addr: number, len: number, flags: PageFlags | undefined | null): void {
  const first = identityEntry(layout, addr);
  const count = len / PAGE_SIZE;
  // Thousands of entries per boot: write 32-bit halves straight into an aligned view (guest
  // memory is little-endian, like the host), not through DataView calls.
  const words = new Uint32Array(mem.bytes.buffer, first, count * 2);
  const firstPage = addr / PAGE_SIZE;
  for (let i = 0; i < count; i++) {
    const [low, high] = flags === null ? [0, 0] : leafEntry((firstPage + i) * PAGE_SIZE, flags);
    words[2 * i] = low;
    words[2 * i + 1] = high;
  }
  mem.markDirty(first, count * 8);
}

/** Maps [addr, addr+len) (page aligned, inside guest RAM) to itself with `flags`. */
export function mapPages(mem: GuestMemory, layout: Layout, addr: number, len: number, flags: PageFlags): void {
  setIdentity(mem, layout, addr, len, flags);
}

/** Index of `addr`'s entry in the table of `level` (4: PML4 … 1: page table). */
const indexAt = (addr: number, level: number): number => Math.floor(addr / 2 ** (12 + 9 * (level - 1))) % 512;

/**
 * Address of the leaf entry for virtual `addr` reached from the PML4, or -1 where a table on the
 * way is missing. `words` views all of guest RAM as 32-bit words.
 */
export function walkEntry(words: Uint32Array, addr: number): number {
  let table = PML4_ADDR;
  for (let level = 4; level > 1; level--) {
    const at = table + indexAt(addr, level) * 8;
    const low = words[at >>> 2]!;
    if ((low & PTE_P) === 0) return -1;
    table = entryFrame(low, words[(at >>> 2) + 1]!);
    if (table + PAGE_SIZE > words.length * 4) return -1;
  }
  return table + indexAt(addr, 1) * 8;
}

/**
 * For a walk over a range: the leaf entry for `addr` (≥ 0), or, where a table on the way is
 * missing, the negated address of the first page past the part of the address space that table
 * would have covered (nothing there is mapped).
 */
export function entryOrSkip(words: Uint32Array, addr: number): number {
  let table = PML4_ADDR;
  for (let level = 4; level > 1; level--) {
    const at = table + indexAt(addr, level) * 8;
    const low = words[at >>> 2]!;
    const span = 2 ** (12 + 9 * (level - 1));
    if ((low & PTE_P) === 0) return -(Math.floor(addr / span) * span + span);
    table = entryFrame(low, words[(at >>> 2) + 1]!);
  }
  return table + indexAt(addr, 1) * 8;
}

/**
 * Like `walkEntry`, adding the tables that are missing: `newTable()` gives a zeroed frame of
 * guest RAM for each, or -1 when there is none (then this returns -1).
 */
export function ensureEntry(mem: GuestMemory, addr: number, newTable: () => number): number {
  const words = mem.words;
  let table = PML4_ADDR;
  for (let level = 4; level > 1; level--) {
    const at = table + indexAt(addr, level) * 8;
    if ((words[at >>> 2]! & PTE_P) === 0) {
      const frame = newTable();
      if (frame < 0) return -1;
      writeEntry(mem, at, frame, UPPER, false);
      mem.markDirty(at, 8);
    }
    table = entryFrame(words[at >>> 2]!, words[(at >>> 2) + 1]!);
  }
  return table + indexAt(addr, 1) * 8;
}
