// The floor every request-VM number is compared with: the bare round trip of one exit from ring 3
// to the host and back, measured with a minimal guest built right here (no compiler needed).
import { performance } from 'node:perf_hooks';
import type { Kvm } from '../kvm/kvm.ts';
import { Machine } from '../vmm/machine.ts';
import { MIN_MEMORY_MIB } from '../vmm/x86/layout.ts';

const BASE = 0x40_0000;
const EHDR = 64;
const PHDR = 56;

/** A static ELF whose code makes `exits` hypercall exits (`out` to port 0x80), then exit(0). */
function exitLoopElf(exits: number): Buffer {
  const code = Buffer.from([
    0x41, 0xbc, 0, 0, 0, 0, // mov r12d, exits
    0xe6, 0x80, // 1: out 0x80, al
    0x41, 0xff, 0xcc, // dec r12d
    0x75, 0xf9, // jnz 1b
    0xb8, 0x3c, 0, 0, 0, // mov eax, 60 (exit)
    0x31, 0xff, // xor edi, edi
    0x0f, 0x05, // syscall
  ]);
  code.writeUInt32LE(exits, 2);
  const file = Buffer.alloc(EHDR + PHDR + code.length);
  file.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0); // ELF, 64-bit, little-endian, version 1
  file.writeUInt16LE(2, 16); // ET_EXEC
  file.writeUInt16LE(62, 18); // EM_X86_64
  file.writeUInt32LE(1, 20);
  file.writeBigUInt64LE(BigInt(BASE + EHDR + PHDR), 24); // entry
  file.writeBigUInt64LE(BigInt(EHDR), 32); // phoff
  file.writeUInt16LE(EHDR, 52);
  file.writeUInt16LE(PHDR, 54);
  file.writeUInt16LE(1, 56);
  file.writeUInt32LE(1, EHDR); // PT_LOAD
  file.writeUInt32LE(5, EHDR + 4); // R+X
  file.writeBigUInt64LE(BigInt(BASE), EHDR + 16);
  file.writeBigUInt64LE(BigInt(BASE), EHDR + 24);
  file.writeBigUInt64LE(BigInt(file.length), EHDR + 32);
  file.writeBigUInt64LE(BigInt(file.length), EHDR + 40);
  file.writeBigUInt64LE(0x1000n, EHDR + 48);
  code.copy(file, EHDR + PHDR);
  return file;
}

/** Microseconds per bare ring-3 exit round trip, one value per round (boot excluded). */
export function measureExitFloor(kvm: Kvm, rounds = 5, exits = 5000): number[] {
  const elf = exitLoopElf(exits);
  const discard = { write: (_fd: 1 | 2, d: Uint8Array) => d.length, read: () => 0, poll: (entries: readonly unknown[]) => entries.map(() => 0) };
  const results: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const m = Machine.boot(kvm, elf, { memoryMiB: MIN_MEMORY_MIB, argv: ['floor'], env: [], stdio: discard });
    try {
      const t = performance.now();
      m.run(60_000);
      results.push(((performance.now() - t) * 1000) / exits);
    } finally {
      m.close();
    }
  }
  return results;
}
