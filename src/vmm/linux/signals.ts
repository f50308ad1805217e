// Signal state as Linux keeps it for one process (kernel/signal.c): each signal's action, which
// all threads share (they share their handlers), the signals pending for the whole process, and
// per thread its blocked mask, its alternate signal stack and the signals pending for it. Which
// pending signal goes first, and what a signal does when it arrives (dropped, fatal, queued), are
// decided here as the kernel decides them. Plain data a snapshot copies: building the frame a
// handler runs on is sigframe.ts's, the vCPU's part is run/delivery.ts's.
import { EINVAL, ENOMEM, EPERM } from './syscalls/errno.ts';

export const SIGILL = 4, SIGTRAP = 5, SIGABRT = 6, SIGBUS = 7, SIGFPE = 8, SIGKILL = 9, SIGSEGV = 11;
export const SIGSTOP = 19, SIGSYS = 31;
/** The first real-time signal (the kernel's SIGRTMIN; glibc keeps 32 and 33 for itself). */
export const SIGRTMIN = 32;
/** Signals run from 1 to _NSIG. */
export const NSIG = 64;

export const SIG_DFL = 0n, SIG_IGN = 1n;
export const SA_NOCLDSTOP = 1, SA_NOCLDWAIT = 2, SA_SIGINFO = 4, SA_EXPOSE_TAGBITS = 0x800;
export const SA_RESTORER = 0x0400_0000, SA_ONSTACK = 0x0800_0000, SA_RESTART = 0x1000_0000;
export const SA_NODEFER = 0x4000_0000, SA_RESETHAND = 0x8000_0000;
/** The sa_flags the kernel keeps (UAPI_SA_FLAGS); it clears the others, so programs can probe for support. */
export const UAPI_SA_FLAGS = (SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_EXPOSE_TAGBITS | SA_RESTORER | SA_ONSTACK
  | SA_RESTART | SA_NODEFER | SA_RESETHAND) >>> 0;

export const SS_ONSTACK = 1, SS_DISABLE = 2;
/** SS_FLAG_BITS: the only flag sigaltstack takes beside the mode. */
export const SS_AUTODISARM = 0x8000_0000;
/** The smallest alternate stack sigaltstack accepts on x86. */
export const MINSIGSTKSZ = 2048;

/** si_code values: sent by kill, by the kernel, by tkill/tgkill; then per-signal fault codes. */
export const SI_USER = 0, SI_KERNEL = 0x80, SI_TKILL = -6;
export const SEGV_MAPERR = 1, SEGV_ACCERR = 2, BUS_ADRALN = 1, ILL_ILLOPN = 2, FPE_INTDIV = 1;
export const FPE_FLTDIV = 3, FPE_FLTOVF = 4, FPE_FLTUND = 5, FPE_FLTRES = 6, FPE_FLTINV = 7;

/** The most real-time signals queued at once in a program (its RLIMIT_SIGPENDING): a bound on what a loop of sends can make the host hold. */
export const MAX_QUEUED_RT = 64;

const NAMES = ('SIGHUP SIGINT SIGQUIT SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGKILL SIGUSR1 SIGSEGV SIGUSR2 SIGPIPE ' +
  'SIGALRM SIGTERM SIGSTKFLT SIGCHLD SIGCONT SIGSTOP SIGTSTP SIGTTIN SIGTTOU SIGURG SIGXCPU SIGXFSZ SIGVTALRM SIGPROF ' +
  'SIGWINCH SIGIO SIGPWR SIGSYS').split(' ');

/** A signal's name as strace prints it: SIGSEGV, SIGRTMIN, SIGRT_1 … SIGRT_32. */
export function signalName(sig: number): string {
  if (sig >= 1 && sig < SIGRTMIN) return NAMES[sig - 1]!;
  if (sig === SIGRTMIN) return 'SIGRTMIN';
  return sig > SIGRTMIN && sig <= NSIG ? `SIGRT_${sig - SIGRTMIN}` : `signal ${sig}`;
}

/** Signals whose default action is to do nothing (sig_kernel_ignore): SIGCHLD, SIGCONT, SIGURG, SIGWINCH. */
const IGNORED_BY_DEFAULT: ReadonlySet<number> = new Set([17, 18, 23, 28]);
/** The signals a fault raises, which go first when several are pending (SYNCHRONOUS_MASK). */
const SYNCHRONOUS: readonly number[] = [SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV, SIGSYS];

/** A sigset_t bit: signal n is bit n − 1. */
export const sigbit = (sig: number): bigint => 1n << BigInt(sig - 1);
/** What no mask may hold (sigdelsetmask of SIGKILL and SIGSTOP). */
export const UNBLOCKABLE = sigbit(SIGKILL) | sigbit(SIGSTOP);
const ALL = (1n << 64n) - 1n;

