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

/** LSTAR: `out PORT_SYSCALL, al; iretq`. The host answers the call and points RSP at an iretq frame. */
export const SYSCALL_ENTRY = STUBS_ADDR;
/** The stub's `iretq`: also where a vCPU starts, with RSP at a frame that enters the program. */
export const IRETQ_RIP = SYSCALL_ENTRY + 2;
const EXCEPTION_STUBS = STUBS_ADDR + 16;
const EXCEPTION_STUB_SIZE = 4;

export function exceptionStub(vector: number): number {
  return EXCEPTION_STUBS + vector * EXCEPTION_STUB_SIZE;
}

/** The machine code of `out imm8, al`, as found at a faulting RIP: [opcode, port]. */
export const OUT_IMM8_OPCODE = OUT_IMM8_AL;

/** The bytes of the stub page, to be written at STUBS_ADDR. */
export function stubCode(): Uint8Array {
  const code = new Uint8Array(EXCEPTION_STUBS - STUBS_ADDR + EXCEPTION_VECTORS * EXCEPTION_STUB_SIZE).fill(0xcc);
  code.set([OUT_IMM8_AL, PORT_SYSCALL, ...IRETQ], 0);
  for (let v = 0; v < EXCEPTION_VECTORS; v++) {
    code.set([OUT_IMM8_AL, PORT_EXCEPTION_BASE + v, ...IRETQ], exceptionStub(v) - STUBS_ADDR);
  }
  return code;
}
