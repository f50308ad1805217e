// System calls as the trace prints them, strace-style:
//   openat(AT_FDCWD, "/etc/passwd", O_RDONLY) = -1 EACCES (Permission denied)
// Arguments are decoded from the raw argument registers by the kind each call's argument has
// here (strings and buffers read through GuestMemory's checks, bounded; a pointer that does not
// check out prints as its address), flags by their kernel names, results with errno names. Only
// the trace uses this module: nothing here runs unless a trace is on.
import type { GuestMemory } from '../../memory/guest-memory.ts';
import { type SigInfo, signalName } from '../signals.ts';
import { errnoName } from './errno-names.ts';
import { CONSTANT_NAMES, type ConstantKind, FLAG_NAMES, type FlagKind } from './decode-tables.ts';

/** How one argument prints. */
type ArgFormat =
  | 'int' | 'uint' | 'long' | 'ulong' | 'hex' | 'ptr' | 'fd' | 'dirfd' | 'mode'
  /** A NUL-terminated string. */
  | 'str'
  /** Bytes the call reads: the length is the next argument. */
  | 'inbuf'
  /** Bytes the call wrote: as many as it returned. */
  | 'outbuf'
  | FlagKind | ConstantKind;

const I = 'int', U = 'uint', L = 'long', UL = 'ulong', H = 'hex', P = 'ptr', FD = 'fd', S = 'str';

/** The calls whose arguments the trace decodes; any other call shows its six registers in hex. */
const FORMATS: Record<string, readonly ArgFormat[]> = {
  read: [FD, 'outbuf', UL], write: [FD, 'inbuf', UL], open: [S, 'open', 'mode'], close: [FD],
  stat: [S, P], fstat: [FD, P], lstat: [S, P], poll: [P, U, I], lseek: [FD, L, 'whence'],
  mmap: [P, UL, 'prot', 'map', FD, UL], mprotect: [P, UL, 'prot'], munmap: [P, UL], brk: [P],
  rt_sigaction: ['signal', P, P, UL], rt_sigprocmask: ['sighow', P, P, UL], rt_sigreturn: [],
  rt_sigpending: [P, UL], rt_sigsuspend: [P, UL],
  ioctl: [FD, 'ioctl', H], pread64: [FD, 'outbuf', UL, L], pwrite64: [FD, 'inbuf', UL, L],
  readv: [FD, P, I], writev: [FD, P, I], access: [S, 'access'], pipe: [P], select: [I, P, P, P, P],
  sched_yield: [], mremap: [P, UL, UL, 'mremap', P], msync: [P, UL, I], mincore: [P, UL, P],
  madvise: [P, UL, 'madvise'], dup: [FD], dup2: [FD, FD], nanosleep: [P, P], getpid: [],
  socket: [I, I, I], connect: [FD, P, I], clone: ['clone', P, P, P, H], fork: [], vfork: [],
  execve: [S, P, P], exit: [I], wait4: [I, P, H, P], kill: [I, 'signal'], uname: [P],
  fcntl: [FD, 'fcntl', H], getcwd: [P, UL], readlink: [S, 'outbuf', UL], gettimeofday: [P, P],
  getrlimit: ['rlimit', P], sysinfo: [P], getuid: [], getgid: [], setuid: [U], setgid: [U],
  geteuid: [], getegid: [], getppid: [], sigaltstack: [P, P], arch_prctl: ['arch_prctl', H],
  prctl: [I, H, H, H, H], setrlimit: ['rlimit', P], gettid: [], tkill: [I, 'signal'], time: [P],
  futex: [P, 'futex', U, P, P, U], sched_setaffinity: [I, U, P], sched_getaffinity: [I, U, P],
  set_tid_address: [P], getdents64: [FD, P, U], clock_gettime: ['clock', P], clock_getres: ['clock', P],
  clock_nanosleep: ['clock', 'timer', P, P], exit_group: [I], tgkill: [I, I, 'signal'],
  openat: ['dirfd', S, 'open', 'mode'], mkdirat: ['dirfd', S, 'mode'], newfstatat: ['dirfd', S, P, 'at'],
  unlinkat: ['dirfd', S, H], readlinkat: ['dirfd', S, 'outbuf', UL], faccessat: ['dirfd', S, 'access'],
  pselect6: [I, P, P, P, P, P], ppoll: [P, U, P, P, UL], set_robust_list: [P, UL], get_robust_list: [I, P, P],
  epoll_wait: [FD, P, I, I], epoll_ctl: [FD, I, FD, P], epoll_pwait: [FD, P, I, I, P, UL], eventfd2: [U, H],
  epoll_create1: [H], dup3: [FD, FD, 'open'], pipe2: [P, 'open'], prlimit64: [I, 'rlimit', P, P],
  getrandom: [P, UL, 'getrandom'], memfd_create: [S, H], statx: ['dirfd', S, 'at', H, P], rseq: [P, U, H, H],
  clone3: [P, UL], close_range: [U, U, H], faccessat2: ['dirfd', S, 'access', 'at'], membarrier: [I, H, I],
  getcpu: [P, P, P],
};

