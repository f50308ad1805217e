// Turns a CPU exception reported by an IDT stub into a sentence a developer can act on:
// "page fault at 0x0 (rip 0x401136 in main+0x16): read of unmapped memory (NULL pointer dereference)",
// and into the signal Linux raises for it in ring 3 (arch/x86/kernel/traps.c, arch/x86/mm/fault.c).
import { BUS_ADRALN, FPE_FLTDIV, FPE_FLTINV, FPE_FLTOVF, FPE_FLTRES, FPE_FLTUND, FPE_INTDIV, ILL_ILLOPN, type PendingSignal,
  SEGV_ACCERR, SEGV_MAPERR, SI_KERNEL, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP, type SigInfo } from '../linux/signals.ts';
import { TASK_SIZE_MAX } from '../memory/guest-memory.ts';
import type { Layout } from './layout.ts';

const NAMES: Record<number, string> = {
  0: 'divide error', 1: 'debug trap', 3: 'breakpoint (int3)', 4: 'overflow', 5: 'bound range exceeded',
  6: 'invalid opcode', 7: 'device not available', 8: 'double fault', 10: 'invalid TSS', 11: 'segment not present',
  12: 'stack-segment fault', 13: 'general protection fault', 14: 'page fault', 16: 'x87 floating-point exception',
  17: 'alignment check', 18: 'machine check', 19: 'SIMD floating-point exception', 21: 'control protection fault',
};

/** Vectors for which the CPU pushes an error code. */
export const HAS_ERROR_CODE = new Set([8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);

export interface ExceptionInfo {
  vector: number;
  rip: number;
  errorCode: number;
  /** CR2: the faulting address of a page fault. */
  address: number;
  /** The function at RIP, e.g. `main+0x16`, when the program has symbols for it. */
  symbol?: string;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** `protNone`: the address lies in a mapping with no access (a guard page, a reservation). */
export function describeException(e: ExceptionInfo, layout: Layout, protNone = false): string {
  const name = NAMES[e.vector] ?? `CPU exception ${e.vector}`;
  const rip = `rip ${hex(e.rip)}${e.symbol === undefined ? '' : ` in ${e.symbol}`}`;
  if (e.vector !== 14) return `${name} (${rip})`;
  const present = (e.errorCode & 1) !== 0;
  const write = (e.errorCode & 2) !== 0;
  const fetch = (e.errorCode & 16) !== 0;
  const access = fetch ? 'execute' : write ? 'write' : 'read';
  let what: string;
  if (!present) what = `${access} of unmapped memory`;
  else if (fetch) what = 'execute of non-executable memory';
  else if (write) what = 'write to read-only memory';
  else what = `${access} of protected memory`;
  let why = '';
  if (protNone) why = ' (a PROT_NONE page: a guard page or reserved address space)';
  else if (e.address < 4096) why = ' (NULL pointer dereference)';
  else if (e.address >= layout.arenaEnd && e.address < layout.stackBottom) why = ' (stack overflow)';
  else if (e.address < 0x10000) why = ' (hypervisor memory)';
  return `${name} at ${hex(e.address)} (${rip}): ${what}${why}`;
}

/** Page-fault error code: the page was present (a protection fault). */
const PF_PROT = 1;

/**
 * The signal and siginfo Linux raises for exception `vector` in ring 3, with the error code `err`,
 * CR2 `cr2` and RIP `rip`; undefined for the exceptions that raise none here (they end the run).
 * `mapped`: a mapping holds CR2 (SEGV_ACCERR, else SEGV_MAPERR). `xsave` gives the FPU state, whose
 * status words say which x87 (#MF) or SIMD (#XM) exception it was. The trap info is what the
 * sigcontext shows: a page fault where nothing is mapped reads not present (pages the host keeps
 * are present to the CPU), one at a kernel address a protection fault, as the kernel reports them.
 */
export function exceptionSignal(vector: number, err: number, cr2: number, rip: number, mapped: boolean, xsave: () => Uint8Array): PendingSignal | undefined {
  const raise = (info: SigInfo, trapErr = err, trapCr2 = 0): PendingSignal => ({ info, trap: { trapno: vector, err: trapErr, cr2: trapCr2 } });
  switch (vector) {
    case 0: return raise({ signo: SIGFPE, code: FPE_INTDIV, addr: BigInt(rip) });
    case 3: return raise({ signo: SIGTRAP, code: SI_KERNEL });
    case 6: return raise({ signo: SIGILL, code: ILL_ILLOPN, addr: BigInt(rip) });
    case 11: case 12: return raise({ signo: SIGBUS, code: SI_KERNEL, addr: 0n });
    case 13: return raise({ signo: SIGSEGV, code: SI_KERNEL, addr: 0n });
    case 14: {
      const trapErr = cr2 >= TASK_SIZE_MAX ? err | PF_PROT : mapped ? err : err & ~PF_PROT;
      return raise({ signo: SIGSEGV, code: mapped ? SEGV_ACCERR : SEGV_MAPERR, addr: BigInt(cr2) }, trapErr, cr2);
    }
    case 16: case 19: {
      const code = fpuErrorCode(vector, xsave());
      return code === 0 ? undefined : raise({ signo: SIGFPE, code, addr: BigInt(rip) });
    }
    case 17: return raise({ signo: SIGBUS, code: BUS_ADRALN, addr: 0n });
    default: return undefined;
  }
}

/** fpu__exception_code: the first unmasked x87 (#MF) or SIMD (#XM) exception flagged in the XSAVE image; 0 for none. */
function fpuErrorCode(vector: number, xsave: Uint8Array): number {
  const v = new DataView(xsave.buffer, xsave.byteOffset, xsave.byteLength);
  const FCW = 0, FSW = 2, MXCSR = 24;
  const mxcsr = v.getUint32(MXCSR, true);
  const e = vector === 16 ? v.getUint16(FSW, true) & ~v.getUint16(FCW, true) : ~(mxcsr >> 7) & mxcsr;
  if (e & 0x001) return FPE_FLTINV;
  if (e & 0x004) return FPE_FLTDIV;
  if (e & 0x008) return FPE_FLTOVF;
  if (e & 0x012) return FPE_FLTUND;
  if (e & 0x020) return FPE_FLTRES;
  return 0;
}
