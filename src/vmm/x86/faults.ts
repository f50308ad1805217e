// Turns a CPU exception reported by an IDT stub into a sentence a developer can act on:
// "page fault at 0x0 (rip 0x401136 in main+0x16): read of unmapped memory (NULL pointer dereference)".
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
