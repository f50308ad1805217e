// poll and ppoll over the fds a guest can have: its standard streams (readiness as the caller's
// Stdio reports it) and the read-only regular files it opened, which, as on Linux, are always
// ready. Rust's std start-up polls fds 0–2 with no events to learn whether they are open.
import { performance } from 'node:perf_hooks';
import { GuestFault } from '../../memory/guest-memory.ts';
import type { StdioFd, SyscallContext, SyscallHandler } from './context.ts';
import { EINTR, EINVAL } from './errno.ts';
import { MAX_FDS } from './files.ts';

export const POLLIN = 0x1, POLLOUT = 0x4, POLLERR = 0x8, POLLHUP = 0x10, POLLNVAL = 0x20;
export const POLLRDNORM = 0x40, POLLWRNORM = 0x100;
/** What a file without a poll method reports (the kernel's DEFAULT_POLLMASK): regular files. */
const DEFAULT_POLLMASK = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;
/** struct pollfd: int fd, short events, short revents. */
const POLLFD_SIZE = 8;
/** The kernel's sigset_t, the only size ppoll's mask may have. */
const SIGSET_SIZE = 8;
const NSEC_PER_SEC = 1_000_000_000;

/**
 * The poll loop the kernel's do_sys_poll runs, on an array already copied in: every entry's
 * revents (filtered by its events plus POLLERR and POLLHUP, POLLNVAL for an fd that is not open),
 * waiting at most `timeoutMs` (Infinity: no limit) for one to report something, never past the
 * program's deadline. Returns how many entries report something, or -EINTR when the deadline came
 * first (the run then ends with its timeout).
 */
function doPoll(ctx: SyscallContext, fds: Int32Array, events: Uint16Array, revents: Uint16Array, timeoutMs: number): number {
  const until = performance.now() + Math.min(timeoutMs, ctx.remainingMs());
  const stdio: Array<{ index: number; fd: StdioFd; events: number }> = [];
  let ready = 0;
  for (let i = 0; i < fds.length; i++) {
    const fd = fds[i]!;
    revents[i] = 0;
    if (fd < 0) continue;
    const filter = events[i]! | POLLERR | POLLHUP;
    if (fd <= 2) stdio.push({ index: i, fd: fd as StdioFd, events: filter });
    else {
      const event = ctx.events.get(fd);
      revents[i] = event ? ctx.events.readiness(event) & filter : ctx.files.get(fd) ? DEFAULT_POLLMASK & filter : POLLNVAL;
    }
    if (revents[i] !== 0) ready++;
  }
  const left = ready > 0 ? 0 : Math.max(0, until - performance.now());
  if (stdio.length > 0) {
    const answers = ctx.stdio.poll(stdio, left);
    stdio.forEach((s, k) => {
      revents[s.index] = answers[k]! & (s.events | POLLNVAL);
      if (revents[s.index] !== 0) ready++;
    });
  }
  // Streams that answered early with nothing will not change: wait out the rest of the time.
  if (ready === 0) ctx.sleep(Math.max(0, until - performance.now()));
  // Nothing came before the deadline: the run ends with its timeout, as a blocked read does.
  return ready === 0 && timeoutMs > 0 && ctx.remainingMs() <= 0 ? -EINTR : ready;
}

/** Copies the guest's pollfd array in, polls, and writes every revents back. */
function pollGuest(ctx: SyscallContext, ufds: number, nfds: number, timeoutMs: number): number {
  if (nfds > MAX_FDS) return -EINVAL;
  if (nfds === 0) return doPoll(ctx, new Int32Array(0), new Uint16Array(0), new Uint16Array(0), timeoutMs);
  const raw = ctx.mem.user(ufds, nfds * POLLFD_SIZE);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const fds = new Int32Array(nfds);
  const events = new Uint16Array(nfds);
  const revents = new Uint16Array(nfds);
  for (let i = 0; i < nfds; i++) {
    fds[i] = view.getInt32(i * POLLFD_SIZE, true);
    events[i] = view.getUint16(i * POLLFD_SIZE + 4, true);
  }
  const result = doPoll(ctx, fds, events, revents, timeoutMs);
  ctx.mem.writable(ufds, nfds * POLLFD_SIZE);
  for (let i = 0; i < nfds; i++) view.setUint16(i * POLLFD_SIZE + 6, revents[i]!, true);
  return result;
}

/**
 * ppoll: the timeout is a timespec (NULL: none) and is written back with the time that remains,
 * as the kernel does (a read-only timespec is left as it was); the signal mask must be the
 * kernel's size and readable, and then changes nothing, since no signal is ever delivered.
 */
function ppoll(ctx: SyscallContext, ufds: number, nfds: number, tsp: number, sigmask: number, sigsetsize: number): number {
  let timeoutMs = Infinity;
  if (tsp !== 0) {
    const ts = ctx.mem.user(tsp, 16);
    const v = new DataView(ts.buffer, ts.byteOffset, 16);
    const sec = v.getBigInt64(0, true);
    const nsec = v.getBigInt64(8, true);
    if (sec < 0n || nsec < 0n || nsec >= BigInt(NSEC_PER_SEC)) return -EINVAL;
    timeoutMs = Number(sec) * 1000 + Number(nsec) / 1e6;
  }
  if (sigmask !== 0) {
    if (sigsetsize !== SIGSET_SIZE) return -EINVAL;
    ctx.mem.check(sigmask, SIGSET_SIZE);
  }
  const started = performance.now();
  const result = pollGuest(ctx, ufds, nfds, timeoutMs);
  // A zero timeout is not written back; a timespec the guest cannot write is left alone.
  if (tsp !== 0 && timeoutMs > 0) {
    const leftNs = Math.max(0, Math.round((timeoutMs - (performance.now() - started)) * 1e6));
    try {
      ctx.mem.setU64(tsp, Math.floor(leftNs / NSEC_PER_SEC));
      ctx.mem.setU64(tsp + 8, leftNs % NSEC_PER_SEC);
    } catch (err) {
      if (!(err instanceof GuestFault)) throw err;
    }
  }
  return result;
}

export const pollSyscalls: Record<string, SyscallHandler> = {
  // A negative timeout waits without limit (up to the deadline), as the kernel's does.
  poll: (ctx, ufds, nfds, timeout) => pollGuest(ctx, ufds, nfds, timeout < 0 ? Infinity : timeout),
  ppoll,
};
