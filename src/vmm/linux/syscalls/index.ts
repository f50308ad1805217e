// The Linux x86-64 system-call table: number → handler, and how each argument register is read.
// Anything not listed answers -ENOSYS, which static glibc, musl and Rust programs handle by
// falling back or failing cleanly.
import type { ArgKind, SyscallHandler } from './context.ts';
import { fileSyscalls } from './files.ts';
import { eventSyscalls } from './event-calls.ts';
import { memorySyscalls } from './memory.ts';
import { pollSyscalls } from './poll.ts';
import { processSyscalls } from './process.ts';
import { signalSyscalls } from './signal-calls.ts';
import { threadSyscalls } from './threads.ts';
import { timeSyscalls } from './time.ts';

/** Numbers from arch/x86/entry/syscalls/syscall_64.tbl, for the calls we answer. */
export const SYSCALL_NUMBERS: Record<string, number> = {
  read: 0, write: 1, open: 2, close: 3, stat: 4, fstat: 5, lstat: 6, poll: 7, lseek: 8, mmap: 9, mprotect: 10,
  munmap: 11, brk: 12, rt_sigaction: 13, rt_sigprocmask: 14, ioctl: 16, pread64: 17, readv: 19, writev: 20,
  access: 21, sched_yield: 24, mremap: 25, madvise: 28, nanosleep: 35, getpid: 39, clone: 56, exit: 60, kill: 62,
  uname: 63, fcntl: 72, getcwd: 79, readlink: 89, gettimeofday: 96, getrlimit: 97, sysinfo: 99, getuid: 102,
  getgid: 104, setuid: 105, setgid: 106, geteuid: 107, getegid: 108, getppid: 110, sigaltstack: 131,
  arch_prctl: 158, setrlimit: 160, gettid: 186, tkill: 200, time: 201, futex: 202, sched_getaffinity: 204,
  set_tid_address: 218, clock_gettime: 228, clock_getres: 229, clock_nanosleep: 230, exit_group: 231,
  tgkill: 234, openat: 257, newfstatat: 262, readlinkat: 267, ppoll: 271, set_robust_list: 273, get_robust_list: 274,
  prlimit64: 302, getrandom: 318, rseq: 334, clone3: 435,
  pipe: 22, epoll_create: 213, epoll_wait: 232, epoll_ctl: 233, epoll_pwait: 281, eventfd: 284, eventfd2: 290,
  epoll_create1: 291, pipe2: 293, epoll_pwait2: 441,
  rt_sigreturn: 15, rt_sigpending: 127, rt_sigsuspend: 130,
};

const INT: ArgKind = 'int', UINT: ArgKind = 'uint', LONG: ArgKind = 'long', ULONG: ArgKind = 'ulong';

/**
 * Each call's arguments as its SYSCALL_DEFINE in the kernel declares them (see ArgKind). Where the
 * kernel narrows a wider argument before using it, the narrow type is listed: readv/writev take
 * `unsigned long fd, vlen` but fdget() and import_iovec() take unsigned ints; mmap's `unsigned
 * long prot, flags, fd` are bit sets and an fd, whose upper halves carry nothing it uses; clone
 * keeps lower_32_bits() of its flags.
 * Arguments past the list reach the handler as 0.
 */
