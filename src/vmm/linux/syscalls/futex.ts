// futex(2), and the robust-futex list a thread leaves behind when it exits: the checks in the
// kernel's order (kernel/futex/syscalls.c, waitwake.c, requeue.c, core.c), the waiting and
// waking done by the thread scheduler. A futex is known by its address and by whether it is
// private (FUTEX_PRIVATE_FLAG) or shared: as in Linux, a private wait is not woken by a shared
// wake of the same word, nor the reverse. The priority-inheritance operations answer ENOSYS, as
// on a kernel built without them.
import { performance } from 'node:perf_hooks';
import type { SyscallContext } from './context.ts';
import { EAGAIN, EFAULT, EINVAL, ENOSYS, ETIMEDOUT } from './errno.ts';
import { TASK_SIZE_MAX } from './memory.ts';
import { clockNowNs, readTimespec } from './time.ts';

const FUTEX_WAIT = 0, FUTEX_WAKE = 1, FUTEX_REQUEUE = 3, FUTEX_CMP_REQUEUE = 4, FUTEX_WAKE_OP = 5;
const FUTEX_LOCK_PI = 6, FUTEX_WAIT_BITSET = 9, FUTEX_WAKE_BITSET = 10, FUTEX_WAIT_REQUEUE_PI = 11;
const FUTEX_LOCK_PI2 = 13;
const FUTEX_PRIVATE_FLAG = 128, FUTEX_CLOCK_REALTIME = 256;
const FUTEX_CMD_MASK = ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
const FUTEX_BITSET_MATCH_ANY = 0xffff_ffff;
/** The operations whose fourth argument is a timeout; for the others it is a count (val2). */
const HAS_TIMEOUT: ReadonlySet<number> = new Set([FUTEX_WAIT, FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_WAIT_BITSET, FUTEX_WAIT_REQUEUE_PI]);
const CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1;

/** FUTEX_WAKE_OP's operations on the second word and its comparisons of the old value. */
const FUTEX_OP_SET = 0, FUTEX_OP_ADD = 1, FUTEX_OP_OR = 2, FUTEX_OP_ANDN = 3, FUTEX_OP_XOR = 4;
const FUTEX_OP_OPARG_SHIFT = 8;
const FUTEX_OP_CMP_EQ = 0, FUTEX_OP_CMP_NE = 1, FUTEX_OP_CMP_LT = 2, FUTEX_OP_CMP_LE = 3, FUTEX_OP_CMP_GT = 4, FUTEX_OP_CMP_GE = 5;

/** The bits of a robust futex word (include/uapi/linux/futex.h). */
const FUTEX_WAITERS = 0x8000_0000, FUTEX_OWNER_DIED = 0x4000_0000, FUTEX_TID_MASK = 0x3fff_ffff;
/** The most robust-list entries the kernel walks at a thread's exit (a loop in the list ends there). */
const ROBUST_LIST_LIMIT = 2048;

/**
 * get_futex_key: a futex word is 4-byte aligned (EINVAL) and below TASK_SIZE_MAX (EFAULT); a
 * shared key needs the page itself, so a shared futex must lie in the program's memory. Returns
 * the key, or -errno.
 */
export function futexKey(ctx: SyscallContext, uaddr: number, shared: boolean): number {
  if (uaddr % 4 !== 0) return -EINVAL;
  if (uaddr > TASK_SIZE_MAX - 4) return -EFAULT;
  if (shared) ctx.mem.check(uaddr, 4);
  return uaddr * 2 + (shared ? 1 : 0);
}

/** The word at `uaddr` (a GuestFault, so EFAULT, outside the program's memory). */
function word(ctx: SyscallContext, uaddr: number): number {
  return ctx.mem.u32(uaddr);
}

/** The end of a wait whose timespec reads `ns`, as a performance.now() time. */
function waitEnd(cmd: number, op: number, ns: number): number {
  const now = performance.now();
  // FUTEX_WAIT's timeout is relative; the others' are absolute on CLOCK_MONOTONIC, or CLOCK_REALTIME.
  if (cmd === FUTEX_WAIT) return now + ns / 1e6;
  return now + (ns - clockNowNs((op & FUTEX_CLOCK_REALTIME) !== 0 ? CLOCK_REALTIME : CLOCK_MONOTONIC)) / 1e6;
}

