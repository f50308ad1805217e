// 4-level page tables for the identity map, written by the host into guest RAM. Leaf entries
// carry the permissions; Accessed and Dirty are preset so the CPU never writes the tables (which
// would dirty pages a reset then has to copy back).
import { type Layout, PAGE_SIZE, PD_ADDR, PDPT_ADDR, PML4_ADDR } from './layout.ts';
import type { GuestMemory } from '../memory/guest-memory.ts';

const P = 0x1;
const RW = 0x2;
const US = 0x4;
const A = 0x20;
const D = 0x40;
/** NX is bit 63: bit 31 of the high 32-bit half. */
const NX_HIGH = 0x8000_0000;

export interface PageFlags {
  write: boolean;
  exec: boolean;
  user: boolean;
}

export const USER_RW: PageFlags = { write: true, exec: false, user: true };
export const USER_RO: PageFlags = { write: false, exec: false, user: true };
export const USER_RX: PageFlags = { write: false, exec: true, user: true };
export const KERNEL_RW: PageFlags = { write: true, exec: false, user: false };
/** The stub page: ring 3 must be able to run the syscall entry on KVMs where `syscall` stays in ring 3. */
export const STUB_RX: PageFlags = { write: false, exec: true, user: true };

function writeEntry(mem: GuestMemory, at: number, addr: number, low: number, nx: boolean): void {
  mem.view.setUint32(at, (addr + low) >>> 0, true);
  mem.view.setUint32(at + 4, Math.floor(addr / 0x1_0000_0000) | (nx ? NX_HIGH : 0), true);
}

/** Builds PML4 → PDPT → PDs → PTs covering all of guest RAM, every leaf not present. */
export function buildPageTables(mem: GuestMemory, layout: Layout): void {
  const gib = Math.ceil(layout.memorySize / (1024 * 1024 * 1024));
  const upper = P | RW | US | A;
  mem.bytes.fill(0, PML4_ADDR, PD_ADDR + gib * PAGE_SIZE);
  mem.bytes.fill(0, layout.pageTablesAddr, layout.memorySize);
  mem.markDirty(PML4_ADDR, PD_ADDR + gib * PAGE_SIZE - PML4_ADDR);
  mem.markDirty(layout.pageTablesAddr, layout.memorySize - layout.pageTablesAddr);
  writeEntry(mem, PML4_ADDR, PDPT_ADDR, upper, false);
  for (let g = 0; g < gib; g++) writeEntry(mem, PDPT_ADDR + g * 8, PD_ADDR + g * PAGE_SIZE, upper, false);
  const tables = layout.memorySize / (2 * 1024 * 1024);
  for (let t = 0; t < tables; t++) {
    writeEntry(mem, PD_ADDR + t * 8, layout.pageTablesAddr + t * PAGE_SIZE, upper, false);
  }
}

/** Address of the leaf entry that maps `addr`. */
function pteAddress(layout: Layout, addr: number): number {
  return layout.pageTablesAddr + Math.floor(addr / PAGE_SIZE) * 8;
}

/** Maps [addr, addr+len) (page aligned) with `flags`, replacing what was there. */
export function mapPages(mem: GuestMemory, layout: Layout, addr: number, len: number, flags: PageFlags): void {
  const low = P | A | D | (flags.write ? RW : 0) | (flags.user ? US : 0);
  const high = flags.exec ? 0 : NX_HIGH;
  const first = pteAddress(layout, addr);
  const count = len / PAGE_SIZE;
  // Thousands of entries per boot: write 32-bit halves straight into an aligned view (guest
  // memory is little-endian, like the host), not through DataView calls.
  const words = new Uint32Array(mem.bytes.buffer, first, count * 2);
  const firstPage = addr / PAGE_SIZE;
  for (let i = 0; i < count; i++) {
    const page = firstPage + i;
    words[2 * i] = ((page % 0x10_0000) * PAGE_SIZE + low) >>> 0;
    words[2 * i + 1] = Math.floor(page / 0x10_0000) | high;
  }
  mem.markDirty(first, count * 8);
}