/** struct sigaction as the kernel keeps it: a handler (or SIG_DFL, SIG_IGN), flags, restorer, mask. */
/** A signal's action. Never changed in place (replaced whole), so snapshots share them. */
export interface SigAction {
  readonly handler: bigint;
  readonly flags: number;
  readonly restorer: bigint;
  readonly mask: bigint;
}

/** The siginfo a handler gets: sent by kill/tgkill (pid, uid), or raised by a fault (addr). */
export interface SigInfo {
  signo: number;
  code: number;
  addr?: bigint;
  pid?: number;
  uid?: number;
}

/** What the CPU reported of the fault behind a signal: the sigcontext's trapno, err and cr2. */
export interface TrapInfo {
  trapno: number;
  err: number;
  cr2: number;
}

export interface PendingSignal {
  info: SigInfo;
  trap?: TrapInfo;
}

/** stack_t: an alternate signal stack. */
export interface AltStack {
  sp: bigint;
  size: bigint;
  flags: number;
}

/** A thread's own signal state. */
export interface ThreadSignals {
  blocked: bigint;
  altStack: AltStack;
  pending: PendingSignal[];
  /** The mask to put back once a signal interrupts rt_sigsuspend (the kernel's saved_sigmask). */
  savedMask: bigint | undefined;
}

/** What a snapshot keeps of the process-wide part. */
export interface SignalTableState {
  readonly actions: readonly SigAction[];
  readonly shared: readonly PendingSignal[];
}

const DISABLED: AltStack = { sp: 0n, size: 0n, flags: SS_DISABLE };

/** A new thread's signal state: the creator's mask, no alternate stack (clone drops it for a thread sharing memory), nothing pending. */
export function threadSignals(blocked = 0n): ThreadSignals {
  return { blocked, altStack: { ...DISABLED }, pending: [], savedMask: undefined };
}

export function copyThreadSignals(s: ThreadSignals): ThreadSignals {
  return { blocked: s.blocked, altStack: { ...s.altStack }, pending: s.pending.map(copyPending), savedMask: s.savedMask };
}

const copyPending = (p: PendingSignal): PendingSignal => ({ info: { ...p.info }, ...(p.trap ? { trap: { ...p.trap } } : {}) });
const defaultAction = (): SigAction => ({ handler: SIG_DFL, flags: 0, restorer: 0n, mask: 0n });

/** True when `sp` lies on the alternate stack (__on_sig_stack: the stack grows down from sp + size). */
export function onAltStack(alt: AltStack, sp: bigint): boolean {
  return alt.size !== 0n && sp > alt.sp && sp - alt.sp <= alt.size;
}

/** sas_ss_flags: SS_DISABLE with no alternate stack, SS_ONSTACK while on it (never with SS_AUTODISARM), else 0. */
export function altStackMode(alt: AltStack, sp: bigint): number {
  if (alt.size === 0n) return SS_DISABLE;
  return (alt.flags & SS_AUTODISARM) === 0 && onAltStack(alt, sp) ? SS_ONSTACK : 0;
}

/**
 * do_sigaltstack's change of `t`'s alternate stack to `ss`, the thread's stack pointer at `sp`:
 * none while on the current one (EPERM); a mode of 0, SS_ONSTACK or SS_DISABLE, with
 * SS_AUTODISARM or not (else EINVAL); at least MINSIGSTKSZ bytes (else ENOMEM). Flags are kept as
 * given. Returns 0 or -errno.
 */
export function setAltStack(t: ThreadSignals, ss: AltStack, sp: bigint): number {
  const cur = t.altStack;
  if ((cur.flags & SS_AUTODISARM) === 0 && onAltStack(cur, sp)) return -EPERM;
  const mode = (ss.flags & ~SS_AUTODISARM) >>> 0;
  if (mode !== SS_DISABLE && mode !== SS_ONSTACK && mode !== 0) return -EINVAL;
  if (cur.sp === ss.sp && cur.size === ss.size && cur.flags === ss.flags) return 0;
  if (mode === SS_DISABLE) t.altStack = { sp: 0n, size: 0n, flags: ss.flags };
  else if (ss.size < BigInt(MINSIGSTKSZ)) return -ENOMEM;
  else t.altStack = { ...ss };
  return 0;
}

/** What a signal sent now does: nothing, end the program (its default action), or wait pending for a handler. */
export type Disposition = 'drop' | 'fatal' | 'queue';

export class SignalTable {
  /**
   * Actions of signals 1–64 (index 0 unused). After a restore, the saved state's own list,
   * shared until an action changes (`writable`): a reset then copies no list at all.
   */
  private actions: readonly SigAction[] = [];
  private ownsActions = true;
  /** Signals sent to the process as a whole (kill), for whichever thread takes them first. */
  shared: PendingSignal[] = [];

  constructor() {
    this.reset();
  }

  /** Every action back to SIG_DFL, nothing pending: a program at its entry. */
  reset(): void {
    this.actions = Array.from({ length: NSIG + 1 }, defaultAction);
    this.ownsActions = true;
    this.shared = [];
  }

