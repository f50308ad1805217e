// Clocks, sleeping and randomness. Wall clocks are the host's at the moment of the call. CPU
// clocks read the program's own CPU time, counted by the machine, and only the program's own
// clocks exist: the CPU time of host processes (tinyedge's included), and which host pids exist,
// are not the guest's to learn. Randomness is fresh from the host's CSPRNG on every call. Every
// clock value and random byte the guest gets goes through the machine's journal (journal.ts),
// which records it, or in a replay puts the recorded one in its place.
import { randomFillSync } from 'node:crypto';
import { clockGettime as hostClockGettime } from '../../../kvm/libc.ts';
import type { SyscallContext, SyscallHandler } from './context.ts';
import { EINTR, EINVAL, EOPNOTSUPP } from './errno.ts';
import { PID } from './process.ts';

const scratch = new Uint8Array(16);
const scratchView = new DataView(scratch.buffer);

const CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1, CLOCK_PROCESS_CPUTIME_ID = 2, CLOCK_THREAD_CPUTIME_ID = 3;
const CLOCK_MONOTONIC_RAW = 4, CLOCK_REALTIME_COARSE = 5, CLOCK_MONOTONIC_COARSE = 6, CLOCK_BOOTTIME = 7;
const CLOCK_REALTIME_ALARM = 8, CLOCK_BOOTTIME_ALARM = 9, CLOCK_TAI = 11;
/**
 * CPU-clock ids (include/linux/posix-timers.h): MAKE_PROCESS_CPUCLOCK(pid, which) is
 * `(~pid << 3) | which`, with CPUCLOCK_PERTHREAD_MASK set for a thread's clock. `which` is PROF,
 * VIRT or SCHED (0–2); 3 without the thread bit is CLOCKFD, a clock behind an fd.
 */
const CPUCLOCK_PERTHREAD_MASK = 4, CPUCLOCK_CLOCK_MASK = 3, CPUCLOCK_MAX = 3, CLOCKFD = 3, CLOCKFD_MASK = 7;
const TIMER_ABSTIME = 1;
const NSEC_PER_SEC = 1_000_000_000;
/**
 * The most bytes one getrandom call fills, so one call costs the host at most about a millisecond
 * and the deadline is checked between calls; a short count is part of getrandom's contract.
 */
const GETRANDOM_MAX = 1024 * 1024;
const GRND_NONBLOCK = 1, GRND_RANDOM = 2, GRND_INSECURE = 4;

/** The host clocks the guest reads as its own, and whether clock_nanosleep can sleep on each. */
const WALL_CLOCKS: ReadonlyMap<number, { sleeps: boolean }> = new Map([
  [CLOCK_REALTIME, { sleeps: true }],
  [CLOCK_MONOTONIC, { sleeps: true }],
  [CLOCK_MONOTONIC_RAW, { sleeps: false }],
  [CLOCK_REALTIME_COARSE, { sleeps: false }],
  [CLOCK_MONOTONIC_COARSE, { sleeps: false }],
  [CLOCK_BOOTTIME, { sleeps: true }],
  [CLOCK_TAI, { sleeps: true }],
]);

/**
 * The program's own CPU clocks: CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID, and the
 * pid-encoded ids of pid 0 (the caller) or PID (its process, which is also its one thread), for
 * PROF, VIRT and SCHED alike. Undefined for every other id, whatever host process has that pid.
 */
function ownCpuClock(id: number): 'process' | 'thread' | undefined {
  if (id === CLOCK_PROCESS_CPUTIME_ID) return 'process';
  if (id === CLOCK_THREAD_CPUTIME_ID) return 'thread';
  if (id >= 0 || (id & CPUCLOCK_CLOCK_MASK) >= CPUCLOCK_MAX) return undefined;
  const pid = ~(id >> 3);
  if (pid !== 0 && pid !== PID) return undefined;
  return (id & CPUCLOCK_PERTHREAD_MASK) !== 0 ? 'thread' : 'process';
}

/** Reads host clock `id` into `scratch`. */
function hostNow(id: number): void {
  if (hostClockGettime(id, scratch) !== 0) throw new Error(`the host's clock ${id} cannot be read`);
}

/** Clock `id` as the guest reads it, into `scratch`: the host's (or the program's CPU time), through the journal. */
function guestNow(ctx: SyscallContext, id: number, cpu: boolean): void {
  if (cpu) {
    // Seconds and nanoseconds as two little-endian u64s, written as u32 halves (no BigInt per read).
    const ns = ctx.cpuTimeNs();
    const sec = Math.floor(ns / NSEC_PER_SEC);
    scratchView.setUint32(0, sec >>> 0, true);
    scratchView.setUint32(4, Math.floor(sec / 2 ** 32), true);
    scratchView.setUint32(8, ns % NSEC_PER_SEC, true);
    scratchView.setUint32(12, 0, true);
  } else {
    hostNow(id);
  }
  ctx.journal?.clock(id, scratch);
}

/** Host clock `id` (one the guest reads as its own) now, in nanoseconds. */
export function clockNowNs(id: number): number {
  hostNow(id);
  return Number(scratchView.getBigInt64(0, true)) * NSEC_PER_SEC + Number(scratchView.getBigInt64(8, true));
}

