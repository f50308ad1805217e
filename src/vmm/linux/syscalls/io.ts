// Reading and writing the standard streams and open files: read, write, readv, writev and
// pread64 move the bytes a piece at a time through the guest's page tables (GuestMemory), and a
// read or write that faults part-way returns what it did, as the kernel's does.
import { readSync } from 'node:fs';
import { GuestFault, TASK_SIZE_MAX } from '../../memory/guest-memory.ts';
import type { SyscallContext } from './context.ts';
import { EBADF, EFAULT, EINTR, EINVAL, ESPIPE, errnoOf } from './errno.ts';

const MAX_IOV = 1024;
/** The largest position a guest's file may seek to: the host reads positions as exact Numbers. */
export const MAX_FILE_OFFSET = Number.MAX_SAFE_INTEGER;

/** True when `fd` can be read: stdin, or a file the guest opened. */
export const readable = (ctx: SyscallContext, fd: number): boolean => fd === 0 || ctx.files.get(fd) !== undefined;
/** True when `fd` can be written: stdout or stderr. */
export const writable = (fd: number): fd is 1 | 2 => fd === 1 || fd === 2;

function readInto(ctx: SyscallContext, fd: number, into: Uint8Array, position?: number): number {
  // Stdin waits on the host only while no other thread could use the CPU (see `stdinRead`).
  if (fd === 0) return ctx.stdio.read(into, ctx.threads.blockingWaitMs());
  const f = ctx.files.get(fd);
  if (!f) return -EBADF;
  try {
    const n = readSync(f.hostFd, into, 0, into.length, position ?? f.position);
    if (position === undefined) f.position += n;
    return n;
  } catch (err) {
    return -errnoOf(err);
  }
}

export function writeFrom(ctx: SyscallContext, fd: 1 | 2, data: Uint8Array): number {
  return ctx.stdio.write(fd, data, ctx.remainingMs());
}

/**
 * Runs `each` over the guest buffer [addr, addr+len) a piece at a time (GuestMemory.forEachPiece)
 * until it does less than a whole piece or fails, and returns the bytes done; an error (-errno, or
 * -EFAULT for a piece the program may not access) only when nothing was done, since a read or
 * write that faults part-way returns what it did, as the kernel's does. `once`: one piece only,
 * for a stream that would wait for more (stdin).
 */
export function transfer(ctx: SyscallContext, addr: number, len: number, write: boolean, each: (view: Uint8Array) => number, once = false): number {
  let total = 0;
  let error = 0;
  try {
    ctx.mem.forEachPiece(addr, len, write, (view) => {
      const n = each(view);
      if (n < 0) error = n;
      else total += n;
      return n === view.length && !once;
    });
  } catch (err) {
    if (!(err instanceof GuestFault)) throw err;
    error = -EFAULT;
  }
  return total > 0 || error === 0 ? total : error;
}

/** read(2) of `fd` into the guest buffer, at the file's position or at `position`. */
export function readBuffer(ctx: SyscallContext, fd: number, buf: number, len: number, position?: number): number {
  let at = position;
  return transfer(ctx, buf, len, true, (view) => {
    const n = readInto(ctx, fd, view, at);
    if (at !== undefined && n > 0) at += n;
    return n;
  }, fd === 0);
}

/**
 * A read whose stdin wait ended with nothing read (-EINTR): the call runs again once the other
 * threads have had the CPU, or ends with the run at its deadline.
 */
export const stdinRead = (ctx: SyscallContext, n: number): number => (n === -EINTR ? ctx.threads.retryLater() : n);

/**
 * pread64 with the kernel's checks in its order: a negative position, the fd, a pipe (stdio), the
 * buffer's range, a position + count past 2^63. Positions past MAX_FILE_OFFSET lie past the end
 * of any file: nothing to read there.
 */
export function pread(ctx: SyscallContext, fd: number, buf: number, len: number, position: number): number {
  if (position < 0) return -EINVAL;
  if (!ctx.files.get(fd)) return fd <= 2 ? -ESPIPE : -EBADF;
  if (buf + len > TASK_SIZE_MAX) return -EFAULT;
  if (position + len >= 2 ** 63) return -EINVAL;
  return position > MAX_FILE_OFFSET ? 0 : readBuffer(ctx, fd, buf, len, position);
}

/**
 * readv/writev: the iovec array is checked whole first, as the kernel's import_iovec() does (a
 * length with its top bit set is EINVAL, then a buffer beyond user addresses EFAULT); then the
 * buffers are read or written in order until one is done short or fails.
 */
export function vectored(ctx: SyscallContext, fd: number, iov: number, count: number, write: boolean): number {
  if (count > MAX_IOV) return -EINVAL;
  if (count === 0) return 0;
  ctx.mem.check(iov, count * 16);
  const bufs: Array<[number, number]> = [];
  for (let i = 0; i < count; i++) {
    const len = ctx.mem.i64(iov + i * 16 + 8);
    if (len < 0n) return -EINVAL;
    bufs.push([ctx.mem.u64(iov + i * 16), Number(len)]);
  }
  if (bufs.some(([base, len]) => base + len > TASK_SIZE_MAX)) return -EFAULT;
  let total = 0;
  for (const [base, len] of bufs) {
    if (len === 0) continue;
    const n = write ? readBuffer(ctx, fd, base, len) : transfer(ctx, base, len, false, (view) => writeFrom(ctx, fd as 1 | 2, view));
    if (n < 0) return total > 0 ? total : n;
    total += n;
    if (n < len) break;
  }
  return total;
}
