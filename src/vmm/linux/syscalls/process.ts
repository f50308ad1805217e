// Process and identity system calls for a program that is the only process in its world: pid 1,
// an unprivileged uid. Its threads are in threads.ts, its signals in signal-calls.ts.
import type { SyscallContext, SyscallHandler } from './context.ts';
import { EINVAL, ENOSYS, EPERM, ESRCH } from './errno.ts';
import { TASK_SIZE_MAX } from './memory.ts';
import { GUEST_UID } from '../stack.ts';

/** The program's process id, which is also its first thread's id. */
export const PID = 1;
/**
 * The most threads a program may have alive at once, its first included (its RLIMIT_NPROC):
 * clone past it fails with EAGAIN. Each costs the host about 4.5 KiB while it is off the vCPU
 * (its registers and XSAVE area), so this bounds what a thread bomb can make the host hold.
 */
export const MAX_THREADS = 64;
/** Resource numbers run below RLIM_NLIMITS. */
const RLIM_NLIMITS = 16;
/** struct rlimit64: two 64-bit limits. */
const RLIMIT_SIZE = 16;
/** The guest has one CPU: sched_getaffinity needs room for one bit and answers one word. */
const NR_CPU_IDS = 1, CPUMASK_SIZE = 8;
const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

function writeUtsname(ctx: SyscallContext, addr: number): number {
  const fields = ['Linux', 'tinyedge', '6.1.0-tinyedge', '#1 SMP tinyedge', 'x86_64', '(none)'];
  const b = ctx.mem.writable(addr, 6 * 65);
  b.fill(0);
  fields.forEach((f, i) => b.set(Buffer.from(f), i * 65));
  return 0;
}

function limit(ctx: SyscallContext, resource: number): [bigint, bigint] {
  const RLIMIT_DATA = 2, RLIMIT_STACK = 3, RLIMIT_NPROC = 6, RLIMIT_NOFILE = 7, RLIMIT_AS = 9;
  if (resource === RLIMIT_STACK) {
    const stack = BigInt(ctx.layout.stackTop - ctx.layout.stackBottom);
    return [stack, stack];
  }
  if (resource === RLIMIT_NOFILE) return [256n, 256n];
  if (resource === RLIMIT_NPROC) return [BigInt(MAX_THREADS), BigInt(MAX_THREADS)];
  if (resource === RLIMIT_AS || resource === RLIMIT_DATA) return [BigInt(ctx.layout.memorySize), BigInt(ctx.layout.memorySize)];
  return [RLIM_INFINITY, RLIM_INFINITY];
}

function writeLimit(ctx: SyscallContext, resource: number, addr: number): number {
  if (resource >= RLIM_NLIMITS) return -EINVAL;
  const [cur, max] = limit(ctx, resource);
  ctx.mem.setU64(addr, cur);
  ctx.mem.setU64(addr + 8, max);
  return 0;
}

export const processSyscalls: Record<string, SyscallHandler> = {
  exit_group: (ctx, status) => (ctx.exit(status & 0xff), 0),
  getpid: () => PID,
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
      // As the kernel: no user thread pointer lies in the kernel half or past the canonical hole.
      if (addr >= TASK_SIZE_MAX) return -EPERM;
      ctx.setFsBase(BigInt(addr));
      return 0;
    }
    if (code === ARCH_GET_FS) {
      ctx.mem.setU64(addr, ctx.getFsBase());
      return 0;
    }
    return -EINVAL;
  },
  // glibc registers rseq only when the kernel accepts it; refusing keeps it out of the way.
  rseq: () => -ENOSYS,
  // New limits are accepted and not enforced: the guest's own limits come from its configuration.
  prlimit64: (ctx, pid, resource, newLimit, old) => {
    if (newLimit !== 0) ctx.mem.check(newLimit, RLIMIT_SIZE);
    if (pid !== 0 && pid !== PID) return -ESRCH;
    if (resource >= RLIM_NLIMITS) return -EINVAL;
    return old !== 0 ? writeLimit(ctx, resource, old) : 0;
  },
  getrlimit: (ctx, resource, addr) => writeLimit(ctx, resource, addr),
  setrlimit: (ctx, resource, addr) => (ctx.mem.check(addr, RLIMIT_SIZE), resource >= RLIM_NLIMITS ? -EINVAL : 0),
  sched_getaffinity: (ctx, pid, len, mask) => {
    // The kernel's own test, in its unsigned int arithmetic: `len * 8 < nr_cpu_ids`.
    if (Math.imul(len, 8) >>> 0 < NR_CPU_IDS || len % 8 !== 0) return -EINVAL;
    if (pid !== 0 && pid !== PID) return -ESRCH;
    ctx.mem.writable(mask, CPUMASK_SIZE).set([1, 0, 0, 0, 0, 0, 0, 0]);
    return CPUMASK_SIZE;
  },
  sysinfo: (ctx, addr) => {
    const b = ctx.mem.writable(addr, 112);
    b.fill(0);
    const v = new DataView(b.buffer, b.byteOffset, 112);
    v.setBigInt64(0, BigInt(Math.floor(process.uptime())), true);
    v.setBigUint64(32, BigInt(ctx.layout.memorySize), true);
    v.setBigUint64(40, BigInt(ctx.arena.freeBytes()), true);
    v.setUint16(80, ctx.threads.count, true); // procs: the threads in the system
    v.setUint32(104, 1, true); // mem_unit
    return 0;
  },
};
