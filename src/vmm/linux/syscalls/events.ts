// The kernel objects a program uses to wake its own threads: pipes, eventfds and epoll. Go's
// runtime needs them all (its netpoller waits in epoll_pwait, which is also how it sleeps until
// its next timer, and a pipe or an eventfd breaks that wait), and so do event loops. They live
// in the host, hold at most a pipe's 64 KiB each, share the fd numbers of FileTable, and are
// part of a snapshot. Nothing here reaches the host's files: an epoll instance watches these
// objects and the standard streams only (a regular file is EPERM, as in the kernel).
import type { StdioFd, SyscallContext } from './context.ts';
import { EAGAIN, EBADF, EEXIST, EINVAL, EMFILE, ENOENT, EPIPE } from './errno.ts';
import type { FileTable } from './files.ts';
import { POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM } from './poll.ts';

/** Linux's default pipe capacity (16 pages), and the size up to which a write is atomic. */
export const PIPE_CAPACITY = 65536;
const PIPE_BUF = 4096;
/** The largest value an eventfd counter holds. */
const EVENTFD_MAX = 0xffff_ffff_ffff_fffen;
/** Wakes every thread waiting in an epoll instance. */
const MAX_WAITERS = 0x7fff_ffff, FUTEX_BITSET_MATCH_ANY = 0xffff_ffff;
export const EPOLLRDHUP = 0x2000, EPOLLEXCLUSIVE = 1 << 28, EPOLLWAKEUP = 1 << 29, EPOLLONESHOT = 1 << 30, EPOLLET = 0x8000_0000;
/** Bits of an interest's events that are settings, not events to report. */
export const EPOLL_SETTINGS = EPOLLEXCLUSIVE | EPOLLWAKEUP | EPOLLONESHOT | EPOLLET;

interface Pipe {
  kind: 'pipe';
  chunks: Uint8Array[];
  size: number;
  readers: number;
  writers: number;
}

interface Counter {
  kind: 'eventfd';
  value: bigint;
  semaphore: boolean;
}

interface Interest {
  /** EPOLL* bits asked for, settings included; 0 after a one-shot report until EPOLL_CTL_MOD. */
  events: number;
  data: bigint;
  /** The object's `gen` when this interest last reported (edge-triggered interests report changes only). */
  seen: number;
}

interface Epoll {
  kind: 'epoll';
  interest: Map<number, Interest>;
}

/** An object, with a number for the waits on it and a generation that every change of its readiness bumps. */
type KernelObject = (Pipe | Counter | Epoll) & { id: number; gen: number };

/** An fd: the object and, for a pipe, which end; O_NONBLOCK. */
interface Handle {
  obj: KernelObject;
  end: 'read' | 'write' | 'both';
  nonblock: boolean;
}

/** The table as a snapshot keeps it: plain data (objects once, by id; fds naming them). */
export interface EventTableState {
  readonly objects: readonly KernelObject[];
  readonly fds: ReadonlyArray<{ fd: number; id: number; end: Handle['end']; nonblock: boolean }>;
  readonly nextId: number;
}

const clone = (o: KernelObject): KernelObject => {
  if (o.kind === 'pipe') return { ...o, chunks: o.chunks.map((c) => c.slice()) };
  if (o.kind === 'epoll') return { ...o, interest: new Map([...o.interest].map(([fd, i]) => [fd, { ...i }])) };
  return { ...o };
};

export class EventTable {
  private fds = new Map<number, Handle>();
  private nextId = 1;
  private changed = false;

  constructor(private readonly files: FileTable) {
    files.otherFds = this.fds;
  }

  has(fd: number): boolean {
    return this.fds.has(fd);
  }

  get(fd: number): Handle | undefined {
    return this.fds.get(fd);
  }

  save(): EventTableState {
    this.changed = false;
    const objects = new Map<number, KernelObject>();
    for (const h of this.fds.values()) objects.set(h.obj.id, clone(h.obj));
    return {
      objects: [...objects.values()],
      fds: [...this.fds].map(([fd, h]) => ({ fd, id: h.obj.id, end: h.end, nonblock: h.nonblock })),
      nextId: this.nextId,
    };
  }

