// Threads: clone and clone3 for the flags pthread_create (glibc, musl) and Go's runtime use,
// thread exit (with its clear-child-tid wake and robust-list walk), thread ids, robust-list
// heads, sched_yield. Threads share everything (memory, files, signal handlers, the one vCPU);
// a clone that would make a new process, or a thread with files or a directory of its own, is not
// supported (ENOSYS). Checks follow the kernel's order (kernel/fork.c).
import { GuestFault } from '../../memory/guest-memory.ts';
import { PAGE_SIZE } from '../../x86/layout.ts';
import type { SyscallContext, SyscallHandler } from './context.ts';
import { E2BIG, EAGAIN, EINVAL, ENOSYS, EPERM, ESRCH } from './errno.ts';
import { exitRobustList, futex, futexKey } from './futex.ts';
import { TASK_SIZE_MAX } from './memory.ts';
import { MAX_THREADS } from './process.ts';

const CSIGNAL = 0xff;
const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_PIDFD = 0x1000;
const CLONE_PTRACE = 0x2000, CLONE_PARENT = 0x8000, CLONE_THREAD = 0x1_0000, CLONE_NEWNS = 0x2_0000;
const CLONE_SYSVSEM = 0x4_0000, CLONE_SETTLS = 0x8_0000, CLONE_PARENT_SETTID = 0x10_0000, CLONE_CHILD_CLEARTID = 0x20_0000;
const CLONE_DETACHED = 0x40_0000, CLONE_UNTRACED = 0x80_0000, CLONE_CHILD_SETTID = 0x100_0000;
const CLONE_NEWUSER = 0x1000_0000, CLONE_NEWPID = 0x2000_0000, CLONE_IO = 0x8000_0000;
/** clone3's flags past the low 32 bits. */
const CLONE_CLEAR_SIGHAND = 1n << 32n, CLONE_INTO_CGROUP = 1n << 33n;
/** What a thread may ask for: sharing all it must share, and flags that change nothing here. */
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS
  | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID | CLONE_DETACHED | CLONE_PARENT | CLONE_PTRACE
  | CLONE_UNTRACED | CLONE_IO;
const THREAD_MUST_SHARE = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
/** struct clone_args: its first size, and its size now (with `cgroup`). */
const CLONE_ARGS_SIZE_VER0 = 64, CLONE_ARGS_SIZE_VER2 = 88;
/** sizeof(struct robust_list_head), the only length set_robust_list accepts. */
const ROBUST_LIST_HEAD_SIZE = 24;
const MAX_PID_NS_LEVEL = 32n;
const INT_MAX = 0x7fff_ffffn;
const NSIG = 64n;

/** put_user of a tid whose failure the kernel ignores (CLONE_PARENT_SETTID, CLONE_CHILD_SETTID). */
function putTid(ctx: SyscallContext, addr: number, tid: number): void {
  try {
    ctx.mem.setU32(addr, tid);
  } catch (err) {
    if (!(err instanceof GuestFault)) throw err;
  }
}

const has = (flags: number, bits: number): boolean => (flags & bits) !== 0;

/**
 * copy_process's checks on `flags` (the low 32 bits), then a thread: returns its tid or -errno.
 * `stack` is its stack pointer (0: the caller's); `setTid` a clone3 that chose the tid, which
 * needs a privilege the program lacks.
 */
function startThread(ctx: SyscallContext, flags: number, stack: number, parentTid: number, childTid: number, tls: number, setTid: boolean): number {
  if (has(flags, CLONE_NEWNS) && has(flags, CLONE_FS)) return -EINVAL;
  if (has(flags, CLONE_NEWUSER) && has(flags, CLONE_FS)) return -EINVAL;
  if (has(flags, CLONE_THREAD) && !has(flags, CLONE_SIGHAND)) return -EINVAL;
  if (has(flags, CLONE_SIGHAND) && !has(flags, CLONE_VM)) return -EINVAL;
  if (has(flags, CLONE_THREAD) && has(flags, CLONE_NEWUSER | CLONE_NEWPID)) return -EINVAL;
  // Linux 6.9 lets a thread have a pidfd (PIDFD_THREAD), earlier kernels refuse: neither is supported here.
  if (has(flags, CLONE_PIDFD) && has(flags, CLONE_DETACHED)) return -EINVAL;
  if ((flags & THREAD_MUST_SHARE) !== THREAD_MUST_SHARE || has(flags, ~(THREAD_FLAGS | CSIGNAL))) return -ENOSYS;
  if (ctx.threads.count >= MAX_THREADS) return -EAGAIN;
  if (setTid) return -EPERM;
  if (has(flags, CLONE_SETTLS) && tls >= TASK_SIZE_MAX) return -EPERM;
  const thread = ctx.threads.spawn({
    stack,
    tls: has(flags, CLONE_SETTLS) ? BigInt(tls) : undefined,
    clearTid: has(flags, CLONE_CHILD_CLEARTID) ? childTid : 0,
  });
  if (!thread) return -EAGAIN;
  if (has(flags, CLONE_PARENT_SETTID)) putTid(ctx, parentTid, thread.tid);
  // The kernel writes it as the child first runs; memory is shared, so now is the same.
  if (has(flags, CLONE_CHILD_SETTID)) putTid(ctx, childTid, thread.tid);
  return thread.tid;
}

