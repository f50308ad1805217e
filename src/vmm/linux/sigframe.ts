// The x86-64 signal frame, as the kernel builds it (arch/x86/kernel/signal.c, signal_64.c,
// fpu/signal.c) and takes it back in rt_sigreturn: struct rt_sigframe (the return address, a
// struct ucontext, a siginfo) below the 128-byte red zone or on the alternate stack, and above it
// the XSAVE area, 64-byte aligned, with the fpx_sw_bytes and FP_XSTATE_MAGIC2 that tell handlers
// (glibc, Go) how to read and change it. Registers come and go as `kvm_regs` images, the FPU
// state as KVM's 4096-byte XSAVE images (standard form). Every guest address goes through
// GuestMemory's checks: what does not check out is a failed frame, which the caller turns into
// SIGSEGV, as the kernel does. A frame the guest forged is validated as the CPU's XRSTOR and the
// kernel validate it, so that nothing in it can reach KVM as a state it refuses.
import { KVM_XSAVE_SIZE, type RegName, REGS } from '../../kvm/constants.ts';
import type { CpuidEntry } from '../../kvm/kvm.ts';
import { GuestFault, type GuestMemory, TASK_SIZE_MAX } from '../memory/guest-memory.ts';
import { USER_CS, USER_DS } from '../x86/gdt.ts';
import { type AltStack, SA_ONSTACK, SA_RESTORER, SA_SIGINFO, type SigAction, type SigInfo, SS_AUTODISARM, type TrapInfo, UNBLOCKABLE, altStackMode, onAltStack } from './signals.ts';

/** struct rt_sigframe: pretcode, then struct ucontext (304 bytes), then struct siginfo (128). */
const FRAME_SIZE = 8 + 304 + 128;
const UC = 8;
const UC_FLAGS = UC, UC_LINK = UC + 8, UC_STACK = UC + 16, UC_MCONTEXT = UC + 40, UC_SIGMASK = UC + 296;
const INFO = UC + 304;
const SIGINFO_SIZE = 128;
/** struct sigcontext: the general registers in this order, then the rest at these offsets. */
const SC_REGS: readonly RegName[] = ['r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rdi', 'rsi', 'rbp', 'rbx', 'rdx', 'rax', 'rcx', 'rsp', 'rip', 'rflags'];
const SC_CS = 144, SC_SS = 150, SC_ERR = 152, SC_TRAPNO = 160, SC_OLDMASK = 168, SC_CR2 = 176, SC_FPSTATE = 184;
/** What rt_sigreturn reads of the sigcontext: up to `reserved1`. */
const SC_READ = 192;
const UC_FP_XSTATE = 1, UC_SIGCONTEXT_SS = 2, UC_STRICT_RESTORE_SS = 4;
const RED_ZONE = 128;

/** RFLAGS bits a frame may change (FIX_EFLAGS): AC, OF, DF, TF, SF, ZF, AF, PF, CF, RF — never IOPL, IF, VM, NT. */
const FIX_EFLAGS = 0x4_0000n | 0x800n | 0x400n | 0x100n | 0x80n | 0x40n | 0x10n | 0x4n | 0x1n | 0x1_0000n;
/** Cleared for the handler: DF (the ABI's function entry), RF and TF. */
const HANDLER_CLEARS = 0x400n | 0x1_0000n | 0x100n;

/** The XSAVE legacy area: FCW, MXCSR, the x87 registers, the XMM registers, the software bytes. */
const FCW = 0, MXCSR = 24, ST_REGS = 32, XMM_REGS = 160, XMM_END = 416, SW_BYTES = 464, LEGACY_SIZE = 512;
/** The XSAVE header: XSTATE_BV, XCOMP_BV, then reserved bytes. */
const XSTATE_BV = 512, XCOMP_BV = 520, HEADER_END = 576;
const FCW_INIT = 0x37f, MXCSR_INIT = 0x1f80;
/** Where the image says which MXCSR bits may be set; 0 there means the architectural default. */
const MXCSR_MASK = 28, MXCSR_MASK_DEFAULT = 0xffbf;
const FP_XSTATE_MAGIC1 = 0x4650_5853, FP_XSTATE_MAGIC2 = 0x4650_5845, FP_XSTATE_MAGIC2_SIZE = 4;
const XFEATURE_FP = 1n, XFEATURE_SSE = 2n, XFEATURE_YMM = 4n;
const FPSSE = XFEATURE_FP | XFEATURE_SSE;

