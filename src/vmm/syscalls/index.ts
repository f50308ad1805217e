// The Linux x86-64 system-call table: number → handler. Anything not listed answers -ENOSYS,
// which static glibc, musl and Rust programs handle by falling back or failing cleanly.
import type { SyscallHandler } from './context.ts';
import { fileSyscalls } from './files.ts';
import { memorySyscalls } from './memory.ts';
import { processSyscalls } from './process.ts';
import { timeSyscalls } from './time.ts';

/** Numbers from arch/x86/entry/syscalls/syscall_64.tbl, for the calls we answer. */
export const SYSCALL_NUMBERS: Record<string, number> = {
  read: 0, write: 1, open: 2, close: 3, stat: 4, fstat: 5, lstat: 6, lseek: 8, mmap: 9, mprotect: 10,
  munmap: 11, brk: 12, rt_sigaction: 13, rt_sigprocmask: 14, ioctl: 16, pread64: 17, readv: 19, writev: 20,
  access: 21, sched_yield: 24, mremap: 25, madvise: 28, nanosleep: 35, getpid: 39, exit: 60, kill: 62,
  uname: 63, fcntl: 72, getcwd: 79, readlink: 89, gettimeofday: 96, getrlimit: 97, sysinfo: 99, getuid: 102,
  getgid: 104, setuid: 105, setgid: 106, geteuid: 107, getegid: 108, getppid: 110, sigaltstack: 131,
  arch_prctl: 158, setrlimit: 160, gettid: 186, tkill: 200, time: 201, futex: 202, sched_getaffinity: 204,
  set_tid_address: 218, clock_gettime: 228, clock_getres: 229, clock_nanosleep: 230, exit_group: 231,
  tgkill: 234, openat: 257, newfstatat: 262, readlinkat: 267, set_robust_list: 273, prlimit64: 302,
  getrandom: 318, rseq: 334,
};

const handlers: Record<string, SyscallHandler> = { ...fileSyscalls, ...memorySyscalls, ...processSyscalls, ...timeSyscalls };

/** Dense table indexed by system-call number; holes are calls we do not implement. */
export const SYSCALL_TABLE: ReadonlyArray<SyscallHandler | undefined> = (() => {
  const table: Array<SyscallHandler | undefined> = new Array(512).fill(undefined);
  for (const [name, nr] of Object.entries(SYSCALL_NUMBERS)) {
    const h = handlers[name];
    if (!h) throw new Error(`system call ${name} has a number but no handler`);
    table[nr] = h;
  }
  for (const name of Object.keys(handlers)) {
    if (SYSCALL_NUMBERS[name] === undefined) throw new Error(`system call ${name} has a handler but no number`);
  }
  return table;
})();

export const SYSCALL_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(SYSCALL_NUMBERS).map(([n, nr]) => [nr, n]));