  /** The actions, to change one: this table's own copy, made now if it still shares a saved state's. */
  private writable(): SigAction[] {
    if (!this.ownsActions) {
      this.actions = this.actions.slice();
      this.ownsActions = true;
    }
    return this.actions as SigAction[];
  }

  action(sig: number): SigAction {
    return this.actions[sig]!;
  }

  /**
   * do_sigaction: the kernel keeps only the flags it knows and never SIGKILL or SIGSTOP in the
   * mask. Setting an action that ignores the signal drops it wherever it is pending (POSIX).
   */
  setAction(sig: number, act: SigAction, threads: Iterable<ThreadSignals>): void {
    this.writable()[sig] = { handler: act.handler, flags: (act.flags & UAPI_SA_FLAGS) >>> 0, restorer: act.restorer, mask: act.mask & ~UNBLOCKABLE };
    if (!this.ignored(sig)) return;
    const other = (p: PendingSignal): boolean => p.info.signo !== sig;
    this.shared = this.shared.filter(other);
    for (const t of threads) t.pending = t.pending.filter(other);
  }

  /** sig_handler_ignored: SIG_IGN, or SIG_DFL where the default is to do nothing. */
  ignored(sig: number): boolean {
    const { handler } = this.actions[sig]!;
    return handler === SIG_IGN || (handler === SIG_DFL && IGNORED_BY_DEFAULT.has(sig));
  }

  /**
   * What `sig` sent now does, to a receiver that blocks it or not: a blocked signal always waits
   * (its action may change before it is unblocked); otherwise an ignored one is dropped, one left
   * to its default action ends the program (SIGKILL whatever its action), and one with a handler
   * waits to be delivered.
   */
  disposition(sig: number, blocked: boolean): Disposition {
    if (sig === SIGKILL) return 'fatal';
    if (blocked) return 'queue';
    if (this.ignored(sig)) return 'drop';
    return this.actions[sig]!.handler === SIG_DFL ? 'fatal' : 'queue';
  }

  /** Real-time signals queued anywhere in the program, to hold against MAX_QUEUED_RT. */
  queuedRealtime(threads: Iterable<ThreadSignals>): number {
    let n = this.shared.filter((p) => p.info.signo >= SIGRTMIN).length;
    for (const t of threads) n += t.pending.filter((p) => p.info.signo >= SIGRTMIN).length;
    return n;
  }

  /** `sig` back to its default action (SA_RESETHAND, a SIGSEGV whose frame failed), its other settings kept. */
  resetToDefault(sig: number): void {
    this.writable()[sig] = { ...this.actions[sig]!, handler: SIG_DFL };
  }

  // Actions are replaced, never changed, so a copy of the list is a copy of them all.
  save(): SignalTableState {
    return { actions: this.actions.slice(), shared: this.shared.map(copyPending) };
  }

  restore(state: SignalTableState): void {
    this.actions = state.actions;
    this.ownsActions = false;
    // Nothing pending, as after almost every request: the empty list this table has is kept.
    if (state.shared.length > 0) this.shared = state.shared.map(copyPending);
    else if (this.shared.length > 0) this.shared = [];
  }
}

/**
 * Adds `signal` to a pending list. A standard signal already pending there is not queued twice
 * (legacy_queue); real-time signals queue, each with its own siginfo.
 */
export function enqueue(list: PendingSignal[], signal: PendingSignal): void {
  const sig = signal.info.signo;
  if (sig < SIGRTMIN && list.some((p) => p.info.signo === sig)) return;
  list.push(signal);
}

/** The signals pending for `thread` (its own and the process's), as a sigset. */
export function pendingSet(thread: ThreadSignals, table: SignalTable): bigint {
  let set = 0n;
  for (const p of thread.pending) set |= sigbit(p.info.signo);
  for (const p of table.shared) set |= sigbit(p.info.signo);
  return set;
}

/** The signal next_signal picks from `set`: a fault's signal first, then the lowest number. */
function nextSignal(set: bigint): number {
  for (const sig of SYNCHRONOUS) if ((set & sigbit(sig)) !== 0n) return sig;
  for (let sig = 1; sig <= NSIG; sig++) if ((set & sigbit(sig)) !== 0n) return sig;
  return 0;
}

/** True when `thread` has a pending signal it does not block. */
export function hasUnblocked(thread: ThreadSignals, table: SignalTable): boolean {
  return (pendingSet(thread, table) & ~thread.blocked & ALL) !== 0n;
}

/**
 * dequeue_signal: takes the next pending signal `thread` does not block, its own before the
 * process's; undefined if there is none.
 */
export function dequeue(thread: ThreadSignals, table: SignalTable): PendingSignal | undefined {
  for (const list of [thread.pending, table.shared]) {
    let set = 0n;
    for (const p of list) set |= sigbit(p.info.signo);
    const sig = nextSignal(set & ~thread.blocked);
    if (sig === 0) continue;
    const i = list.findIndex((p) => p.info.signo === sig);
    return list.splice(i, 1)[0];
  }
  return undefined;
}