/** The XSAVE components a frame carries and where they lie in the standard form. */
export interface XstateGeometry {
  /** user_xfeatures: the components enabled in XCR0. */
  readonly features: bigint;
  /** user_size: the standard-form area for them, header included. */
  readonly size: number;
  /** The components past SSE: bit, offset, size (CPUID leaf 0xD). */
  readonly components: ReadonlyArray<{ bit: number; offset: number; size: number }>;
}

/** The geometry for the components `xcr0` enables, from the CPUID leaf 0xD KVM reports. */
export function xstateGeometry(cpuid: readonly CpuidEntry[], xcr0: bigint): XstateGeometry {
  const components: Array<{ bit: number; offset: number; size: number }> = [];
  let size = HEADER_END;
  for (let bit = 2; bit < 64; bit++) {
    if ((xcr0 & (1n << BigInt(bit))) === 0n) continue;
    const leaf = cpuid.find((e) => e.function === 0xd && e.index === bit);
    if (!leaf || leaf.eax === 0) continue;
    components.push({ bit, offset: leaf.ebx >>> 0, size: leaf.eax >>> 0 });
    size = Math.max(size, (leaf.ebx >>> 0) + (leaf.eax >>> 0));
  }
  if (size + FP_XSTATE_MAGIC2_SIZE > KVM_XSAVE_SIZE) throw new Error(`XSAVE area of ${size} bytes does not fit KVM's image`);
  return { features: xcr0, size, components };
}

/** What a handler is entered with, besides the registers. */
export interface FrameRequest {
  sig: number;
  info: SigInfo;
  trap: TrapInfo | undefined;
  action: SigAction;
  /** The blocked mask the frame keeps, which rt_sigreturn puts back. */
  mask: bigint;
  altStack: AltStack;
}

const reg = (regs: Uint8Array, name: RegName): bigint => view(regs).getBigUint64(REGS[name], true);
const setReg = (regs: Uint8Array, name: RegName, value: bigint): void => view(regs).setBigUint64(REGS[name], BigInt.asUintN(64, value), true);
const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** True for an address the CPU accepts as RIP or RSP: canonical under 4-level paging. */
export function canonical(value: bigint): boolean {
  return value < 1n << 47n || value >= (1n << 64n) - (1n << 47n);
}

/** A guest address as a Number, or -1 when no user access can reach it. */
function userAddress(value: bigint): number {
  return value >= 0n && value < BigInt(TASK_SIZE_MAX) ? Number(value) : -1;
}

/** Writes `bytes` at `addr` through the checks; false when the program may not write there. */
function put(mem: GuestMemory, addr: number, bytes: Uint8Array): boolean {
  try {
    mem.writable(addr, bytes.length).set(bytes);
    return true;
  } catch (err) {
    if (err instanceof GuestFault) return false;
    throw err;
  }
}

/** Reads `len` bytes at `addr` through the checks (a copy); undefined when the program may not read them. */
function get(mem: GuestMemory, addr: number, len: number): Uint8Array | undefined {
  if (addr < 0) return undefined;
  try {
    return Uint8Array.from(mem.user(addr, len));
  } catch (err) {
    if (err instanceof GuestFault) return undefined;
    throw err;
  }
}

/** The siginfo's 128 bytes: signo, errno (0), code, then the fields its kind has. */
export function siginfoBytes(info: SigInfo): Uint8Array {
  const b = new Uint8Array(SIGINFO_SIZE);
  const v = view(b);
  v.setInt32(0, info.signo, true);
  v.setInt32(8, info.code, true);
  if (info.addr !== undefined) v.setBigUint64(16, BigInt.asUintN(64, info.addr), true);
  if (info.pid !== undefined) v.setInt32(16, info.pid, true);
  if (info.uid !== undefined) v.setUint32(20, info.uid, true);
  return b;
}

/**
 * get_sigframe and x64_setup_rt_frame: writes the XSAVE area and the frame for `req` below the
 * red zone of the stack in `regs` (or at the top of the alternate stack, for SA_ONSTACK when not
 * on it already), from `regs` (RIP, RSP, RFLAGS as ring 3 has them) and the XSAVE image `xsave`.
 * On success `regs` become the handler's entry registers: RDI the signal, RSI the siginfo, RDX
 * the ucontext, RAX 0, RSP the frame (its return address: sa_restorer), RIP the handler, and DF,
 * RF and TF clear. False when the frame cannot be written: the stack is not writable, it would
 * overflow the alternate stack, or there is no SA_RESTORER (the kernel requires one on x86-64).
 */
