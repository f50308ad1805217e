// The system calls of pipes, eventfds and epoll (events.ts): pipe/pipe2, eventfd/eventfd2,
// epoll_create/create1/ctl/wait/pwait/pwait2, and read, write, readv, writev, close, fstat,
// fcntl, ioctl, lseek and pread64 for their fds; every other fd goes on to the file calls. Checks
// come in the kernel's order. A call that would block lets the program's other threads run first
// (a read, a write) or waits on the instance (epoll), never past the deadline.
import { performance } from 'node:perf_hooks';
import { GuestFault, TASK_SIZE_MAX } from '../../memory/guest-memory.ts';
import type { SyscallContext, SyscallHandler } from './context.ts';
import { EAGAIN, EBADF, EFAULT, EINVAL, EPERM, ESPIPE } from './errno.ts';
import { type EventTable, PIPE_CAPACITY } from './events.ts';
import { writeStat } from './files.ts';

const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000, O_DIRECT = 0o40000;
/** pipe2's O_NOTIFICATION_PIPE (O_EXCL's bit): watch queues, which this kernel lacks (ENOPKG). */
const O_NOTIFICATION_PIPE = 0o200, ENOPKG = 65;
const EFD_SEMAPHORE = 1;
const EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
/** struct epoll_event is packed on x86-64: a 32-bit mask, then 64 bits of data. */
const EPOLL_EVENT_SIZE = 12;
/** The kernel's EP_MAX_EVENTS: INT_MAX / sizeof(struct epoll_event). */
const EP_MAX_EVENTS = Math.floor(0x7fff_ffff / EPOLL_EVENT_SIZE);
const EPOLLEXCLUSIVE_OK = 0x1 | 0x4 | 0x8 | 0x10 | 0x40 | 0x100 | (1 << 29) | 0x8000_0000;
const SIGSET_SIZE = 8;
const F_GETFD = 1, F_SETFD = 2, F_GETFL = 3, F_SETFL = 4, F_GETPIPE_SZ = 1032;
const FIONREAD = 0x541b, FIONBIO = 0x5421;
/** How often an epoll wait that watches a standard stream looks at it again (nothing wakes it). */
const STDIO_RECHECK_MS = 10;

/** Bytes out of a pipe or an eventfd into the guest buffer; -errno, or the retry of a blocking read. */
function readEvent(ctx: SyscallContext, ev: EventTable, fd: number, buf: number, len: number): number {
  const h = ev.get(fd)!;
  const o = h.obj;
  if (o.kind === 'epoll' || h.end === 'write') return o.kind === 'epoll' ? -EINVAL : -EBADF;
  if (buf + len > TASK_SIZE_MAX) return -EFAULT;
  if (o.kind === 'eventfd') {
    if (len < 8) return -EINVAL;
    if (o.value === 0n) return h.nonblock ? -EAGAIN : ctx.threads.retryLater();
    const into = ctx.mem.writable(buf, 8);
    const taken = o.semaphore ? 1n : o.value;
    new DataView(into.buffer, into.byteOffset, 8).setBigUint64(0, taken, true);
    o.value -= taken;
    ev.bump(ctx, o);
    return 8;
  }
  if (len === 0) return 0;
  // The buffer is checked first: a read that cannot land leaves the bytes in the pipe.
  const into = o.size > 0 ? ctx.mem.writable(buf, Math.min(len, o.size)) : undefined;
  const got = ev.readPipe(ctx, o, len);
  if (typeof got === 'number') return h.nonblock ? got : ctx.threads.retryLater();
  into?.set(got);
  return got.length;
}

/** Bytes from the guest buffer into a pipe or an eventfd; -errno, or the retry of a blocking write. */
function writeEvent(ctx: SyscallContext, ev: EventTable, fd: number, buf: number, len: number): number {
  const h = ev.get(fd)!;
  const o = h.obj;
  if (o.kind === 'epoll' || h.end === 'read') return o.kind === 'epoll' ? -EINVAL : -EBADF;
  if (buf + len > TASK_SIZE_MAX) return -EFAULT;
  if (o.kind === 'eventfd') {
    if (len < 8) return -EINVAL;
    const v = new DataView(ctx.mem.user(buf, 8).slice().buffer).getBigUint64(0, true);
    if (v === 0xffff_ffff_ffff_ffffn) return -EINVAL;
    if (o.value + v > 0xffff_ffff_ffff_fffen) return h.nonblock ? -EAGAIN : ctx.threads.retryLater();
    o.value += v;
    ev.bump(ctx, o);
    return 8;
  }
  if (len === 0) return 0;
  const n = ev.writePipe(ctx, o, ctx.mem.user(buf, Math.min(len, PIPE_CAPACITY)));
  return n === -EAGAIN && !h.nonblock ? ctx.threads.retryLater() : n;
}