function wait(ctx: SyscallContext, uaddr: number, shared: boolean, val: number, wakeAt: number, bitset: number): number {
  if (bitset === 0) return -EINVAL;
  const key = futexKey(ctx, uaddr, shared);
  if (key < 0) return key;
  if (word(ctx, uaddr) !== val) return -EAGAIN;
  if (wakeAt <= performance.now()) return -ETIMEDOUT;
  return ctx.threads.futexWait(key, bitset, wakeAt);
}

/** futex_wake counts `++woken >= nr_wake` after each wake, so a count of 0 or less still wakes one. */
const wakeCount = (nr: number): number => Math.max(nr, 1);

function wake(ctx: SyscallContext, uaddr: number, shared: boolean, nr: number, bitset: number): number {
  if (bitset === 0) return -EINVAL;
  const key = futexKey(ctx, uaddr, shared);
  if (key < 0) return key;
  return ctx.threads.futexWake(key, wakeCount(nr), bitset);
}

function requeue(ctx: SyscallContext, uaddr: number, shared: boolean, uaddr2: number, nrWake: number, nrRequeue: number, cmpval: number | undefined): number {
  if (nrWake < 0 || nrRequeue < 0) return -EINVAL;
  const from = futexKey(ctx, uaddr, shared);
  if (from < 0) return from;
  const to = futexKey(ctx, uaddr2, shared);
  if (to < 0) return to;
  if (cmpval !== undefined && word(ctx, uaddr) !== cmpval) return -EAGAIN;
  return ctx.threads.futexRequeue(from, to, nrWake, nrRequeue);
}

/** sign_extend32 of a 12-bit field. */
const signed12 = (x: number): number => (x << 20) >> 20;

/**
 * FUTEX_WAKE_OP: applies the encoded operation to the word at `uaddr2`, wakes up to `nrWake`
 * waiters on `uaddr`, and up to `nrWake2` on `uaddr2` if the old value passes the comparison. As
 * in the kernel, an unknown comparison answers ENOSYS after the word has changed.
 */
function wakeOp(ctx: SyscallContext, uaddr: number, shared: boolean, uaddr2: number, nrWake: number, nrWake2: number, encoded: number): number {
  const key1 = futexKey(ctx, uaddr, shared);
  if (key1 < 0) return key1;
  const key2 = futexKey(ctx, uaddr2, shared);
  if (key2 < 0) return key2;
  const op = (encoded >>> 28) & 7;
  const cmp = (encoded >>> 24) & 15;
  let oparg = signed12((encoded >>> 12) & 0xfff);
  const cmparg = signed12(encoded & 0xfff);
  if (((encoded >>> 28) & FUTEX_OP_OPARG_SHIFT) !== 0) oparg = 1 << (oparg & 31);
  const old = word(ctx, uaddr2) | 0;
  let value: number;
  switch (op) {
    case FUTEX_OP_SET: value = oparg; break;
    case FUTEX_OP_ADD: value = old + oparg; break;
    case FUTEX_OP_OR: value = old | oparg; break;
    case FUTEX_OP_ANDN: value = old & ~oparg; break;
    case FUTEX_OP_XOR: value = old ^ oparg; break;
    default: return -ENOSYS;
  }
  ctx.mem.setU32(uaddr2, value);
  let pass: boolean;
  switch (cmp) {
    case FUTEX_OP_CMP_EQ: pass = old === cmparg; break;
    case FUTEX_OP_CMP_NE: pass = old !== cmparg; break;
    case FUTEX_OP_CMP_LT: pass = old < cmparg; break;
    case FUTEX_OP_CMP_LE: pass = old <= cmparg; break;
    case FUTEX_OP_CMP_GT: pass = old > cmparg; break;
    case FUTEX_OP_CMP_GE: pass = old >= cmparg; break;
    default: return -ENOSYS;
  }
  let woken = ctx.threads.futexWake(key1, wakeCount(nrWake), FUTEX_BITSET_MATCH_ANY);
  if (pass) woken += ctx.threads.futexWake(key2, wakeCount(nrWake2), FUTEX_BITSET_MATCH_ANY);
  return woken;
}

/**
 * futex(uaddr, op, val, timeout or val2, uaddr2, val3). The timeout is read first, for the
 * operations that take one; for the others the fourth argument's low 32 bits are a count.
 */