export function setupFrame(mem: GuestMemory, g: XstateGeometry, regs: Uint8Array, xsave: Uint8Array, req: FrameRequest): boolean {
  const alt = req.altStack;
  if ((req.action.flags & SA_RESTORER) === 0) return false;
  const rsp = reg(regs, 'rsp');
  const nested = (alt.flags & SS_AUTODISARM) === 0 && onAltStack(alt, rsp);
  let sp = rsp - BigInt(RED_ZONE);
  let entering = false;
  if ((req.action.flags & SA_ONSTACK) !== 0 && altStackMode(alt, sp) === 0) {
    sp = alt.sp + alt.size;
    entering = true;
  }
  const fpSize = g.size + FP_XSTATE_MAGIC2_SIZE;
  const fpstate = ((sp - BigInt(fpSize)) / 64n) * 64n;
  const frameBig = ((fpstate - BigInt(FRAME_SIZE)) / 16n) * 16n - 8n;
  // Off the end of the alternate stack: an address that cannot be written, as the kernel's -1.
  if ((nested || entering) && !onAltStack(alt, frameBig)) return false;
  const frame = userAddress(frameBig);
  const fp = userAddress(fpstate);
  if (frame < 0 || fp < 0) return false;
  if (!put(mem, fp, fpstateBytes(g, xsave))) return false;
  if ((req.action.flags & SA_SIGINFO) !== 0 && !put(mem, frame + INFO, siginfoBytes(req.info))) return false;
  const head = new Uint8Array(INFO);
  const v = view(head);
  v.setBigUint64(0, req.action.restorer, true);
  v.setBigUint64(UC_FLAGS, BigInt(UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS), true);
  v.setBigUint64(UC_LINK, 0n, true);
  v.setBigUint64(UC_STACK, alt.sp, true);
  v.setUint32(UC_STACK + 8, alt.flags, true);
  v.setBigUint64(UC_STACK + 16, alt.size, true);
  SC_REGS.forEach((name, i) => v.setBigUint64(UC_MCONTEXT + i * 8, reg(regs, name), true));
  v.setUint16(UC_MCONTEXT + SC_CS, USER_CS, true);
  v.setUint16(UC_MCONTEXT + SC_SS, USER_DS, true);
  v.setBigUint64(UC_MCONTEXT + SC_ERR, BigInt(req.trap?.err ?? 0), true);
  v.setBigUint64(UC_MCONTEXT + SC_TRAPNO, BigInt(req.trap?.trapno ?? 0), true);
  v.setBigUint64(UC_MCONTEXT + SC_OLDMASK, req.mask, true);
  v.setBigUint64(UC_MCONTEXT + SC_CR2, BigInt(req.trap?.cr2 ?? 0), true);
  v.setBigUint64(UC_MCONTEXT + SC_FPSTATE, fpstate, true);
  v.setBigUint64(UC_SIGMASK, req.mask, true);
  // The sigcontext's reserved words stay as the stack had them, as the kernel leaves them.
  if (!put(mem, frame, head.subarray(0, UC_MCONTEXT + SC_READ)) || !put(mem, frame + UC_SIGMASK, head.subarray(UC_SIGMASK))) return false;
  setReg(regs, 'rdi', BigInt(req.sig));
  setReg(regs, 'rsi', BigInt(frame + INFO));
  setReg(regs, 'rdx', BigInt(frame + UC));
  setReg(regs, 'rax', 0n);
  setReg(regs, 'rsp', frameBig);
  setReg(regs, 'rip', req.action.handler);
  setReg(regs, 'rflags', reg(regs, 'rflags') & ~HANDLER_CLEARS);
  return true;
}

/**
 * The XSAVE area a frame carries (copy_fpstate_to_sigframe): the standard-form image of the
 * enabled components, XSTATE_BV with FP and SSE always set (so a handler that changes only the
 * legacy area is heard), the header's reserved bytes zero, the software bytes, and MAGIC2 after it.
 */
function fpstateBytes(g: XstateGeometry, xsave: Uint8Array): Uint8Array {
  const b = new Uint8Array(g.size + FP_XSTATE_MAGIC2_SIZE);
  b.set(xsave.subarray(0, g.size));
  const v = view(b);
  v.setBigUint64(XSTATE_BV, (view(xsave).getBigUint64(XSTATE_BV, true) & g.features) | FPSSE, true);
  b.fill(0, XCOMP_BV, HEADER_END);
  b.fill(0, SW_BYTES, LEGACY_SIZE);
  v.setUint32(SW_BYTES, FP_XSTATE_MAGIC1, true);
  v.setUint32(SW_BYTES + 4, g.size + FP_XSTATE_MAGIC2_SIZE, true);
  v.setBigUint64(SW_BYTES + 8, g.features, true);
  v.setUint32(SW_BYTES + 16, g.size, true);
  v.setUint32(g.size, FP_XSTATE_MAGIC2, true);
  return b;
}