/** clone3(uargs, size): struct clone_args read as copy_struct_from_user does, then its checks. */
function clone3(ctx: SyscallContext, uargs: number, size: number): number {
  if (size > PAGE_SIZE) return -E2BIG;
  if (size < CLONE_ARGS_SIZE_VER0) return -EINVAL;
  // A larger struct from a newer program is fine while what this kernel does not know is zero.
  if (size > CLONE_ARGS_SIZE_VER2 && ctx.mem.user(uargs + CLONE_ARGS_SIZE_VER2, size - CLONE_ARGS_SIZE_VER2).some((b) => b !== 0)) return -E2BIG;
  const bytes = new Uint8Array(CLONE_ARGS_SIZE_VER2);
  bytes.set(ctx.mem.user(uargs, Math.min(size, CLONE_ARGS_SIZE_VER2)));
  const view = new DataView(bytes.buffer);
  const field = (i: number): bigint => view.getBigUint64(i * 8, true);
  const flags = field(0), childTid = field(2), parentTid = field(3), exitSignal = field(4), stack = field(5);
  const stackSize = field(6), tls = field(7), setTid = field(8), setTidSize = field(9), cgroup = field(10);
  if (setTidSize > MAX_PID_NS_LEVEL) return -EINVAL;
  if ((setTid === 0n) !== (setTidSize === 0n)) return -EINVAL;
  if ((exitSignal & ~BigInt(CSIGNAL)) !== 0n || exitSignal > NSIG) return -EINVAL;
  if ((flags & CLONE_INTO_CGROUP) !== 0n && (cgroup > INT_MAX || size < CLONE_ARGS_SIZE_VER2)) return -EINVAL;
  if (setTid !== 0n) ctx.mem.check(Number(setTid), Number(setTidSize) * 4);
  // clone3_args_valid
  if ((flags & ~(0xffff_ffffn | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP)) !== 0n) return -EINVAL;
  if ((flags & CLONE_CLEAR_SIGHAND) !== 0n && (flags & BigInt(CLONE_SIGHAND)) !== 0n) return -EINVAL;
  if ((flags & BigInt(CLONE_THREAD | CLONE_PARENT)) !== 0n && exitSignal !== 0n) return -EINVAL;
  if ((stack === 0n) !== (stackSize === 0n)) return -EINVAL;
  // access_ok(stack, stack_size); the stack grows down from its end.
  if (stack !== 0n && (stackSize > BigInt(TASK_SIZE_MAX) || stack > BigInt(TASK_SIZE_MAX) - stackSize)) return -EINVAL;
  if ((flags >> 32n) !== 0n) return -ENOSYS;
  return startThread(ctx, Number(flags), Number(stack + stackSize), Number(parentTid), Number(childTid), Number(tls), setTidSize !== 0n);
}

/**
 * exit(status) ends the calling thread. While others run on, mm_release's work first: its
 * robust futexes are marked OWNER_DIED, then its clear-child-tid word is zeroed and one shared
 * waiter woken (pthread_join waits there). A fault on either is ignored, as the kernel does.
 */
function exitThread(ctx: SyscallContext, status: number): number {
  const t = ctx.threads.current;
  if (ctx.threads.count > 1) {
    if (t.robustList !== 0) exitRobustList(ctx, t.robustList, t.tid);
    if (t.clearTid !== 0) {
      try {
        ctx.mem.setU32(t.clearTid, 0);
        const key = futexKey(ctx, t.clearTid, true);
        if (key >= 0) ctx.threads.futexWake(key, 1, 0xffff_ffff);
      } catch (err) {
        if (!(err instanceof GuestFault)) throw err;
      }
    }
  }
  ctx.threads.exit(status & 0xff);
  return 0;
}

export const threadSyscalls: Record<string, SyscallHandler> = {
  clone: (ctx, flags, stack, parentTid, childTid, tls) => startThread(ctx, flags, stack, parentTid, childTid, tls, false),
  clone3,
  exit: exitThread,
  futex,
  gettid: (ctx) => ctx.threads.current.tid,
  set_tid_address: (ctx, tidptr) => {
    ctx.threads.current.clearTid = tidptr;
    return ctx.threads.current.tid;
  },
  set_robust_list: (ctx, head, len) => {
    if (len !== ROBUST_LIST_HEAD_SIZE) return -EINVAL;
    ctx.threads.current.robustList = head;
    return 0;
  },
  get_robust_list: (ctx, tid, headPtr, lenPtr) => {
    const t = tid === 0 ? ctx.threads.current : ctx.threads.find(tid);
    if (!t) return -ESRCH;
    ctx.mem.setU64(lenPtr, ROBUST_LIST_HEAD_SIZE);
    ctx.mem.setU64(headPtr, t.robustList);
    return 0;
  },
  sched_yield: (ctx) => {
    ctx.threads.yield();
    return 0;
  },
};
