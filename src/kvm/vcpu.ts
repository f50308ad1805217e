// A virtual CPU: KVM_RUN with a typed exit, the mmapped `kvm_run` page, registers by name through
// sync regs (no ioctl per access), and the ioctls for the state set once per VM (sregs, CPUID,
// MSRs, XCRs, XSAVE).
import * as K from './constants.ts';
import type { CpuidEntry } from './kvm.ts';
import { check, close, ioctlInt, ioctlPtr, lastErrno, type Mapping, mmap, MAP_SHARED, munmap, PROT_READ, PROT_WRITE, SysError } from './libc.ts';
import type { Vm } from './vm.ts';

const EINTR = 4;
const EAGAIN = 11;
const TWO_32 = 0x1_0000_0000;

/**
 * Why KVM_RUN returned, by the kernel's name for it (`KVM_EXIT_IO` is `'io'`). `'intr'` is also
 * what an interrupted KVM_RUN (a timer signal) gives; `'other'` is any reason tinyedge does not
 * expect, whose number `exitReason()` tells.
 */
export type VcpuExit = 'io' | 'intr' | 'hlt' | 'mmio' | 'shutdown' | 'fail-entry' | 'internal-error' | 'other';

/** Exit names by `kvm_run.exit_reason`: naming an exit is one array load. */
const EXIT_NAMES: readonly VcpuExit[] = (() => {
  const names = new Array<VcpuExit>(K.KVM_EXIT_INTERNAL_ERROR + 1).fill('other');
  names[K.KVM_EXIT_IO] = 'io';
  names[K.KVM_EXIT_INTR] = 'intr';
  names[K.KVM_EXIT_HLT] = 'hlt';
  names[K.KVM_EXIT_MMIO] = 'mmio';
  names[K.KVM_EXIT_SHUTDOWN] = 'shutdown';
  names[K.KVM_EXIT_FAIL_ENTRY] = 'fail-entry';
  names[K.KVM_EXIT_INTERNAL_ERROR] = 'internal-error';
  return names;
})();

const SYNC = K.RUN.sync_regs;

/**
 * Where register `name` sits in kvm_run: the sync-regs area plus its `kvm_regs` offset. A switch
 * rather than a lookup table: where an accessor is inlined with a constant name (every hot call
 * site) the optimizing compiler folds the switch to that one case, where a table indexed by many
 * names turns into a generic (megamorphic) keyed lookup. TypeScript checks the switch covers
 * every name in REGS.
 */
function syncRegAt(name: K.RegName): number {
  switch (name) {
    case 'rax': return SYNC + K.REGS.rax;
    case 'rbx': return SYNC + K.REGS.rbx;
    case 'rcx': return SYNC + K.REGS.rcx;
    case 'rdx': return SYNC + K.REGS.rdx;
    case 'rsi': return SYNC + K.REGS.rsi;
    case 'rdi': return SYNC + K.REGS.rdi;
    case 'rsp': return SYNC + K.REGS.rsp;
    case 'rbp': return SYNC + K.REGS.rbp;
    case 'r8': return SYNC + K.REGS.r8;
    case 'r9': return SYNC + K.REGS.r9;
    case 'r10': return SYNC + K.REGS.r10;
    case 'r11': return SYNC + K.REGS.r11;
    case 'r12': return SYNC + K.REGS.r12;
    case 'r13': return SYNC + K.REGS.r13;
    case 'r14': return SYNC + K.REGS.r14;
    case 'r15': return SYNC + K.REGS.r15;
    case 'rip': return SYNC + K.REGS.rip;
    case 'rflags': return SYNC + K.REGS.rflags;
  }
}

export interface MsrEntry {
  index: number;
  value: bigint;
}

export class Vcpu {
  private readonly runMap: Mapping;
  /** The `kvm_run` page: exit reason, exit data, sync regs. */
  readonly run: DataView;
  private readonly runBytes: Uint8Array;