/** readv/writev over the iovecs, one buffer after another until one is done short. */
function vectored(ctx: SyscallContext, iov: number, count: number, each: (buf: number, len: number) => number): number {
  if (count > 1024) return -EINVAL;
  if (count === 0) return 0;
  ctx.mem.check(iov, count * 16);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const len = ctx.mem.i64(iov + i * 16 + 8);
    if (len < 0n) return -EINVAL;
    if (len === 0n) continue;
    const n = each(ctx.mem.u64(iov + i * 16), Number(len));
    if (n < 0) return total > 0 ? total : n;
    total += n;
    if (n < Number(len)) break;
  }
  return total;
}

function pipe2(ctx: SyscallContext, fds: number, flags: number): number {
  if ((flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT | O_NOTIFICATION_PIPE)) !== 0) return -EINVAL;
  if ((flags & O_NOTIFICATION_PIPE) !== 0) return -ENOPKG;
  const made = ctx.events.pipe((flags & O_NONBLOCK) !== 0);
  if (typeof made === 'number') return made;
  try {
    ctx.mem.setU32(fds, made[0]);
    ctx.mem.setU32(fds + 4, made[1]);
  } catch (err) {
    if (!(err instanceof GuestFault)) throw err;
    ctx.events.close(ctx, made[0]);
    ctx.events.close(ctx, made[1]);
    return -EFAULT;
  }
  return 0;
}

function eventfd2(ctx: SyscallContext, count: number, flags: number): number {
  if ((flags & ~(EFD_SEMAPHORE | O_CLOEXEC | O_NONBLOCK)) !== 0) return -EINVAL;
  return ctx.events.eventfd(count, (flags & EFD_SEMAPHORE) !== 0, (flags & O_NONBLOCK) !== 0);
}

function epollCtl(ctx: SyscallContext, epfd: number, op: number, fd: number, event: number): number {
  let events = 0;
  let data = 0n;
  if (op !== EPOLL_CTL_DEL) {
    events = ctx.mem.u32(event);
    data = BigInt(ctx.mem.u64(event + 4));
  }
  const ep = ctx.events.get(epfd);
  if (!ep && !ctx.files.get(epfd) && !(epfd >= 0 && epfd <= 2)) return -EBADF;
  const target = ctx.events.get(fd);
  if (!target && !ctx.files.get(fd) && !(fd >= 0 && fd <= 2)) return -EBADF;
  // Regular files cannot be polled; the standard streams are pipes to the program.
  if (!target && fd > 2) return -EPERM;
  if (!ep || ep.obj.kind !== 'epoll' || epfd === fd || target?.obj.kind === 'epoll') return -EINVAL;
  if (op !== EPOLL_CTL_DEL && (events & (1 << 28)) !== 0 && (op === EPOLL_CTL_MOD || (events & ~EPOLLEXCLUSIVE_OK) !== 0)) return -EINVAL;
  return ctx.events.control(ep.obj, op, fd, events, data);
}

/**
 * epoll_wait after its mask: the ready events, written to `events`; with none and a time to wait,
 * the caller waits on the instance until something it watches changes or the time is up (the
 * call then returns 0, and the next reports what changed).
 */
function epollWait(ctx: SyscallContext, epfd: number, events: number, max: number, timeoutMs: number): number {
  if (max <= 0 || max > EP_MAX_EVENTS) return -EINVAL;
  if (events + max * EPOLL_EVENT_SIZE > TASK_SIZE_MAX) return -EFAULT;
  const h = ctx.events.get(epfd);
  if (!h) return ctx.files.get(epfd) || (epfd >= 0 && epfd <= 2) ? -EINVAL : -EBADF;
  if (h.obj.kind !== 'epoll') return -EINVAL;
  const ready = ctx.events.collect(ctx, h.obj, max);
  if (ready.length === 0) {
    if (timeoutMs === 0) return 0;
    let wakeAt = performance.now() + timeoutMs;
    if (ctx.events.watchesStdio(h.obj)) wakeAt = Math.min(wakeAt, performance.now() + STDIO_RECHECK_MS);
    return ctx.threads.futexWait(-h.obj.id, 0xffff_ffff, wakeAt, 0);
  }
  const out = ctx.mem.writable(events, ready.length * EPOLL_EVENT_SIZE);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  ready.forEach((e, i) => {
    v.setUint32(i * EPOLL_EVENT_SIZE, e.events >>> 0, true);
    v.setBigUint64(i * EPOLL_EVENT_SIZE + 4, BigInt.asUintN(64, e.data), true);
  });
  return ready.length;
}

/** epoll_pwait's signal mask: its size must be the kernel's and it must be readable; no signal is delivered, so it changes nothing. */
function checkSigmask(ctx: SyscallContext, sigmask: number, sigsetsize: number): number {
  if (sigmask === 0) return 0;
  if (sigsetsize !== SIGSET_SIZE) return -EINVAL;
  ctx.mem.check(sigmask, SIGSET_SIZE);
  return 0;
}