  /** Back to `state`; cheap when nothing changed since it was taken. */
  restore(state: EventTableState): void {
    // Untouched since it was saved (or restored) from this state: nothing to do.
    if (!this.changed && state.fds.length === this.fds.size) return;
    const objects = new Map(state.objects.map((o) => [o.id, clone(o)]));
    this.fds = new Map(state.fds.map((f) => [f.fd, { obj: objects.get(f.id)!, end: f.end, nonblock: f.nonblock }]));
    this.files.otherFds = this.fds;
    this.nextId = state.nextId;
    this.changed = false;
  }

  /** O_NONBLOCK on or off (fcntl F_SETFL, ioctl FIONBIO). */
  setNonblock(h: Handle, on: boolean): void {
    h.nonblock = on;
    this.changed = true;
  }

  /** A new fd for `obj` (the lowest free one), or -EMFILE. */
  add(obj: Pipe | Counter | Epoll, end: Handle['end'], nonblock: boolean, existing?: KernelObject): number {
    const fd = this.files.lowestFreeFd();
    if (fd < 0) return -EMFILE;
    const o = existing ?? { ...obj, id: this.nextId++, gen: 0 };
    this.fds.set(fd, { obj: o, end, nonblock });
    this.changed = true;
    return fd;
  }

  /** close(2) of one of these fds: a pipe end going away is a change its other end sees. */
  close(ctx: SyscallContext, fd: number): number {
    const h = this.fds.get(fd);
    if (!h) return -EBADF;
    this.fds.delete(fd);
    this.changed = true;
    for (const other of this.fds.values()) if (other.obj.kind === 'epoll') other.obj.interest.delete(fd);
    if (h.obj.kind === 'pipe') {
      if (h.end === 'read') h.obj.readers--;
      else h.obj.writers--;
      this.bump(ctx, h.obj);
    }
    return 0;
  }

  /** Every fd closed (the machine ends). */
  clear(): void {
    this.fds.clear();
  }

  /** The object's readiness changed: its generation moves on and every epoll watching it wakes. */
  bump(ctx: SyscallContext, obj: KernelObject): void {
    obj.gen++;
    this.changed = true;
    for (const h of this.fds.values()) {
      if (h.obj.kind !== 'epoll') continue;
      for (const watched of h.obj.interest.keys()) {
        if (this.fds.get(watched)?.obj === obj) {
          ctx.threads.futexWake(-h.obj.id, MAX_WAITERS, FUTEX_BITSET_MATCH_ANY);
          break;
        }
      }
    }
  }

  /** POLL* readiness of a handle (what poll, ppoll and epoll report of it). */
  readiness(h: Handle): number {
    const o = h.obj;
    if (o.kind === 'pipe') {
      if (h.end === 'read') return (o.size > 0 ? POLLIN | POLLRDNORM : 0) | (o.writers === 0 ? POLLHUP : 0);
      if (o.readers === 0) return POLLERR;
      return PIPE_CAPACITY - o.size >= PIPE_BUF ? POLLOUT | POLLWRNORM : 0;
    }
    if (o.kind === 'eventfd') return (o.value > 0n ? POLLIN | POLLRDNORM : 0) | (o.value < EVENTFD_MAX ? POLLOUT | POLLWRNORM : 0);
    // An epoll fd inside another epoll or poll is not followed here: it never reports ready.
    return 0;
  }

  // --- pipes ------------------------------------------------------------------------------------

  pipe(nonblock: boolean): [number, number] | number {
    const r = this.add({ kind: 'pipe', chunks: [], size: 0, readers: 1, writers: 1 }, 'read', nonblock);
    if (r < 0) return r;
    const w = this.add({ kind: 'pipe', chunks: [], size: 0, readers: 0, writers: 0 }, 'write', nonblock, this.fds.get(r)!.obj);
    if (w < 0) {
      this.fds.delete(r);
      return w;
    }
    return [r, w];
  }

  /** Takes up to `max` bytes out of a pipe; 0 at its end (no writers), -EAGAIN while empty. */
  readPipe(ctx: SyscallContext, o: Pipe & KernelObject, max: number): Uint8Array | number {
    if (o.size === 0) return o.writers === 0 ? new Uint8Array(0) : -EAGAIN;
    const out = new Uint8Array(Math.min(max, o.size));
    let at = 0;
    while (at < out.length) {
      const c = o.chunks[0]!;
      const n = Math.min(c.length, out.length - at);
      out.set(c.subarray(0, n), at);
      at += n;
      if (n === c.length) o.chunks.shift();
      else o.chunks[0] = c.subarray(n);
    }
    o.size -= out.length;
    this.bump(ctx, o);
    return out;
  }