  constructor(readonly vm: Vm, readonly fd: number) {
    this.runMap = mmap(vm.kvm.vcpuMmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    this.run = new DataView(this.runMap.buffer);
    this.runBytes = new Uint8Array(this.runMap.buffer);
    // Ask KVM to copy the general registers into kvm_run on every exit.
    this.run.setUint32(K.RUN.kvm_valid_regs, K.KVM_SYNC_X86_REGS, true);
  }

  /**
   * Enters the guest until the next exit and says why it returned. An interrupted KVM_RUN (a
   * timer signal) is the exit `'intr'` rather than an exception.
   */
  enter(): VcpuExit {
    if (ioctlInt(this.fd, K.KVM_RUN, 0) < 0) {
      const errno = lastErrno();
      if (errno === EINTR || errno === EAGAIN) return 'intr';
      throw new SysError('KVM_RUN', errno);
    }
    return EXIT_NAMES[this.run.getUint32(K.RUN.exit_reason, true)] ?? 'other';
  }

  /** The kernel's number for the last exit (`kvm_run.exit_reason`), to report an `'other'` exit. */
  exitReason(): number {
    return this.run.getUint32(K.RUN.exit_reason, true);
  }

  // --- general registers, through the sync-regs area of kvm_run -------------------------------

  /** A register as an unsigned number (exact below 2^53, which covers every guest address). */
  reg(name: K.RegName): number {
    const base = syncRegAt(name);
    return this.run.getUint32(base + 4, true) * TWO_32 + this.run.getUint32(base, true);
  }

  /** A register as a signed number: two's complement, exact while its magnitude is below 2^53. */
  regSigned(name: K.RegName): number {
    const base = syncRegAt(name);
    return this.run.getInt32(base + 4, true) * TWO_32 + this.run.getUint32(base, true);
  }

  /** The low 32 bits of a register, unsigned: what the kernel sees of an `unsigned int` argument. */
  reg32(name: K.RegName): number {
    return this.run.getUint32(syncRegAt(name), true);
  }

  /** The low 32 bits of a register, sign-extended: what the kernel sees of an `int` argument. */
  reg32s(name: K.RegName): number {
    return this.run.getInt32(syncRegAt(name), true);
  }

  /** Sets a register for the next entry; negative values are written as two's complement. */
  setReg(name: K.RegName, value: number): void {
    const base = syncRegAt(name);
    if (value < 0) {
      this.run.setBigInt64(base, BigInt(value), true);
    } else {
      this.run.setUint32(base, value >>> 0, true);
      this.run.setUint32(base + 4, Math.floor(value / TWO_32) >>> 0, true);
    }
    this.markRegsDirty();
  }

  /** The 144-byte `kvm_regs` image inside kvm_run, to save or restore all registers at once. */
  regsBytes(): Uint8Array {
    return this.runBytes.subarray(K.RUN.sync_regs, K.RUN.sync_regs + K.KVM_REGS_SIZE);
  }

  /**
   * Has KVM load `sregs` (segments with their bases, descriptor tables, control registers) at the
   * next entry, through the sync-regs area: no ioctl of its own.
   */
  setSregsOnEntry(sregs: Uint8Array): void {
    this.runBytes.set(sregs.subarray(0, K.KVM_SREGS_SIZE), K.RUN.sync_sregs);
    this.run.setUint32(K.RUN.kvm_dirty_regs, this.run.getUint32(K.RUN.kvm_dirty_regs, true) | K.KVM_SYNC_X86_SREGS, true);
  }

  markRegsDirty(): void {
    this.run.setUint32(K.RUN.kvm_dirty_regs, this.run.getUint32(K.RUN.kvm_dirty_regs, true) | K.KVM_SYNC_X86_REGS, true);
  }

  // --- exit data ------------------------------------------------------------------------------

  ioPort(): number {
    return this.run.getUint16(K.RUN.io_port, true);
  }

  failEntryReason(): bigint {
    return this.run.getBigUint64(K.RUN.fail_entry_reason, true);
  }

  internalSuberror(): number {
    return this.run.getUint32(K.RUN.internal_suberror, true);
  }

  // --- ioctls for state set once --------------------------------------------------------------

  getSregs(into: Buffer = Buffer.alloc(K.KVM_SREGS_SIZE)): Buffer {
    check('KVM_GET_SREGS', ioctlPtr(this.fd, K.KVM_GET_SREGS, into));
    return into;
  }

  setSregs(sregs: Buffer): void {
    check('KVM_SET_SREGS', ioctlPtr(this.fd, K.KVM_SET_SREGS, sregs));
  }

  setCpuid(entries: CpuidEntry[]): void {
    const buf = Buffer.alloc(8 + entries.length * K.KVM_CPUID_ENTRY2_SIZE);
    buf.writeUInt32LE(entries.length, 0);
    entries.forEach((e, i) => {
      const o = 8 + i * K.KVM_CPUID_ENTRY2_SIZE;
      buf.writeUInt32LE(e.function, o);
      buf.writeUInt32LE(e.index, o + 4);
      buf.writeUInt32LE(e.flags, o + 8);
      buf.writeUInt32LE(e.eax >>> 0, o + 12);
      buf.writeUInt32LE(e.ebx >>> 0, o + 16);
      buf.writeUInt32LE(e.ecx >>> 0, o + 20);
      buf.writeUInt32LE(e.edx >>> 0, o + 24);
    });
    check('KVM_SET_CPUID2', ioctlPtr(this.fd, K.KVM_SET_CPUID2, buf));
  }

  setMsrs(msrs: MsrEntry[]): void {
    const buf = Buffer.alloc(8 + msrs.length * 16);
    buf.writeUInt32LE(msrs.length, 0);
    msrs.forEach((m, i) => {
      buf.writeUInt32LE(m.index, 8 + i * 16);
      buf.writeBigUInt64LE(m.value, 8 + i * 16 + 8);
    });
    const set = check('KVM_SET_MSRS', ioctlPtr(this.fd, K.KVM_SET_MSRS, buf));
    if (set !== msrs.length) throw new Error(`KVM_SET_MSRS: MSR 0x${msrs[set]!.index.toString(16)} was refused`);
  }

  /** Sets XCR0, the set of XSAVE state components (x87, SSE, AVX, AVX-512) the guest may use. */
  setXcr0(value: bigint): void {
    const buf = Buffer.alloc(K.KVM_XCRS_SIZE);
    buf.writeUInt32LE(1, 0); // nr_xcrs
    buf.writeUInt32LE(0, 8); // xcrs[0].xcr = XCR0
    buf.writeBigUInt64LE(value, 16);
    check('KVM_SET_XCRS', ioctlPtr(this.fd, K.KVM_SET_XCRS, buf));
  }

  getXsave(into: Buffer = Buffer.alloc(K.KVM_XSAVE_SIZE)): Buffer {
    check('KVM_GET_XSAVE', ioctlPtr(this.fd, K.KVM_GET_XSAVE, into));
    return into;
  }

  setXsave(state: Buffer): void {
    check('KVM_SET_XSAVE', ioctlPtr(this.fd, K.KVM_SET_XSAVE, state));
  }

  /** DR0–DR3, DR6, DR7 (`struct kvm_debugregs`). */
  getDebugregs(into: Buffer = Buffer.alloc(K.KVM_DEBUGREGS_SIZE)): Buffer {
    check('KVM_GET_DEBUGREGS', ioctlPtr(this.fd, K.KVM_GET_DEBUGREGS, into));
    return into;
  }

  setDebugregs(state: Buffer): void {
    check('KVM_SET_DEBUGREGS', ioctlPtr(this.fd, K.KVM_SET_DEBUGREGS, state));
  }

  /** Pending exceptions, interrupts, NMIs and the interrupt shadow (`struct kvm_vcpu_events`). */
  getVcpuEvents(into: Buffer = Buffer.alloc(K.KVM_VCPU_EVENTS_SIZE)): Buffer {
    check('KVM_GET_VCPU_EVENTS', ioctlPtr(this.fd, K.KVM_GET_VCPU_EVENTS, into));
    return into;
  }

  setVcpuEvents(state: Buffer): void {
    check('KVM_SET_VCPU_EVENTS', ioctlPtr(this.fd, K.KVM_SET_VCPU_EVENTS, state));
  }

  close(): void {
    munmap(this.runMap);
    close(this.fd);
  }
}