/** The file calls, with the fds of pipes, eventfds and epoll instances answered here. */
export function eventSyscalls(files: Record<string, SyscallHandler>): Record<string, SyscallHandler> {
  const mine = (ctx: SyscallContext, fd: number): boolean => ctx.events.has(fd);
  return {
    read: (ctx, fd, buf, len, d, e, f) => (mine(ctx, fd) ? readEvent(ctx, ctx.events, fd, buf, len) : files.read!(ctx, fd, buf, len, d, e, f)),
    write: (ctx, fd, buf, len, d, e, f) => (mine(ctx, fd) ? writeEvent(ctx, ctx.events, fd, buf, len) : files.write!(ctx, fd, buf, len, d, e, f)),
    readv: (ctx, fd, iov, n, d, e, f) => (mine(ctx, fd) ? vectored(ctx, iov, n, (b, l) => readEvent(ctx, ctx.events, fd, b, l)) : files.readv!(ctx, fd, iov, n, d, e, f)),
    writev: (ctx, fd, iov, n, d, e, f) => (mine(ctx, fd) ? vectored(ctx, iov, n, (b, l) => writeEvent(ctx, ctx.events, fd, b, l)) : files.writev!(ctx, fd, iov, n, d, e, f)),
    pread64: (ctx, fd, buf, len, pos, e, f) => (mine(ctx, fd) ? (pos < 0 ? -EINVAL : -ESPIPE) : files.pread64!(ctx, fd, buf, len, pos, e, f)),
    lseek: (ctx, fd, off, whence, d, e, f) => (mine(ctx, fd) ? -ESPIPE : files.lseek!(ctx, fd, off, whence, d, e, f)),
    close: (ctx, fd, b, c, d, e, f) => (mine(ctx, fd) ? ctx.events.close(ctx, fd) : files.close!(ctx, fd, b, c, d, e, f)),
    fstat: (ctx, fd, addr, c, d, e, f) => (mine(ctx, fd) ? writeStat(ctx, addr, 'stdio') : files.fstat!(ctx, fd, addr, c, d, e, f)),
    fcntl: (ctx, fd, cmd, arg, d, e, f) => {
      const h = ctx.events.get(fd);
      if (!h) return files.fcntl!(ctx, fd, cmd, arg, d, e, f);
      if (cmd === F_GETFD || cmd === F_SETFD) return 0;
      if (cmd === F_GETFL) return (h.end === 'read' ? 0 : h.end === 'write' ? 1 : 2) | (h.nonblock ? O_NONBLOCK : 0);
      if (cmd === F_SETFL) {
        ctx.events.setNonblock(h, (arg & O_NONBLOCK) !== 0);
        return 0;
      }
      if (cmd === F_GETPIPE_SZ && h.obj.kind === 'pipe') return PIPE_CAPACITY;
      return -EINVAL;
    },
    ioctl: (ctx, fd, req, arg, d, e, f) => {
      const h = ctx.events.get(fd);
      if (!h) return files.ioctl!(ctx, fd, req, arg, d, e, f);
      if (req === FIONBIO) {
        ctx.events.setNonblock(h, ctx.mem.u32(arg) !== 0);
        return 0;
      }
      if (req === FIONREAD && h.obj.kind === 'pipe') {
        ctx.mem.setU32(arg, h.obj.size);
        return 0;
      }
      return -25; // ENOTTY
    },
    pipe: (ctx, fds) => pipe2(ctx, fds, 0),
    pipe2: (ctx, fds, flags) => pipe2(ctx, fds, flags),
    eventfd: (ctx, count) => eventfd2(ctx, count, 0),
    eventfd2: (ctx, count, flags) => eventfd2(ctx, count, flags),
    epoll_create: (ctx, size) => (size <= 0 ? -EINVAL : ctx.events.epoll()),
    epoll_create1: (ctx, flags) => ((flags & ~O_CLOEXEC) !== 0 ? -EINVAL : ctx.events.epoll()),
    epoll_ctl: epollCtl,
    epoll_wait: (ctx, epfd, events, max, timeout) => epollWait(ctx, epfd, events, max, timeout < 0 ? Infinity : timeout),
    epoll_pwait: (ctx, epfd, events, max, timeout, sigmask, sigsetsize) => {
      const bad = checkSigmask(ctx, sigmask, sigsetsize);
      return bad < 0 ? bad : epollWait(ctx, epfd, events, max, timeout < 0 ? Infinity : timeout);
    },
    epoll_pwait2: (ctx, epfd, events, max, tsp, sigmask, sigsetsize) => {
      let timeoutMs = Infinity;
      if (tsp !== 0) {
        const sec = ctx.mem.i64(tsp);
        const nsec = ctx.mem.i64(tsp + 8);
        if (sec < 0n || nsec < 0n || nsec >= 1_000_000_000n) return -EINVAL;
        timeoutMs = Number(sec) * 1000 + Number(nsec) / 1e6;
      }
      const bad = checkSigmask(ctx, sigmask, sigsetsize);
      return bad < 0 ? bad : epollWait(ctx, epfd, events, max, timeoutMs);
    },
  };
}