export function futex(ctx: SyscallContext, uaddr: number, op: number, val: number, utime: number, uaddr2: number, val3: number): number {
  const cmd = op & FUTEX_CMD_MASK;
  let wakeAt = Infinity;
  if (utime !== 0 && HAS_TIMEOUT.has(cmd)) {
    const ns = readTimespec(ctx, utime);
    if (ns < 0) return ns;
    wakeAt = waitEnd(cmd, op, ns);
  }
  const shared = (op & FUTEX_PRIVATE_FLAG) === 0;
  if ((op & FUTEX_CLOCK_REALTIME) !== 0 && cmd !== FUTEX_WAIT_BITSET && cmd !== FUTEX_WAIT_REQUEUE_PI && cmd !== FUTEX_LOCK_PI2) return -ENOSYS;
  // val and val2 are ints to the kernel: a u32 past 2^31 - 1 is negative.
  const nr = val | 0;
  const val2 = (utime % 2 ** 32) | 0;
  switch (cmd) {
    case FUTEX_WAIT: return wait(ctx, uaddr, shared, val, wakeAt, FUTEX_BITSET_MATCH_ANY);
    case FUTEX_WAIT_BITSET: return wait(ctx, uaddr, shared, val, wakeAt, val3);
    case FUTEX_WAKE: return wake(ctx, uaddr, shared, nr, FUTEX_BITSET_MATCH_ANY);
    case FUTEX_WAKE_BITSET: return wake(ctx, uaddr, shared, nr, val3);
    case FUTEX_REQUEUE: return requeue(ctx, uaddr, shared, uaddr2, nr, val2, undefined);
    case FUTEX_CMP_REQUEUE: return requeue(ctx, uaddr, shared, uaddr2, nr, val2, val3);
    case FUTEX_WAKE_OP: return wakeOp(ctx, uaddr, shared, uaddr2, nr, val2, val3);
    default: return -ENOSYS;
  }
}

/**
 * A 64-bit word of the robust list, as a signed Number (exact for every address and for the
 * small negative offsets libcs use), or undefined where the program could not read one.
 */
function listWord(ctx: SyscallContext, addr: number): number | undefined {
  if (!Number.isSafeInteger(addr) || addr < 0) return undefined;
  try {
    ctx.mem.check(addr, 8);
  } catch {
    return undefined;
  }
  return Number(ctx.mem.i64(addr));
}

/**
 * handle_futex_death: a lock word still owned by the exiting thread `tid` gets FUTEX_OWNER_DIED
 * (keeping FUTEX_WAITERS) and one waiter is woken; a pending lock nobody owns wakes one waiter.
 * The wakes are shared, as the kernel's are (robust mutexes wait on shared futexes for that).
 */
function futexDeath(ctx: SyscallContext, uaddr: number, tid: number, pi: boolean, pending: boolean): void {
  if (!Number.isSafeInteger(uaddr) || uaddr % 4 !== 0 || uaddr < 0) return;
  let uval: number;
  try {
    uval = word(ctx, uaddr);
  } catch {
    return;
  }
  const key = uaddr * 2 + 1;
  if (pending && !pi && uval === 0) {
    ctx.threads.futexWake(key, 1, FUTEX_BITSET_MATCH_ANY);
    return;
  }
  if ((uval & FUTEX_TID_MASK) !== tid) return;
  ctx.mem.setU32(uaddr, (uval & FUTEX_WAITERS) | FUTEX_OWNER_DIED);
  if (!pi && (uval & FUTEX_WAITERS) !== 0) ctx.threads.futexWake(key, 1, FUTEX_BITSET_MATCH_ANY);
}

/**
 * exit_robust_list: walks the exiting thread's robust list from `head` (struct robust_list_head:
 * next, futex_offset, list_op_pending; bit 0 of a pointer marks a PI futex), at most
 * ROBUST_LIST_LIMIT entries, stopping at the first word it cannot read.
 */
export function exitRobustList(ctx: SyscallContext, head: number, tid: number): void {
  const first = listWord(ctx, head);
  const offset = listWord(ctx, head + 8);
  const pendingWord = listWord(ctx, head + 16);
  if (first === undefined || offset === undefined || pendingWord === undefined) return;
  const pending = pendingWord - (pendingWord % 2);
  let entry = first - (first % 2);
  let pi = first % 2 === 1;
  for (let limit = ROBUST_LIST_LIMIT; entry !== head && limit > 0; limit--) {
    const next = listWord(ctx, entry);
    if (entry !== pending) futexDeath(ctx, entry + offset, tid, pi, false);
    if (next === undefined) return;
    entry = next - (next % 2);
    pi = next % 2 === 1;
  }
  if (pending !== 0) futexDeath(ctx, pending + offset, tid, pendingWord % 2 === 1, true);
}