/** Sets component `bit`'s part of `image` to its initial state (fpu__clear_user_states). */
function initComponent(g: XstateGeometry, image: Uint8Array, bit: number): void {
  if (bit === 0) {
    image.fill(0, 0, MXCSR);
    view(image).setUint16(FCW, FCW_INIT, true);
    image.fill(0, ST_REGS, XMM_REGS);
  } else if (bit === 1) {
    image.fill(0, XMM_REGS, XMM_END);
  } else {
    const c = g.components.find((x) => x.bit === bit);
    if (c) image.fill(0, c.offset, c.offset + c.size);
  }
}

/** Copies component `bit`'s part of `from` (an area in the guest's frame) into `image`. */
function copyComponent(g: XstateGeometry, image: Uint8Array, from: Uint8Array, bit: number): void {
  if (bit === 0) {
    image.set(from.subarray(0, MXCSR), 0);
    image.set(from.subarray(ST_REGS, XMM_REGS), ST_REGS);
  } else if (bit === 1) {
    image.set(from.subarray(XMM_REGS, XMM_END), XMM_REGS);
  } else {
    const c = g.components.find((x) => x.bit === bit);
    if (c) image.set(from.subarray(c.offset, c.offset + c.size), c.offset);
  }
}

const bits = (g: XstateGeometry): number[] => [0, 1, ...g.components.map((c) => c.bit)];

/**
 * The XSAVE image with `loaded` components taken from `area` (the guest's frame) and the rest of
 * the enabled ones in their initial state, MXCSR as given. Components the frame does not carry
 * (beyond XCR0) stay as `current` has them. FP and SSE are always marked present, with explicit
 * initial values when not loaded, so that KVM loads MXCSR from the image.
 */
function composeImage(g: XstateGeometry, current: Uint8Array, area: Uint8Array | undefined, loaded: bigint, mxcsr: number): Uint8Array {
  const image = Uint8Array.from(current);
  for (const bit of bits(g)) {
    if (area && (loaded & (1n << BigInt(bit))) !== 0n) copyComponent(g, image, area, bit);
    else initComponent(g, image, bit);
  }
  const v = view(image);
  v.setUint32(MXCSR, mxcsr, true);
  v.setBigUint64(XSTATE_BV, (v.getBigUint64(XSTATE_BV, true) & ~g.features) | FPSSE | loaded, true);
  image.fill(0, XCOMP_BV, HEADER_END);
  return image;
}

/** The FPU state a handler starts with: every enabled component initial (the kernel clears it for the handler). */
export function initialXstate(g: XstateGeometry, current: Uint8Array): Uint8Array {
  return composeImage(g, current, undefined, 0n, MXCSR_INIT);
}

/**
 * fpu__restore_sig: the XSAVE image rt_sigreturn loads from the area at `buf`, or undefined for
 * a bad frame (SIGSEGV). No area (0) is the initial state. With the software bytes intact the
 * area is the XSAVE form, restored as XRSTOR with the components the bytes name; otherwise only
 * its legacy part, as FXRSTOR. The CPU's own checks are made here: alignment (64 bytes for XRSTOR,
 * 16 for FXRSTOR), a standard-form header (XCOMP_BV and its reserved bytes zero; the compacted form
 * is refused), no component outside XCR0, no reserved MXCSR bit. Components not restored go to
 * their initial state; MXCSR is loaded whenever SSE or AVX is restored (as XRSTOR loads it,
 * whatever XSTATE_BV says), and otherwise kept.
 */
