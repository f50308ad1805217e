// Process, signal and identity system calls for a single-threaded program that is the only
// process in its world: pid 1, an unprivileged uid, no signal delivery, futexes that never block.
import type { SyscallContext, SyscallHandler } from './context.ts';
import { EAGAIN, EDEADLK, EINVAL, ENOSYS, EPERM, ESRCH } from './errno.ts';
import { GUEST_UID } from '../stack.ts';

const PID = 1;
const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;
const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE', 9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM' };

function writeUtsname(ctx: SyscallContext, addr: number): number {
  const fields = ['Linux', 'tinyedge', '6.1.0-tinyedge', '#1 SMP tinyedge', 'x86_64', '(none)'];
  const b = ctx.mem.writable(addr, 6 * 65);
  b.fill(0);
  fields.forEach((f, i) => b.set(Buffer.from(f), i * 65));
  return 0;
}

function limit(ctx: SyscallContext, resource: number): [bigint, bigint] {
  const RLIMIT_DATA = 2, RLIMIT_STACK = 3, RLIMIT_NOFILE = 7, RLIMIT_AS = 9;
  if (resource === RLIMIT_STACK) {
    const stack = BigInt(ctx.layout.stackTop - ctx.layout.stackBottom);
    return [stack, stack];
  }
  if (resource === RLIMIT_NOFILE) return [256n, 256n];
  if (resource === RLIMIT_AS || resource === RLIMIT_DATA) return [BigInt(ctx.layout.memorySize), BigInt(ctx.layout.memorySize)];
  return [RLIM_INFINITY, RLIM_INFINITY];
}

function writeLimit(ctx: SyscallContext, resource: number, addr: number): number {
  if (resource > 15) return -EINVAL;
  const [cur, max] = limit(ctx, resource);
  ctx.mem.setU64(addr, cur);
  ctx.mem.setU64(addr + 8, max);
  return 0;
}

function signal(ctx: SyscallContext, pid: number, sig: number): number {
  if ((pid | 0) !== PID && (pid | 0) !== 0 && (pid | 0) !== -1) return -ESRCH;
  if (sig === 0) return 0;
  if (sig < 1 || sig > 64) return -EINVAL;
  ctx.exit(128 + sig, SIGNALS[sig] ?? `signal ${sig}`);
  return 0;
}

export const processSyscalls: Record<string, SyscallHandler> = {
  exit: (ctx, status) => (ctx.exit(status & 0xff), 0),
  exit_group: (ctx, status) => (ctx.exit(status & 0xff), 0),
  getpid: () => PID,
  gettid: () => PID,
  getppid: () => 0,
  getuid: () => GUEST_UID,
  geteuid: () => GUEST_UID,
  getgid: () => GUEST_UID,
  getegid: () => GUEST_UID,
  setuid: () => -EPERM,
  setgid: () => -EPERM,
  uname: writeUtsname,
  arch_prctl: (ctx, code, addr) => {
    const ARCH_SET_FS = 0x1002, ARCH_GET_FS = 0x1003;
    if (code === ARCH_SET_FS) {
      ctx.setFsBase(BigInt(addr));
      return 0;
    }
    if (code === ARCH_GET_FS) {
      ctx.mem.setU64(addr, ctx.getFsBase());
      return 0;
    }
    return -EINVAL;
  },
  set_tid_address: () => PID,
  set_robust_list: () => 0,
  // glibc registers rseq only when the kernel accepts it; refusing keeps it out of the way.
  rseq: () => -ENOSYS,
  prlimit64: (ctx, pid, resource, _newLimit, old) => {
    if ((pid | 0) !== 0 && pid !== PID) return -ESRCH;
    return old !== 0 ? writeLimit(ctx, resource, old) : 0;
  },
  getrlimit: (ctx, resource, addr) => writeLimit(ctx, resource, addr),
  setrlimit: () => 0,
  rt_sigaction: (ctx, _sig, _act, old) => (old !== 0 ? (ctx.mem.writable(old, 32).fill(0), 0) : 0),
  rt_sigprocmask: (ctx, _how, _set, old) => (old !== 0 ? (ctx.mem.writable(old, 8).fill(0), 0) : 0),
  sigaltstack: (ctx, _ss, old) => {
    if (old !== 0) {
      ctx.mem.writable(old, 24).fill(0);
      ctx.mem.setU32(old + 8, 2); // SS_DISABLE
    }
    return 0;
  },
  kill: (ctx, pid, sig) => signal(ctx, pid, sig),
  tkill: (ctx, _tid, sig) => signal(ctx, PID, sig),
  tgkill: (ctx, pid, _tid, sig) => signal(ctx, pid, sig),
  sched_yield: () => 0,
  sched_getaffinity: (ctx, _pid, len, mask) => {
    if (len < 8) return -EINVAL;
    ctx.mem.writable(mask, 8).set([1, 0, 0, 0, 0, 0, 0, 0]);
    return 8;
  },
  futex: (ctx, uaddr, op, val) => {
    const cmd = op & 0x7f;
    const FUTEX_WAIT = 0, FUTEX_WAKE = 1, FUTEX_WAIT_BITSET = 9, FUTEX_WAKE_BITSET = 10;
    if (cmd === FUTEX_WAKE || cmd === FUTEX_WAKE_BITSET) return 0;
    if (cmd === FUTEX_WAIT || cmd === FUTEX_WAIT_BITSET) {
      ctx.mem.check(uaddr, 4);
      // One thread: a wait whose condition holds would never be woken.
      return ctx.mem.view.getUint32(uaddr, true) !== (val >>> 0) ? -EAGAIN : -EDEADLK;
    }
    return -ENOSYS;
  },
  sysinfo: (ctx, addr) => {
    const b = ctx.mem.writable(addr, 112);
    b.fill(0);
    const v = new DataView(b.buffer, b.byteOffset, 112);
    v.setBigInt64(0, BigInt(Math.floor(process.uptime())), true);
    v.setBigUint64(32, BigInt(ctx.layout.memorySize), true);
    v.setBigUint64(40, BigInt(ctx.arena.freeBytes()), true);
    v.setUint16(80, 1, true); // procs
    v.setUint32(104, 1, true); // mem_unit
    return 0;
  },
};
