// The only code the host puts in the guest: one `out` and one `iretq` per door into the host.
//
// On bare-metal KVM, `syscall` enters ring 0 at LSTAR and the entry stub's `out` exits directly.
// On PVM-style nested KVMs (our CI machines) `syscall` reaches LSTAR still in ring 3 with IOPL 0,
// so the same `out` raises #GP, whose IDT stub (ring 0) exits instead; the host recognises the
// faulting instruction and treats both the same way. The same holds for hypercalls: a ring-3
// `out` to the hypercall port exits directly where IOPL 3 works and through #GP where it does
// not. Either way the host returns to ring 3 by pointing RSP at an iretq frame it wrote.
import { EXCEPTION_VECTORS, PORT_EXCEPTION_BASE, PORT_SYSCALL } from './ports.ts';
import { STUBS_ADDR } from './layout.ts';

const OUT_IMM8_AL = 0xe6;
const IRETQ = [0x48, 0xcf];
/** `mov ZERO(%rip), %ds` and `mov ZERO(%rip), %es` (8E /r with a RIP-relative operand), 6 bytes each. */
const MOV_TO_DS = [0x8e, 0x1d];
const MOV_TO_ES = [0x8e, 0x05];
/** `jmp *TARGET(%rip)` (FF /4 with a RIP-relative operand), 6 bytes. */
const JMP_INDIRECT = [0xff, 0x25];
/** `mov SLOT(%rip), %rax` (REX.W 8B /0 with a RIP-relative operand), 7 bytes. */
const MOV_TO_RAX = [0x48, 0x8b, 0x05];
/** `wrfsbase %rax` and `wrgsbase %rax` (F3 REX.W 0F AE /2 and /3), 5 bytes each. */
const WRFSBASE_RAX = [0xf3, 0x48, 0x0f, 0xae, 0xd0];
const WRGSBASE_RAX = [0xf3, 0x48, 0x0f, 0xae, 0xd8];

/** LSTAR: `out PORT_SYSCALL, al; iretq`. The host answers the call and points RSP at an iretq frame. */
export const SYSCALL_ENTRY = STUBS_ADDR;
/** The stub's `iretq`: also where a vCPU starts, with RSP at a frame that enters the program. */
export const IRETQ_RIP = SYSCALL_ENTRY + 2;
/**
 * Ring-3 code that loads the null selector into DS and ES, then jumps to the address the host left
 * in SCRUB_TARGET: the way into a program after a boot or a reset. On PVM-style nested KVMs the DS
 * and ES a program loaded live on in the host thread (into the next VM on it) whatever
 * KVM_SET_SREGS or ring-0 code says, so the program's own ring must put them back. Ring 3 runs
 * natively there: these three instructions cost next to nothing, where ring-0 ones are emulated.
 */
export const SCRUB_ENTRY = STUBS_ADDR + 4;
/** The 8-byte slot the scrub code jumps through; host-written, guest-readable. */
export const SCRUB_TARGET = STUBS_ADDR + 24;
/** A 16-bit zero for the selector loads. */
const ZERO_WORD = STUBS_ADDR + 22;
const EXCEPTION_STUBS = STUBS_ADDR + 32;
const EXCEPTION_STUB_SIZE = 4;
/**
 * Ring-3 code that gives a thread switched onto the vCPU its FS and GS base and its RAX from the
 * slots below, then jumps to where it continues: `wrfsbase` in ring 3 costs next to nothing,
 * where setting the bases from the host (KVM_SET_MSRS or the sync-regs sregs) costs a heavy exit
 * path on nested KVM. It uses RAX only, which it then loads, and leaves RFLAGS alone.
 */
export const SWITCH_ENTRY = EXCEPTION_STUBS + EXCEPTION_VECTORS * EXCEPTION_STUB_SIZE;
/** The switch code's slots, host-written and guest-readable: FS base, GS base, RAX, target. */
export const SWITCH_FS_BASE = SWITCH_ENTRY + 40;
export const SWITCH_GS_BASE = SWITCH_FS_BASE + 8;
export const SWITCH_RAX = SWITCH_FS_BASE + 16;
export const SWITCH_TARGET = SWITCH_FS_BASE + 24;
const STUB_CODE_END = SWITCH_FS_BASE + 32;

export function exceptionStub(vector: number): number {
  return EXCEPTION_STUBS + vector * EXCEPTION_STUB_SIZE;
}

/** The machine code of `out imm8, al`, as found at a faulting RIP: [opcode, port]. */
export const OUT_IMM8_OPCODE = OUT_IMM8_AL;

/** The bytes of the stub page, to be written at STUBS_ADDR. */
export function stubCode(): Uint8Array {
  const code = new Uint8Array(STUB_CODE_END - STUBS_ADDR).fill(0xcc);
  code.set([OUT_IMM8_AL, PORT_SYSCALL, ...IRETQ], 0);
  const rel32 = (target: number, next: number): number[] => {
    const d = target - next;
    return [d & 0xff, (d >> 8) & 0xff, (d >> 16) & 0xff, (d >> 24) & 0xff];
  };
  const scrub = SCRUB_ENTRY - STUBS_ADDR;
  code.set([...MOV_TO_DS, ...rel32(ZERO_WORD, SCRUB_ENTRY + 6)], scrub);
  code.set([...MOV_TO_ES, ...rel32(ZERO_WORD, SCRUB_ENTRY + 12)], scrub + 6);
  code.set([...JMP_INDIRECT, ...rel32(SCRUB_TARGET, SCRUB_ENTRY + 18)], scrub + 12);
  code.fill(0, ZERO_WORD - STUBS_ADDR, SCRUB_TARGET - STUBS_ADDR + 8);
  for (let v = 0; v < EXCEPTION_VECTORS; v++) {
    code.set([OUT_IMM8_AL, PORT_EXCEPTION_BASE + v, ...IRETQ], exceptionStub(v) - STUBS_ADDR);
  }
  let at = SWITCH_ENTRY;
  const emit = (bytes: number[]): void => {
    code.set(bytes, at - STUBS_ADDR);
    at += bytes.length;
  };
  emit([...MOV_TO_RAX, ...rel32(SWITCH_FS_BASE, at + 7)]);
  emit(WRFSBASE_RAX);
  emit([...MOV_TO_RAX, ...rel32(SWITCH_GS_BASE, at + 7)]);
  emit(WRGSBASE_RAX);
  emit([...MOV_TO_RAX, ...rel32(SWITCH_RAX, at + 7)]);
  emit([...JMP_INDIRECT, ...rel32(SWITCH_TARGET, at + 6)]);
  if (at > SWITCH_FS_BASE) throw new Error('the switch code overlaps its slots');
  code.fill(0, SWITCH_FS_BASE - STUBS_ADDR, STUB_CODE_END - STUBS_ADDR);
  return code;
}
