// Signal system calls: actions (rt_sigaction), masks (rt_sigprocmask, rt_sigpending,
// rt_sigsuspend), alternate stacks (sigaltstack), sending (kill, tkill, tgkill) and the return
// from a handler (rt_sigreturn). Checks and copies in the kernel's order (kernel/signal.c); the
// state is linux/signals.ts's, delivery is run/delivery.ts's.
import { altStackMode, SIGKILL, SIGSTOP, type SigAction, SI_TKILL, SI_USER, SS_AUTODISARM, type SigInfo, setAltStack, UNBLOCKABLE, UAPI_SA_FLAGS } from '../signals.ts';
import { GUEST_UID } from '../stack.ts';
import type { SyscallContext, SyscallHandler } from './context.ts';
import { EINVAL, ESRCH } from './errno.ts';
import { PID } from './process.ts';

/** The kernel's sigset_t, the only size rt_sigaction, rt_sigprocmask and rt_sigsuspend accept. */
const SIGSET_SIZE = 8;
/** The kernel's struct sigaction on x86-64: handler, flags, restorer, mask. */
const SIGACTION_SIZE = 32;
/** stack_t: ss_sp, ss_flags (an int, then padding), ss_size. */
const STACK_T_SIZE = 24;
const SIG_BLOCK = 0, SIG_UNBLOCK = 1, SIG_SETMASK = 2;
const NSIG = 64;

const dataView = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

function readSigset(ctx: SyscallContext, addr: number): bigint {
  return dataView(ctx.mem.user(addr, SIGSET_SIZE)).getBigUint64(0, true);
}

function rtSigaction(ctx: SyscallContext, sig: number, act: number, oact: number, sigsetsize: number): number {
  if (sigsetsize !== SIGSET_SIZE) return -EINVAL;
  let next: SigAction | undefined;
  if (act !== 0) {
    const v = dataView(ctx.mem.user(act, SIGACTION_SIZE));
    next = { handler: v.getBigUint64(0, true), flags: Number(v.getBigUint64(8, true) & BigInt(UAPI_SA_FLAGS)), restorer: v.getBigUint64(16, true), mask: v.getBigUint64(24, true) };
  }
  if (sig < 1 || sig > NSIG || (next && (sig === SIGKILL || sig === SIGSTOP))) return -EINVAL;
  const old = { ...ctx.signals.action(sig) };
  if (next) ctx.signals.setAction(sig, next);
  if (oact !== 0) {
    const v = dataView(ctx.mem.writable(oact, SIGACTION_SIZE));
    v.setBigUint64(0, old.handler, true);
    v.setBigUint64(8, BigInt(old.flags), true);
    v.setBigUint64(16, old.restorer, true);
    v.setBigUint64(24, old.mask, true);
  }
  return 0;
}

function rtSigprocmask(ctx: SyscallContext, how: number, set: number, oset: number, sigsetsize: number): number {
  if (sigsetsize !== SIGSET_SIZE) return -EINVAL;
  const t = ctx.threads.current.signals;
  const old = t.blocked;
  if (set !== 0) {
    const mask = readSigset(ctx, set) & ~UNBLOCKABLE;
    if (how === SIG_BLOCK) t.blocked |= mask;
    else if (how === SIG_UNBLOCK) t.blocked &= ~mask;
    else if (how === SIG_SETMASK) t.blocked = mask;
    else return -EINVAL;
  }
  if (oset !== 0) ctx.mem.setU64(oset, old);
  return 0;
}

/** sigaltstack: the old setting as the caller's stack pointer sees it (SS_ONSTACK while on it), then the change. */
function sigaltstack(ctx: SyscallContext, uss: number, uoss: number): number {
  let next: { sp: bigint; flags: number; size: bigint } | undefined;
  if (uss !== 0) {
    const v = dataView(ctx.mem.user(uss, STACK_T_SIZE));
    next = { sp: v.getBigUint64(0, true), flags: v.getUint32(8, true), size: v.getBigUint64(16, true) };
  }
  const t = ctx.threads.current.signals;
  const sp = ctx.signals.stackPointer();
  const old = { ...t.altStack, flags: (altStackMode(t.altStack, sp) | (t.altStack.flags & SS_AUTODISARM)) >>> 0 };
  if (next) {
    const err = setAltStack(t, next, sp);
    if (err !== 0) return err;
  }
  if (uoss !== 0) {
    const b = ctx.mem.writable(uoss, STACK_T_SIZE);
    b.fill(0);
    const v = dataView(b);
    v.setBigUint64(0, old.sp, true);
    v.setUint32(8, old.flags, true);
    v.setBigUint64(16, old.size, true);
  }
  return 0;
}

/** A signal number's check: 0 only probes (the target exists), past _NSIG is EINVAL. */
function send(ctx: SyscallContext, tid: number | undefined, sig: number, code: number): number {
  if (sig === 0) return 0;
  if (sig < 0 || sig > NSIG) return -EINVAL;
  const info: SigInfo = { signo: sig, code, pid: PID, uid: GUEST_UID };
  return ctx.signals.send(tid, info);
}

export const signalSyscalls: Record<string, SyscallHandler> = {
  rt_sigaction: rtSigaction,
  rt_sigprocmask: rtSigprocmask,
  sigaltstack,
  rt_sigpending: (ctx, uset, sigsetsize) => {
    if (sigsetsize > SIGSET_SIZE) return -EINVAL;
    const b = new Uint8Array(SIGSET_SIZE);
    dataView(b).setBigUint64(0, ctx.signals.pending(), true);
    ctx.mem.writable(uset, sigsetsize).set(b.subarray(0, sigsetsize));
    return 0;
  },
  rt_sigsuspend: (ctx, unewset, sigsetsize) => {
    if (sigsetsize !== SIGSET_SIZE) return -EINVAL;
    return ctx.signals.suspend(readSigset(ctx, unewset) & ~UNBLOCKABLE);
  },
  rt_sigreturn: (ctx) => ctx.signals.sigreturn(),
  // The program is pid 1, its own process group, alone: -1 ("every process but init and the caller") reaches nobody.
  kill: (ctx, pid, sig) => (pid !== PID && pid !== 0 ? -ESRCH : send(ctx, undefined, sig, SI_USER)),
  tkill: (ctx, tid, sig) => (tid <= 0 ? -EINVAL : !ctx.threads.find(tid) ? -ESRCH : send(ctx, tid, sig, SI_TKILL)),
  tgkill: (ctx, tgid, tid, sig) => (tgid <= 0 || tid <= 0 ? -EINVAL : tgid !== PID || !ctx.threads.find(tid) ? -ESRCH : send(ctx, tid, sig, SI_TKILL)),
};
