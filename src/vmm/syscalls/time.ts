// Clocks, sleeping and randomness. Time comes from the host's clocks at the moment of the call;
// randomness is fresh from the host's CSPRNG on every call.
import { randomFillSync } from 'node:crypto';
import koffi from 'koffi';
import type { SyscallContext, SyscallHandler } from './context.ts';
import { EINVAL } from './errno.ts';

const libc = koffi.load('libc.so.6');
const hostClockGettime = libc.func('int clock_gettime(int clk, _Out_ uint8_t *ts)') as (clk: number, ts: Uint8Array) => number;
const scratch = new Uint8Array(16);
const scratchView = new DataView(scratch.buffer);
const CLOCK_REALTIME = 0;
const CLOCK_MAX = 11;

function now(clock: number): number {
  if (hostClockGettime(clock, scratch) !== 0) return -EINVAL;
  return 0;
}

function clockGettime(ctx: SyscallContext, clock: number, addr: number): number {
  const target = ctx.mem.writable(addr, 16);
  if (clock > CLOCK_MAX || now(clock) !== 0) return -EINVAL;
  target.set(scratch);
  return 0;
}

function sleepFor(ctx: SyscallContext, req: number): number {
  const sec = ctx.mem.u64(req);
  const nsec = ctx.mem.u64(req + 8);
  if (nsec >= 1e9 || sec > 2 ** 62) return -EINVAL;
  ctx.sleep(sec * 1000 + nsec / 1e6);
  return 0;
}

export const timeSyscalls: Record<string, SyscallHandler> = {
  clock_gettime: (ctx, clock, addr) => clockGettime(ctx, clock | 0, addr),
  clock_getres: (ctx, clock, addr) => {
    if ((clock | 0) < 0 || clock > CLOCK_MAX) return -EINVAL;
    if (addr !== 0) {
      ctx.mem.setU64(addr, 0);
      ctx.mem.setU64(addr + 8, 1);
    }
    return 0;
  },
  gettimeofday: (ctx, tv) => {
    if (tv === 0) return 0;
    ctx.mem.check(tv, 16);
    now(CLOCK_REALTIME);
    ctx.mem.setU64(tv, scratchView.getBigUint64(0, true));
    ctx.mem.setU64(tv + 8, scratchView.getBigUint64(8, true) / 1000n);
    return 0;
  },
  time: (ctx, tloc) => {
    now(CLOCK_REALTIME);
    const sec = Number(scratchView.getBigUint64(0, true));
    if (tloc !== 0) ctx.mem.setU64(tloc, sec);
    return sec;
  },
  nanosleep: (ctx, req) => sleepFor(ctx, req),
  clock_nanosleep: (ctx, clock, flags, req) => {
    const TIMER_ABSTIME = 1;
    if ((flags & TIMER_ABSTIME) === 0) return sleepFor(ctx, req);
    if (now(clock | 0) !== 0) return -EINVAL;
    const nowMs = Number(scratchView.getBigUint64(0, true)) * 1000 + Number(scratchView.getBigUint64(8, true)) / 1e6;
    const until = ctx.mem.u64(req) * 1000 + ctx.mem.u64(req + 8) / 1e6;
    ctx.sleep(Math.max(0, until - nowMs));
    return 0;
  },
  getrandom: (ctx, buf, len) => {
    const n = Math.min(len, 33_554_431);
    randomFillSync(ctx.mem.writable(buf, n));
    return n;
  },
};
