// Waiting for a host fd with a deadline, for guest reads and writes that must not outlive the
// time limit.
import { performance } from 'node:perf_hooks';
import { poll } from '../../kvm/libc.ts';

const POLLIN = 1, POLLOUT = 4, POLLERR = 0x8, POLLHUP = 0x10;

/** True when `fd` reports one of `events`, or POLLHUP/POLLERR, within `waitMs`; false when time ran out. */
function waitFor(fd: number, events: number, waitMs: number): boolean {
  const pfd = new Uint8Array(8);
  const view = new DataView(pfd.buffer);
  const until = performance.now() + waitMs;
  for (;;) {
    view.setInt32(0, fd, true);
    view.setInt16(4, events, true);
    view.setInt16(6, 0, true);
    const left = Math.ceil(until - performance.now());
    if (left <= 0) return false;
    // A negative result is EINTR from the timeout signal: loop and recheck the time.
    if (poll(pfd, 1, Math.min(left, 2_147_483_647)) > 0) return (view.getInt16(6, true) & (events | POLLHUP | POLLERR)) !== 0;
  }
}

/**
 * poll(2) of host fds with `events` each, waiting at most `waitMs` until one reports something;
 * returns each fd's revents (all 0 when time ran out). The timeout signal's EINTR polls again.
 */
export function pollFds(entries: ReadonlyArray<{ fd: number; events: number }>, waitMs: number): number[] {
  const pfds = new Uint8Array(entries.length * 8);
  const view = new DataView(pfds.buffer);
  const until = performance.now() + waitMs;
  for (;;) {
    entries.forEach((e, i) => {
      view.setInt32(i * 8, e.fd, true);
      view.setInt16(i * 8 + 4, e.events, true);
      view.setInt16(i * 8 + 6, 0, true);
    });
    const left = Math.max(0, Math.ceil(until - performance.now()));
    if (poll(pfds, entries.length, Math.min(left, 2_147_483_647)) >= 0 || left === 0) break;
  }
  return entries.map((_, i) => view.getUint16(i * 8 + 6, true));
}

/** True when `fd` is readable (or at end of file) within `waitMs`; false when time ran out. */
export function waitReadable(fd: number, waitMs: number): boolean {
  return waitFor(fd, POLLIN, waitMs);
}

/**
 * True when `fd` has room for a write within `waitMs` (or a write would fail at once: its reader
 * is gone); false when time ran out. For a pipe, room means at least PIPE_BUF bytes.
 */
export function waitWritable(fd: number, waitMs: number): boolean {
  return waitFor(fd, POLLOUT, waitMs);
}