function writeTimespec(ctx: SyscallContext, addr: number, ns: number): void {
  ctx.mem.check(addr, 16);
  ctx.mem.setU64(addr, Math.floor(ns / NSEC_PER_SEC));
  ctx.mem.setU64(addr + 8, ns % NSEC_PER_SEC);
}

/** A guest timespec in nanoseconds, or -EINVAL where the kernel's timespec64_valid() refuses it. */
export function readTimespec(ctx: SyscallContext, addr: number): number {
  ctx.mem.check(addr, 16);
  const sec = Number(ctx.mem.i64(addr));
  const nsec = Number(ctx.mem.i64(addr + 8));
  return sec < 0 || nsec < 0 || nsec >= NSEC_PER_SEC ? -EINVAL : sec * NSEC_PER_SEC + nsec;
}

function clockGettime(ctx: SyscallContext, id: number, addr: number): number {
  const cpu = ownCpuClock(id) !== undefined;
  if (!cpu && !WALL_CLOCKS.has(id)) return -EINVAL;
  ctx.mem.check(addr, 16, true);
  guestNow(ctx, id, cpu);
  ctx.mem.writable(addr, 16).set(scratch);
  return 0;
}

/**
 * clock_nanosleep, with the kernel's answers in the kernel's order: an unknown id is EINVAL; a
 * clock that cannot sleep is EOPNOTSUPP; then the timespec is read. The alarm clocks need an RTC,
 * which this machine lacks. The caller's own thread clock refuses (EINVAL), and so do the clocks of
 * other pids (there are none). A wait on the process's CPU clock ends at once if that time has
 * come; otherwise it never would, since a sleeping program uses no CPU time, and it lasts until
 * the time limit, as a sleep with no end does.
 */
function clockNanosleep(ctx: SyscallContext, id: number, flags: number, req: number): number {
  const cpu = ownCpuClock(id);
  const wall = WALL_CLOCKS.get(id);
  const alarm = id === CLOCK_REALTIME_ALARM || id === CLOCK_BOOTTIME_ALARM;
  if (id >= 0 && cpu === undefined && wall === undefined && !alarm) return -EINVAL;
  if (id === CLOCK_THREAD_CPUTIME_ID || wall?.sleeps === false || (id < 0 && (id & CLOCKFD_MASK) === CLOCKFD)) return -EOPNOTSUPP;
  const ns = readTimespec(ctx, req);
  if (ns < 0) return ns;
  if (alarm) return -EOPNOTSUPP;
  const absolute = (flags & TIMER_ABSTIME) !== 0;
  if (wall === undefined) {
    if (cpu !== 'process') return -EINVAL;
    if (absolute ? ns <= ctx.cpuTimeNs() : ns === 0) return 0;
    ctx.sleep(ctx.remainingMs());
    return -EINTR;
  }
  if (!absolute) {
    ctx.sleep(ns / 1e6);
    return 0;
  }
  ctx.sleep(Math.max(0, (ns - clockNowNs(id)) / 1e6));
  return 0;
}

function nanosleep(ctx: SyscallContext, req: number): number {
  const ns = readTimespec(ctx, req);
  if (ns < 0) return ns;
  ctx.sleep(ns / 1e6);
  return 0;
}

export const timeSyscalls: Record<string, SyscallHandler> = {
  clock_gettime: clockGettime,
  clock_getres: (ctx, id, addr) => {
    if (ownCpuClock(id) === undefined && !WALL_CLOCKS.has(id)) return -EINVAL;
    if (addr !== 0) writeTimespec(ctx, addr, 1);
    return 0;
  },
  gettimeofday: (ctx, tv, tz) => {
    if (tv !== 0) {
      ctx.mem.check(tv, 16);
      guestNow(ctx, CLOCK_REALTIME, false);
      ctx.mem.setU64(tv, scratchView.getBigUint64(0, true));
      ctx.mem.setU64(tv + 8, scratchView.getBigUint64(8, true) / 1000n);
    }
    // struct timezone: UTC, no daylight saving time (not the host's settings).
    if (tz !== 0) ctx.mem.writable(tz, 8).fill(0);
    return 0;
  },
  time: (ctx, tloc) => {
    guestNow(ctx, CLOCK_REALTIME, false);
    const sec = Number(scratchView.getBigUint64(0, true));
    if (tloc !== 0) ctx.mem.setU64(tloc, sec);
    return sec;
  },
  nanosleep: (ctx, req) => nanosleep(ctx, req),
  clock_nanosleep: (ctx, id, flags, req) => clockNanosleep(ctx, id, flags, req),
  getrandom: (ctx, buf, len, flags) => {
    if ((flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE)) !== 0) return -EINVAL;
    if ((flags & (GRND_INSECURE | GRND_RANDOM)) === (GRND_INSECURE | GRND_RANDOM)) return -EINVAL;
    const n = Math.min(len, GETRANDOM_MAX);
    const out = ctx.mem.writable(buf, n);
    randomFillSync(out);
    ctx.journal?.random(out);
    return n;
  },
};
