// Descriptor tables: the GDT in the order STAR expects, the 64-bit TSS with its IST stack, and
// an IDT whose 32 exception gates lead to the exception stubs.
import { EXCEPTION_VECTORS } from './ports.ts';
import { GDT_ADDR, IDT_ADDR, IST_STACK_TOP, PAGE_SIZE, TSS_ADDR } from './layout.ts';
import type { GuestMemory } from '../memory/guest-memory.ts';
import { exceptionStub } from './stubs.ts';

export const KERNEL_CS = 0x08;
export const KERNEL_DS = 0x10;
/** STAR[63:48] base for sysret: user SS = base + 8, user CS = base + 16. */
export const USER_BASE_SELECTOR = 0x10;
export const USER_DS = 0x18 | 3;
export const USER_CS = 0x20 | 3;
export const TSS_SELECTOR = 0x28;
export const GDT_LIMIT = 7 * 8 - 1;
export const IDT_LIMIT = EXCEPTION_VECTORS * 16 - 1;
export const TSS_LIMIT = 103;

// Flat 64-bit descriptors; the accessed bit is preset so the CPU never writes the GDT.
const KERNEL_CODE = 0x00af9b000000ffffn;
const KERNEL_DATA = 0x00cf93000000ffffn;
const USER_DATA = 0x00cff3000000ffffn;
const USER_CODE = 0x00affb000000ffffn;

export function writeDescriptorTables(mem: GuestMemory): void {
  const v = mem.view;
  mem.markDirty(GDT_ADDR, PAGE_SIZE);
  mem.markDirty(IDT_ADDR, PAGE_SIZE);
  mem.markDirty(TSS_ADDR, PAGE_SIZE);
  const gdt = [0n, KERNEL_CODE, KERNEL_DATA, USER_DATA, USER_CODE];
  gdt.forEach((d, i) => v.setBigUint64(GDT_ADDR + i * 8, d, true));
  // 16-byte TSS descriptor: type 0xB (busy 64-bit TSS), present.
  const base = BigInt(TSS_ADDR);
  const low = BigInt(TSS_LIMIT) | ((base & 0xffffffn) << 16n) | (0x8bn << 40n) | (((base >> 24n) & 0xffn) << 56n);
  v.setBigUint64(GDT_ADDR + 5 * 8, low, true);
  v.setBigUint64(GDT_ADDR + 6 * 8, base >> 32n, true);

  // TSS: RSP0 and IST1 both at the exception stack; no I/O bitmap (IOPL 3 makes it moot).
  mem.bytes.fill(0, TSS_ADDR, TSS_ADDR + TSS_LIMIT + 1);
  v.setBigUint64(TSS_ADDR + 4, BigInt(IST_STACK_TOP), true);
  v.setBigUint64(TSS_ADDR + 36, BigInt(IST_STACK_TOP), true);
  v.setUint16(TSS_ADDR + 102, TSS_LIMIT + 1, true);

  // IDT: interrupt gates (type 0xE, DPL 0, present) on IST1.
  for (let vec = 0; vec < EXCEPTION_VECTORS; vec++) {
    const at = IDT_ADDR + vec * 16;
    const target = exceptionStub(vec);
    v.setUint16(at, target & 0xffff, true);
    v.setUint16(at + 2, KERNEL_CS, true);
    v.setUint8(at + 4, 1);
    v.setUint8(at + 5, 0x8e);
    v.setUint16(at + 6, (target >>> 16) & 0xffff, true);
    v.setUint32(at + 8, Math.floor(target / 0x1_0000_0000), true);
    v.setUint32(at + 12, 0, true);
  }
}