function restoreXstate(mem: GuestMemory, g: XstateGeometry, buf: bigint, current: Uint8Array): Uint8Array | undefined {
  if (buf === 0n) return initialXstate(g, current);
  const at = userAddress(buf);
  const sw = get(mem, at + SW_BYTES, 24);
  if (!sw) return undefined;
  const s = view(sw);
  const xstateSize = s.getUint32(16, true);
  let fxOnly = s.getUint32(0, true) !== FP_XSTATE_MAGIC1 || xstateSize < HEADER_END || xstateSize > g.size || xstateSize > s.getUint32(4, true);
  if (!fxOnly) {
    const magic2 = get(mem, at + xstateSize, 4);
    if (!magic2) return undefined;
    fxOnly = view(magic2).getUint32(0, true) !== FP_XSTATE_MAGIC2;
  }
  const restore = fxOnly ? FPSSE : s.getBigUint64(8, true) & g.features;
  if (at % (fxOnly ? 16 : 64) !== 0) return undefined;
  const area = get(mem, at, fxOnly ? LEGACY_SIZE : g.size);
  if (!area) return undefined;
  const a = view(area);
  const mxcsrRead = (restore & (XFEATURE_SSE | XFEATURE_YMM)) !== 0n;
  const allowed = view(current).getUint32(MXCSR_MASK, true) || MXCSR_MASK_DEFAULT;
  if (mxcsrRead && (a.getUint32(MXCSR, true) & ~allowed) !== 0) return undefined;
  let loaded = restore;
  if (!fxOnly) {
    const present = a.getBigUint64(XSTATE_BV, true);
    if (area.subarray(XCOMP_BV, XCOMP_BV + 16).some((x) => x !== 0) || (present & ~g.features) !== 0n) return undefined;
    loaded &= present;
  }
  const mxcsr = mxcsrRead ? a.getUint32(MXCSR, true) : view(current).getUint32(MXCSR, true);
  return composeImage(g, current, area, loaded, mxcsr);
}

/** What rt_sigreturn takes back from a frame. */
export interface Restored {
  /** The blocked mask, SIGKILL and SIGSTOP left out; undefined when not even it could be read. */
  mask: bigint | undefined;
  /** The registers and XSAVE image to go on with; undefined for a bad frame. */
  regs?: Uint8Array;
  xsave?: Uint8Array;
  /** The alternate stack the frame kept: sp, flags, size as in a stack_t. */
  altStack?: AltStack;
}

/**
 * rt_sigreturn: reads the frame whose return address was popped (RSP − 8 in `regs`) and gives
 * back what it holds: the mask, the general registers, RIP, RFLAGS (only the FIX_EFLAGS bits from
 * the frame, the rest as `regs` have them), the FPU state, the alternate stack. CS and SS must be
 * the ones a frame here carries (a ring-3 64-bit code segment, the data segment; SS is forced
 * valid when the frame does not ask for a strict restore, as the kernel does); anything else, or
 * a frame the program cannot read, or a bad XSAVE area, is a bad frame.
 */
export function restoreFrame(mem: GuestMemory, g: XstateGeometry, regs: Uint8Array, xsave: Uint8Array): Restored {
  const frame = userAddress(reg(regs, 'rsp') - 8n);
  if (frame < 0 || frame > TASK_SIZE_MAX - FRAME_SIZE) return { mask: undefined };
  // In the kernel's order: the mask (set even if the rest turns out bad), the sigcontext, the FPU state, the stack.
  const maskBytes = get(mem, frame + UC_SIGMASK, 8);
  const flagBytes = get(mem, frame + UC_FLAGS, 8);
  if (!maskBytes || !flagBytes) return { mask: undefined };
  const mask = view(maskBytes).getBigUint64(0, true) & ~UNBLOCKABLE;
  const ucFlags = view(flagBytes).getBigUint64(0, true);
  const sc = get(mem, frame + UC_MCONTEXT, SC_READ);
  if (!sc) return { mask };
  const c = view(sc);
  const cs = c.getUint16(SC_CS, true) | 3;
  const ss = c.getUint16(SC_SS, true) | 3;
  if (cs !== USER_CS || (ss !== USER_DS && (ucFlags & BigInt(UC_STRICT_RESTORE_SS)) !== 0n)) return { mask };
  const next = Uint8Array.from(regs);
  SC_REGS.forEach((name, i) => {
    if (name !== 'rflags') setReg(next, name, c.getBigUint64(i * 8, true));
  });
  const flags = c.getBigUint64(SC_REGS.indexOf('rflags') * 8, true);
  setReg(next, 'rflags', (reg(regs, 'rflags') & ~FIX_EFLAGS) | (flags & FIX_EFLAGS));
  const image = restoreXstate(mem, g, c.getBigUint64(SC_FPSTATE, true), xsave);
  if (!image) return { mask };
  const stack = get(mem, frame + UC_STACK, 24);
  if (!stack) return { mask };
  const st = view(stack);
  return { mask, regs: next, xsave: image, altStack: { sp: st.getBigUint64(0, true), flags: st.getUint32(8, true), size: st.getBigUint64(16, true) } };
}