  /** Puts `data` in a pipe, as much as fits (all or nothing up to PIPE_BUF); -EAGAIN when full, -EPIPE without readers. */
  writePipe(ctx: SyscallContext, o: Pipe & KernelObject, data: Uint8Array): number {
    if (o.readers === 0) return -EPIPE;
    const room = PIPE_CAPACITY - o.size;
    if (room === 0 || (data.length <= PIPE_BUF && room < data.length)) return -EAGAIN;
    const n = Math.min(room, data.length);
    o.chunks.push(data.slice(0, n));
    o.size += n;
    this.bump(ctx, o);
    return n;
  }

  // --- eventfds and epoll -----------------------------------------------------------------------

  eventfd(initial: number, semaphore: boolean, nonblock: boolean): number {
    return this.add({ kind: 'eventfd', value: BigInt(initial), semaphore }, 'both', nonblock);
  }

  epoll(): number {
    return this.add({ kind: 'epoll', interest: new Map() }, 'both', false);
  }

  /** epoll_ctl after its checks of the fds: ADD, MOD or DEL of `fd` in `ep`. */
  control(ep: Epoll, op: number, fd: number, events: number, data: bigint): number {
    const EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
    const had = ep.interest.get(fd);
    this.changed = true;
    if (op === EPOLL_CTL_ADD) {
      if (had) return -EEXIST;
      ep.interest.set(fd, { events, data, seen: -1 });
      return 0;
    }
    if (!had) return op === EPOLL_CTL_DEL || op === EPOLL_CTL_MOD ? -ENOENT : -EINVAL;
    if (op === EPOLL_CTL_DEL) ep.interest.delete(fd);
    else if (op === EPOLL_CTL_MOD) {
      // EPOLLEXCLUSIVE cannot be set, nor kept, by a MOD.
      if ((events & EPOLLEXCLUSIVE) !== 0 || (had.events & EPOLLEXCLUSIVE) !== 0) return -EINVAL;
      ep.interest.set(fd, { events, data, seen: -1 });
    } else return -EINVAL;
    return 0;
  }

  /**
   * The events ready in `ep`, at most `max` of them, as epoll_wait reports them: each interest's
   * readiness filtered by what it asked for (errors and hang-ups always), edge-triggered ones only
   * when their object changed since they last reported, one-shot ones disabled once reported.
   */
  collect(ctx: SyscallContext, ep: Epoll, max: number): Array<{ events: number; data: bigint }> {
    const out: Array<{ events: number; data: bigint }> = [];
    const stdio: Array<{ fd: StdioFd; events: number; interest: Interest }> = [];
    for (const [fd, i] of ep.interest) {
      if (fd <= 2) stdio.push({ fd: fd as StdioFd, events: (i.events & ~EPOLL_SETTINGS) | POLLERR | POLLHUP, interest: i });
    }
    const stdioReady = stdio.length > 0 ? ctx.stdio.poll(stdio, 0) : [];
    let k = 0;
    for (const [fd, i] of ep.interest) {
      if (out.length >= max) break;
      if ((i.events & ~EPOLL_SETTINGS) === 0 && (i.events & EPOLLONESHOT) !== 0) continue;
      const h = this.fds.get(fd);
      const ready = (fd <= 2 ? stdioReady[k++]! : h ? this.readiness(h) : 0) & ((i.events & ~EPOLL_SETTINGS) | POLLERR | POLLHUP | (i.events & EPOLLRDHUP));
      if (ready === 0) continue;
      const gen = h ? h.obj.gen : 0;
      if ((i.events & EPOLLET) !== 0 && h && gen === i.seen) continue;
      i.seen = gen;
      out.push({ events: ready, data: i.data });
      if ((i.events & EPOLLONESHOT) !== 0) i.events &= EPOLL_SETTINGS;
    }
    if (out.length > 0) this.changed = true;
    return out;
  }

  /** True when one of `ep`'s interests is a standard stream, whose readiness nothing here hears of. */
  watchesStdio(ep: Epoll): boolean {
    return [...ep.interest.keys()].some((fd) => fd <= 2);
  }
}