/** Calls that take a mode only with O_CREAT or O_TMPFILE: the index of their flags (the mode is last). */
const OPEN_FLAGS_AT: Record<string, number> = { open: 1, openat: 2 };
const O_CREAT = 0o100;
const O_TMPFILE = 0o20000000;

/** Calls whose result is an address. */
const HEX_RESULT = new Set(['mmap', 'mremap', 'brk']);
/** Calls that do not return. */
const NO_RETURN = new Set(['exit', 'exit_group']);

/** Strings and buffers print at most this many bytes, then `...`. */
const MAX_SHOWN = 64;
const MAX_ERRNO = 4095;

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const AT_FDCWD = -100;

/**
 * Up to `max` bytes of guest memory from `addr`, read page by page through the checked view and
 * stopping at the first page that does not check out (or, for a string, after its NUL);
 * undefined when not even the first byte is readable.
 */
export function guestBytes(mem: GuestMemory, addr: bigint, max: number, toNul: boolean): Uint8Array | undefined {
  if (addr > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  const start = Number(addr);
  const parts: Uint8Array[] = [];
  let at = start;
  while (at - start < max) {
    const n = Math.min(max - (at - start), 4096 - (at % 4096));
    let chunk: Uint8Array;
    try {
      chunk = mem.user(at, n);
    } catch {
      break;
    }
    const nul = toNul ? chunk.indexOf(0) : -1;
    if (nul >= 0) {
      parts.push(chunk.subarray(0, nul + 1));
      break;
    }
    parts.push(chunk);
    at += n;
  }
  return parts.length === 0 ? undefined : Buffer.concat(parts);
}

/** `bytes` as a C string literal: printable ASCII as is, the rest escaped. */
export function quote(bytes: Uint8Array, more: boolean): string {
  let s = '"';
  for (const b of bytes) {
    if (b === 0x22 || b === 0x5c) s += `\\${String.fromCharCode(b)}`;
    else if (b === 0x0a) s += '\\n';
    else if (b === 0x09) s += '\\t';
    else if (b === 0x0d) s += '\\r';
    else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
    else s += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return `${s}"${more ? '...' : ''}`;
}

function cString(mem: GuestMemory, addr: bigint): string {
  if (addr === 0n) return 'NULL';
  const bytes = guestBytes(mem, addr, MAX_SHOWN + 1, true);
  if (!bytes) return hex(addr);
  const terminated = bytes[bytes.length - 1] === 0;
  if (terminated) return quote(bytes.subarray(0, bytes.length - 1), false);
  return quote(bytes.subarray(0, MAX_SHOWN), true);
}

function buffer(mem: GuestMemory, addr: bigint, length: bigint): string {
  if (addr === 0n) return 'NULL';
  if (length <= 0n) return '""';
  const want = length > BigInt(MAX_SHOWN) ? MAX_SHOWN : Number(length);
  const bytes = guestBytes(mem, addr, want, false);
  if (!bytes) return hex(addr);
  return quote(bytes, BigInt(bytes.length) < length);
}

/** `value` as the names of the bits it sets (`A|B`), anything left over in hex. */
function flagNames(kind: FlagKind, value: number): string {
  const table = FLAG_NAMES[kind];
  const names: string[] = [];
  // Unsigned throughout: CLONE_IO is bit 31.
  let rest = value >>> 0;
  for (const [bit, name] of table) {
    if (bit !== 0 && ((rest & bit) >>> 0) === bit) {
      names.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0) names.push(`0x${rest.toString(16)}`);
  return names.length > 0 ? names.join('|') : (table.find(([bit]) => bit === 0)?.[1] ?? '0');
}

function constantName(kind: ConstantKind, value: number): string {
  return CONSTANT_NAMES[kind].get(value) ?? String(value);
}

/** One argument: `raw` is its register, `next` the one after it, `result` what the call returned. */
function formatArg(mem: GuestMemory, format: ArgFormat, raw: bigint, next: bigint, result: number): string {
  const int = Number(BigInt.asIntN(32, raw));
  const uint = Number(BigInt.asUintN(32, raw));
  switch (format) {
    case 'int': case 'fd': return String(int);
    case 'uint': return String(uint);
    case 'long': return BigInt.asIntN(64, raw).toString();
    case 'ulong': return raw.toString();
    case 'hex': return hex(raw);
    case 'ptr': return raw === 0n ? 'NULL' : hex(raw);
    case 'dirfd': return int === AT_FDCWD ? 'AT_FDCWD' : String(int);
    case 'mode': return `0${uint.toString(8)}`;
    case 'str': return cString(mem, raw);
    case 'inbuf': return buffer(mem, raw, next);
    // What the call wrote: nothing to show when it failed.
    case 'outbuf': return result >= 0 ? buffer(mem, raw, BigInt(result)) : raw === 0n ? 'NULL' : hex(raw);
    case 'open': return openFlags(uint);
    case 'futex': return futexOp(uint);
    case 'clone': return cloneFlags(raw);
    default:
      if (format in FLAG_NAMES) return flagNames(format as FlagKind, uint);
      return constantName(format as ConstantKind, int);
  }
}

function openFlags(flags: number): string {
  const access = ['O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_ACCMODE'][flags & 3]!;
  const rest = flags & ~3;
  return rest === 0 ? access : `${access}|${flagNames('open', rest)}`;
}

const FUTEX_PRIVATE_FLAG = 128;
const FUTEX_CLOCK_REALTIME = 256;

function futexOp(op: number): string {
  const cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
  let s = constantName('futex', cmd);
  if (op & FUTEX_PRIVATE_FLAG) s += '_PRIVATE';
  if (op & FUTEX_CLOCK_REALTIME) s += '|FUTEX_CLOCK_REALTIME';
  return s;
}

/** clone's flags: the exit signal in the low byte, flag bits above. */
function cloneFlags(raw: bigint): string {
  const flags = Number(BigInt.asUintN(32, raw));
  const signal = flags & 0xff;
  const names = flagNames('clone', flags & ~0xff);
  const parts = names === '0' ? [] : [names];
  if (signal !== 0) parts.push(constantName('signal', signal));
  return parts.length === 0 ? '0' : parts.join('|');
}

/** The result as strace shows it: `-1 ENAME (message)` for an error. */
function formatResult(name: string | undefined, result: number, implemented: boolean): string {
  if (result < 0 && result >= -MAX_ERRNO) {
    const errno = -result;
    if (!implemented) return `-1 ENOSYS (not implemented by tinyedge)`;
    const [ename, message] = errnoName(errno) ?? [`E${errno}`, 'Unknown error'];
    return `-1 ${ename} (${message})`;
  }
  return name !== undefined && HEX_RESULT.has(name) ? `0x${result.toString(16)}` : String(result);
}

/**
 * One system call as a trace line. `name` is the call's (undefined for a number x86-64 does not
 * use), `args` its six argument registers (or its arguments already decoded); `result` is what it returned, `implemented` whether
 * tinyedge answers it, `exited` whether it ended the program (no result).
 */
export function formatSyscall(mem: GuestMemory, nr: number, name: string | undefined, args: readonly bigint[] | string, result: number, implemented: boolean, exited: boolean): string {
  const formats = name === undefined ? undefined : FORMATS[name];
  const shown = typeof args === 'string' ? [args]
    : formats ? formats.map((f, i) => formatArg(mem, f, args[i]!, args[i + 1] ?? 0n, result))
    : args.map(hex);
  const flagsAt = name === undefined ? undefined : OPEN_FLAGS_AT[name];
  if (typeof args !== 'string' && flagsAt !== undefined && (Number(args[flagsAt]! & 0xffff_ffffn) & (O_CREAT | O_TMPFILE)) === 0) shown.pop();
  const call = `${name ?? `syscall_${nr}`}(${shown.join(', ')})`;
  if (exited || (name !== undefined && NO_RETURN.has(name) && implemented)) return `${call} = ?`;
  return `${call} = ${formatResult(name, result, implemented)}`;
}

/** si_code names by signal (include/uapi/asm-generic/siginfo.h), for the codes the kernel raises here. */
const FAULT_CODES: Record<number, readonly string[]> = {
  4: ['', 'ILL_ILLOPC', 'ILL_ILLOPN'], 5: ['', 'TRAP_BRKPT', 'TRAP_TRACE'], 7: ['', 'BUS_ADRALN', 'BUS_ADRERR'],
  8: ['', 'FPE_INTDIV', 'FPE_INTOVF', 'FPE_FLTDIV', 'FPE_FLTOVF', 'FPE_FLTUND', 'FPE_FLTRES', 'FPE_FLTINV'],
  11: ['', 'SEGV_MAPERR', 'SEGV_ACCERR'],
};
const GENERIC_CODES: ReadonlyMap<number, string> = new Map([[0, 'SI_USER'], [0x80, 'SI_KERNEL'], [-6, 'SI_TKILL']]);

/** A delivered signal's siginfo as strace prints it: `si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10`. */
export function formatSiginfo(info: SigInfo): string {
  const code = GENERIC_CODES.get(info.code) ?? (FAULT_CODES[info.signo]?.[info.code] || String(info.code));
  const fields = [`si_signo=${signalName(info.signo)}`, `si_code=${code}`];
  if (info.pid !== undefined) fields.push(`si_pid=${info.pid}`, `si_uid=${info.uid ?? 0}`);
  if (info.addr !== undefined) fields.push(`si_addr=${info.addr === 0n ? 'NULL' : `0x${info.addr.toString(16)}`}`);
  return fields.join(', ');
}

/** A signal mask as strace prints it: `[USR1 TERM]`, or `~[...]` for the complement when most are set. */
export function formatSigset(mask: bigint): string {
  const names = (m: bigint): string[] => {
    const out: string[] = [];
    for (let sig = 1; sig <= 64; sig++) if ((m & (1n << BigInt(sig - 1))) !== 0n) out.push(signalName(sig).replace(/^SIG/, ''));
    return out;
  };
  const set = names(mask);
  if (set.length <= 32) return `[${set.join(' ')}]`;
  return `~[${names(~mask & ((1n << 64n) - 1n)).join(' ')}]`;
}