const SYSCALL_ARGS: Record<string, readonly ArgKind[]> = {
  read: [UINT, ULONG, ULONG], write: [UINT, ULONG, ULONG], open: [ULONG, INT, UINT], close: [UINT],
  stat: [ULONG, ULONG], fstat: [UINT, ULONG], lstat: [ULONG, ULONG], lseek: [UINT, LONG, UINT],
  mmap: [ULONG, ULONG, UINT, UINT, UINT, ULONG], mprotect: [ULONG, ULONG, ULONG], munmap: [ULONG, ULONG],
  brk: [ULONG], rt_sigaction: [INT, ULONG, ULONG, ULONG], rt_sigprocmask: [INT, ULONG, ULONG, ULONG],
  ioctl: [UINT, UINT, ULONG], pread64: [UINT, ULONG, ULONG, LONG], readv: [UINT, ULONG, UINT],
  writev: [UINT, ULONG, UINT], access: [ULONG, INT], sched_yield: [], mremap: [ULONG, ULONG, ULONG, ULONG, ULONG],
  madvise: [ULONG, ULONG, INT], nanosleep: [ULONG, ULONG], getpid: [], exit: [INT], kill: [INT, INT],
  clone: [UINT, ULONG, ULONG, ULONG, ULONG], clone3: [ULONG, ULONG], get_robust_list: [INT, ULONG, ULONG],
  uname: [ULONG], fcntl: [UINT, UINT, ULONG], getcwd: [ULONG, ULONG], readlink: [ULONG, ULONG, INT],
  gettimeofday: [ULONG, ULONG], getrlimit: [UINT, ULONG], sysinfo: [ULONG], getuid: [], getgid: [],
  setuid: [UINT], setgid: [UINT], geteuid: [], getegid: [], getppid: [], sigaltstack: [ULONG, ULONG],
  arch_prctl: [INT, ULONG], setrlimit: [UINT, ULONG], gettid: [], tkill: [INT, INT], time: [ULONG],
  futex: [ULONG, INT, UINT, ULONG, ULONG, UINT], sched_getaffinity: [INT, UINT, ULONG], set_tid_address: [ULONG],
  clock_gettime: [INT, ULONG], clock_getres: [INT, ULONG], clock_nanosleep: [INT, INT, ULONG, ULONG],
  exit_group: [INT], tgkill: [INT, INT, INT], openat: [INT, ULONG, INT, UINT], newfstatat: [INT, ULONG, ULONG, INT],
  readlinkat: [INT, ULONG, ULONG, INT], set_robust_list: [ULONG, ULONG], prlimit64: [INT, UINT, ULONG, ULONG],
  getrandom: [ULONG, ULONG, UINT], rseq: [ULONG, UINT, INT, UINT],
  poll: [ULONG, UINT, INT], ppoll: [ULONG, UINT, ULONG, ULONG, ULONG],
  pipe: [ULONG], pipe2: [ULONG, INT], eventfd: [UINT], eventfd2: [UINT, INT], epoll_create: [INT], epoll_create1: [INT],
  epoll_ctl: [INT, INT, INT, ULONG], epoll_wait: [INT, ULONG, INT, INT], epoll_pwait: [INT, ULONG, INT, INT, ULONG, ULONG],
  epoll_pwait2: [INT, ULONG, INT, ULONG, ULONG, ULONG],
  rt_sigreturn: [], rt_sigpending: [ULONG, ULONG], rt_sigsuspend: [ULONG, ULONG],
};

/** A call we answer: its handler and how to read its arguments. */
export interface SyscallEntry {
  readonly handler: SyscallHandler;
  readonly args: readonly ArgKind[];
}

const handlers: Record<string, SyscallHandler> = {
  ...fileSyscalls, ...memorySyscalls, ...pollSyscalls, ...processSyscalls, ...signalSyscalls, ...threadSyscalls, ...timeSyscalls,
  // Last: the file calls again, answering for pipes, eventfds and epoll fds before the files'.
  ...eventSyscalls(fileSyscalls),
};

/** Dense table indexed by system-call number; holes are calls we do not implement. */
export const SYSCALL_TABLE: ReadonlyArray<SyscallEntry | undefined> = (() => {
  const table: Array<SyscallEntry | undefined> = new Array(512).fill(undefined);
  for (const [name, nr] of Object.entries(SYSCALL_NUMBERS)) {
    const handler = handlers[name];
    const args = SYSCALL_ARGS[name];
    if (!handler) throw new Error(`system call ${name} has a number but no handler`);
    if (!args) throw new Error(`system call ${name} has a number but no argument types`);
    table[nr] = { handler, args };
  }
  for (const name of [...Object.keys(handlers), ...Object.keys(SYSCALL_ARGS)]) {
    if (SYSCALL_NUMBERS[name] === undefined) throw new Error(`system call ${name} has a handler or argument types but no number`);
  }
  return table;
})();

export const SYSCALL_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(SYSCALL_NUMBERS).map(([n, nr]) => [nr, n]));
