// Puts a vCPU in 64-bit long mode, ring 3, once per VM: control registers, segments, the
// syscall MSRs, CPUID and XCR0 from the host (so guests get AVX2 / AVX-512), no interrupts.
import { SREGS } from '../../kvm/constants.ts';
import type { Kvm } from '../../kvm/kvm.ts';
import type { Vcpu } from '../../kvm/vcpu.ts';
import { GDT_LIMIT, IDT_LIMIT, KERNEL_CS, KERNEL_DS, TSS_LIMIT, TSS_SELECTOR, USER_BASE_SELECTOR } from './gdt.ts';
import { GDT_ADDR, IDT_ADDR, PML4_ADDR, TSS_ADDR } from './layout.ts';
import { SYSCALL_ENTRY } from './stubs.ts';

const CR0_PE = 1, CR0_MP = 2, CR0_ET = 0x10, CR0_NE = 0x20, CR0_WP = 0x1_0000, CR0_AM = 0x4_0000, CR0_PG = 0x8000_0000;
const CR4_PAE = 0x20, CR4_OSFXSR = 0x200, CR4_OSXMMEXCPT = 0x400, CR4_UMIP = 0x800, CR4_FSGSBASE = 0x1_0000;
const CR4_OSXSAVE = 0x4_0000, CR4_SMAP = 0x20_0000;
const EFER_SCE = 1, EFER_LME = 0x100, EFER_LMA = 0x400, EFER_NXE = 0x800;

const MSR_STAR = 0xc000_0081, MSR_LSTAR = 0xc000_0082, MSR_CSTAR = 0xc000_0083, MSR_SFMASK = 0xc000_0084;
export const MSR_FS_BASE = 0xc000_0100;
const MSR_GS_BASE = 0xc000_0101;
const MSR_KERNEL_GS_BASE = 0xc000_0102;
const MSR_IA32_TSC = 0x10;

/** RFLAGS at start: IOPL 3 (ring 3 may `out` to the hypercall port), reserved bit 1, IF clear. */
export const INITIAL_RFLAGS = 0x3002;
/** Cleared on `syscall` entry: TF, IF, DF, NT, AC (AC would lift SMAP in ring 0). */
const SFMASK = 0x100 | 0x200 | 0x400 | 0x4000 | 0x4_0000;

/** XSAVE components we enable when the host has them: x87, SSE, AVX, and the three AVX-512 parts. */
const XCR0_WANTED = 0x1n | 0x2n | 0x4n | 0x20n | 0x40n | 0x80n;

export interface CpuFeatures {
  smap: boolean;
  umip: boolean;
  xcr0: bigint;
  /** CPUID.1:EDX, reported to the program as AT_HWCAP. */
  hwcap: number;
}

export function hostCpuFeatures(kvm: Kvm): CpuFeatures {
  const cpuid = kvm.supportedCpuid();
  const leaf = (fn: number, index = 0) => cpuid.find((e) => e.function === fn && e.index === index);
  const l7 = leaf(7);
  const l1 = leaf(1);
  const xsave = leaf(0xd);
  const supportedXcr0 = xsave ? BigInt(xsave.eax >>> 0) | (BigInt(xsave.edx >>> 0) << 32n) : 0x3n;
  return {
    smap: ((l7?.ebx ?? 0) & (1 << 20)) !== 0,
    umip: ((l7?.ecx ?? 0) & (1 << 2)) !== 0,
    xcr0: (supportedXcr0 & XCR0_WANTED) | 0x3n,
    hwcap: (l1?.edx ?? 0) >>> 0,
  };
}

function setSegment(b: Buffer, at: number, s: { base?: number; limit: number; selector: number; type: number; dpl: number; s: number; l: number; db: number; g: number }): void {
  b.fill(0, at, at + 24);
  b.writeBigUInt64LE(BigInt(s.base ?? 0), at);
  b.writeUInt32LE(s.limit >>> 0, at + 8);
  b.writeUInt16LE(s.selector, at + 12);
  b.writeUInt8(s.type, at + 14);
  b.writeUInt8(1, at + 15); // present
  b.writeUInt8(s.dpl, at + 16);
  b.writeUInt8(s.db, at + 17);
  b.writeUInt8(s.s, at + 18);
  b.writeUInt8(s.l, at + 19);
  b.writeUInt8(s.g, at + 20);
}

