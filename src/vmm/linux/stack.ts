// The initial process stack the System V x86-64 ABI promises at the entry point: argc, argv,
// envp, the auxiliary vector (with fresh AT_RANDOM bytes), and the strings they point to.
import { randomFillSync } from 'node:crypto';
import type { LoadedProgram } from './elf.ts';
import type { GuestMemory } from '../memory/guest-memory.ts';

const AT_NULL = 0, AT_PHDR = 3, AT_PHENT = 4, AT_PHNUM = 5, AT_PAGESZ = 6, AT_BASE = 7, AT_FLAGS = 8;
const AT_ENTRY = 9, AT_UID = 11, AT_EUID = 12, AT_GID = 13, AT_EGID = 14, AT_PLATFORM = 15, AT_HWCAP = 16;
const AT_CLKTCK = 17, AT_SECURE = 23, AT_RANDOM = 25, AT_HWCAP2 = 26, AT_EXECFN = 31;

/** The uid/gid a program sees: an unprivileged user, whatever the host runs as. */
export const GUEST_UID = 1000;
/**
 * AT_HWCAP2 stays 0: in particular it does not offer FSGSBASE, so programs set their thread
 * pointer with arch_prctl, which the host sees (a request reset restores FS base from that).
 */
const HWCAP2 = 0;

export interface StackInput {
  argv: string[];
  env: string[];
  hwcap: number;
}

/** Writes the initial stack below `top` and returns the RSP for the entry point. */
export function buildInitialStack(mem: GuestMemory, top: number, program: LoadedProgram, input: StackInput): number {
  let sp = top;
  const pushBytes = (bytes: Uint8Array): number => {
    sp -= bytes.length;
    mem.bytes.set(bytes, sp);
    return sp;
  };
  const pushString = (s: string): number => pushBytes(Buffer.from(`${s}\0`, 'utf8'));

  const execfn = pushString(input.argv[0] ?? 'program');
  const platform = pushString('x86_64');
  const argv = input.argv.map(pushString);
  const env = input.env.map(pushString);
  const random = pushBytes(randomFillSync(new Uint8Array(16)));

  const auxv: Array<[number, number]> = [
    [AT_PHDR, program.phdr], [AT_PHENT, 56], [AT_PHNUM, program.phnum], [AT_PAGESZ, 4096],
    [AT_BASE, 0], [AT_FLAGS, 0], [AT_ENTRY, program.entry], [AT_UID, GUEST_UID], [AT_EUID, GUEST_UID],
    [AT_GID, GUEST_UID], [AT_EGID, GUEST_UID], [AT_SECURE, 0], [AT_PLATFORM, platform], [AT_HWCAP, input.hwcap],
    [AT_HWCAP2, HWCAP2], [AT_CLKTCK, 100], [AT_RANDOM, random], [AT_EXECFN, execfn], [AT_NULL, 0],
  ];
  const words = [argv.length, ...argv, 0, ...env, 0, ...auxv.flat()];
  sp = Math.floor((sp - words.length * 8) / 16) * 16;
  words.forEach((w, i) => mem.view.setBigUint64(sp + i * 8, BigInt(w), true));
  mem.markDirty(sp, top - sp);
  return sp;
}