/** Once per vCPU: the host's CPUID, XCR0, and the MSRs that aim `syscall` at the stub. */
export function configureVcpu(kvm: Kvm, vcpu: Vcpu, features: CpuFeatures): void {
  vcpu.setCpuid(kvm.supportedCpuid());
  vcpu.setXcr0(features.xcr0);
  setInitialMsrs(vcpu);
}

/**
 * The MSRs a program may depend on or observe, at their values for a vCPU that never ran: the
 * `syscall` targets, FS/GS bases, and the time-stamp counter (so a reused vCPU does not tell its age).
 */
export function setInitialMsrs(vcpu: Vcpu): void {
  vcpu.setMsrs([
    { index: MSR_STAR, value: (BigInt(USER_BASE_SELECTOR) << 48n) | (BigInt(KERNEL_CS) << 32n) },
    { index: MSR_LSTAR, value: BigInt(SYSCALL_ENTRY) },
    { index: MSR_CSTAR, value: 0n },
    { index: MSR_SFMASK, value: BigInt(SFMASK) },
    { index: MSR_FS_BASE, value: 0n },
    { index: MSR_GS_BASE, value: 0n },
    { index: MSR_KERNEL_GS_BASE, value: 0n },
    { index: MSR_IA32_TSC, value: 0n },
  ]);
}

/**
 * Puts `vcpu` in long mode at ring 0 (segments, descriptor tables, control registers) for a boot.
 * The caller points RIP at an `iretq` whose frame enters ring 3.
 */
export function enterLongMode(vcpu: Vcpu, features: CpuFeatures): void {
  const sregs = vcpu.getSregs();
  // The vCPU starts in ring 0 on an `iretq` into the program: entering ring 3 through iretq (rather
  // than by loading ring-3 segments here) is what makes PVM-style nested KVMs switch to user mode.
  // DS, ES, FS and GS hold the null selector, as in a 64-bit Linux process (FS/GS bases are MSRs).
  const userData = { limit: 0xffffffff, selector: 0, type: 3, dpl: 3, s: 1, l: 0, db: 1, g: 1 };
  setSegment(sregs, SREGS.cs, { limit: 0xffffffff, selector: KERNEL_CS, type: 11, dpl: 0, s: 1, l: 1, db: 0, g: 1 });
  setSegment(sregs, SREGS.ss, { limit: 0xffffffff, selector: KERNEL_DS, type: 3, dpl: 0, s: 1, l: 0, db: 1, g: 1 });
  for (const seg of [SREGS.ds, SREGS.es, SREGS.fs, SREGS.gs]) setSegment(sregs, seg, userData);
  setSegment(sregs, SREGS.tr, { base: TSS_ADDR, limit: TSS_LIMIT, selector: TSS_SELECTOR, type: 11, dpl: 0, s: 0, l: 0, db: 0, g: 0 });
  sregs.fill(0, SREGS.ldt, SREGS.ldt + 24);
  sregs.writeUInt8(1, SREGS.ldt + 22); // unusable
  sregs.writeBigUInt64LE(BigInt(GDT_ADDR), SREGS.gdt);
  sregs.writeUInt16LE(GDT_LIMIT, SREGS.gdt + 8);
  sregs.writeBigUInt64LE(BigInt(IDT_ADDR), SREGS.idt);
  sregs.writeUInt16LE(IDT_LIMIT, SREGS.idt + 8);
  const cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
  let cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE | CR4_FSGSBASE;
  // No SMEP: the stub page is user-executable (see stubs.ts), and ring 0 runs nothing else.
  if (features.smap) cr4 |= CR4_SMAP;
  if (features.umip) cr4 |= CR4_UMIP;
  sregs.writeBigUInt64LE(BigInt(cr0 >>> 0), SREGS.cr0);
  sregs.writeBigUInt64LE(0n, SREGS.cr2); // the last page fault of a program that ran here before
  sregs.writeBigUInt64LE(BigInt(PML4_ADDR), SREGS.cr3);
  sregs.writeBigUInt64LE(BigInt(cr4), SREGS.cr4);
  sregs.writeBigUInt64LE(BigInt(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE), SREGS.efer);
  vcpu.setSregs(sregs);
  vcpu.setMsrs([{ index: MSR_FS_BASE, value: 0n }, { index: MSR_GS_BASE, value: 0n }]);
}
