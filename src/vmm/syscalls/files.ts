// File system calls. The guest sees no file system except read-only access to files under the
// directories the caller allows (by their host paths); fds 0–2 lead to the caller's Stdio.
import { closeSync, fstatSync, openSync, readSync, realpathSync, statSync, constants as fsc, type BigIntStats } from 'node:fs';
import { posix } from 'node:path';
import { GuestFault } from '../memory.ts';
import type { SyscallContext, SyscallHandler } from './context.ts';
import { EACCES, EBADF, EFAULT, EINVAL, EISDIR, EMFILE, ENOENT, ENOTDIR, ENOTTY, EROFS, ESPIPE, errnoOf } from './errno.ts';

const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
const O_ACCMODE = 3, O_CREAT = 0o100, O_TRUNC = 0o1000, O_APPEND = 0o2000, O_DIRECTORY = 0o200000;
const MAX_FDS = 256;
const MAX_IOV = 1024;

interface OpenFile {
  hostFd: number;
  path: string;
  position: number;
}

/** Open files as a snapshot records them: reopened by path, at their position. */
export type FileTableState = ReadonlyArray<{ fd: number; path: string; position: number }>;

/** The guest's open files beyond 0–2, and the directories it may read. */
export class FileTable {
  private readonly open = new Map<number, OpenFile>();
  private readonly roots: string[];
  /** Set by any open, close or seek; lets a reset skip restoring an untouched table. */
  private changed = false;

  constructor(readonly allowRead: readonly string[]) {
    this.roots = allowRead.map((dir) => realpathSync(dir));
  }

  save(): FileTableState {
    this.changed = false;
    return [...this.open].map(([fd, f]) => ({ fd, path: f.path, position: f.position }));
  }

  /** Puts the table back as `state` recorded it, reopening files; cheap when nothing changed. */
  restore(state: FileTableState): void {
    if (!this.changed && state.length === this.open.size && state.every((s) => this.open.get(s.fd)?.position === s.position)) return;
    this.closeAll();
    for (const s of state) this.open.set(s.fd, { hostFd: openSync(s.path, fsc.O_RDONLY), path: s.path, position: s.position });
    this.changed = false;
  }

  /** Opens `path` (already absolute) read-only if it lies under an allowed directory. */
  openReadOnly(path: string, flags: number): number {
    if ((flags & O_ACCMODE) !== 0 || (flags & (O_CREAT | O_TRUNC | O_APPEND)) !== 0) {
      return this.allowed(path) ? -EROFS : -EACCES;
    }
    let real: string;
    try {
      real = realpathSync(path);
    } catch (err) {
      return this.allowedLexically(path) ? -errnoOf(err) : -EACCES;
    }
    if (!this.allowed(real)) return -EACCES;
    const st = statSync(real);
    if (st.isDirectory()) return (flags & O_DIRECTORY) !== 0 ? -EACCES : -EISDIR;
    if (!st.isFile()) return -EACCES;
    if ((flags & O_DIRECTORY) !== 0) return -ENOTDIR;
    let fd = 3;
    while (this.open.has(fd)) fd++;
    if (fd >= MAX_FDS) return -EMFILE;
    try {
      this.open.set(fd, { hostFd: openSync(real, fsc.O_RDONLY), path: real, position: 0 });
      this.changed = true;
    } catch (err) {
      return -errnoOf(err);
    }
    return fd;
  }

  private allowed(real: string): boolean {
    return this.roots.some((root) => real === root || real.startsWith(root.endsWith('/') ? root : `${root}/`));
  }

  private allowedLexically(path: string): boolean {
    return this.roots.some((root) => path.startsWith(`${root}/`));
  }

  get(fd: number): OpenFile | undefined {
    return this.open.get(fd);
  }

  close(fd: number): number {
    const f = this.open.get(fd);
    if (!f) return fd >= 0 && fd <= 2 ? 0 : -EBADF;
    this.open.delete(fd);
    this.changed = true;
    closeSync(f.hostFd);
    return 0;
  }

  closeAll(): void {
    for (const fd of [...this.open.keys()]) this.close(fd);
  }

  /** Resolves a guest path against `dirfd` (AT_FDCWD means "/"). */
  resolve(dirfd: number, path: string): string | number {
    if (path.startsWith('/') || dirfd === AT_FDCWD) return posix.resolve('/', path);
    const dir = this.open.get(dirfd);
    return dir ? posix.resolve(posix.dirname(dir.path), path) : -EBADF;
  }
}

/** Signed 32-bit view of a register, for fd and dirfd arguments. */
const int = (x: number): number => x | 0;

function writeStat(ctx: SyscallContext, addr: number, st: BigIntStats | 'stdio'): number {
  const b = ctx.mem.writable(addr, 144);
  const v = new DataView(b.buffer, b.byteOffset, 144);
  b.fill(0);
  if (st === 'stdio') {
    v.setUint32(24, 0o10600, true); // S_IFIFO | rw-------
    v.setBigUint64(16, 1n, true);
    v.setBigInt64(56, 4096n, true);
    return 0;
  }
  v.setBigUint64(0, st.dev, true);
  v.setBigUint64(8, st.ino, true);
  v.setBigUint64(16, st.nlink, true);
  v.setUint32(24, Number(st.mode & 0o170777n) & ~0o222, true); // read-only to the guest
  v.setBigInt64(48, st.size, true);
  v.setBigInt64(56, st.blksize, true);
  v.setBigInt64(64, st.blocks, true);
  const times = [st.atimeNs, st.mtimeNs, st.ctimeNs];
  times.forEach((ns, i) => {
    v.setBigInt64(72 + i * 16, ns / 1_000_000_000n, true);
    v.setBigInt64(80 + i * 16, ns % 1_000_000_000n, true);
  });
  return 0;
}

function readInto(ctx: SyscallContext, fd: number, into: Uint8Array, position?: number): number {
  if (fd === 0) return ctx.stdio.read(into, ctx.remainingMs());
  const f = ctx.files.get(fd);
  if (!f) return fd === 1 || fd === 2 ? -EBADF : -EBADF;
  try {
    const n = readSync(f.hostFd, into, 0, into.length, position ?? f.position);
    if (position === undefined) f.position += n;
    return n;
  } catch (err) {
    return -errnoOf(err);
  }
}

function writeFrom(ctx: SyscallContext, fd: number, data: Uint8Array): number {
  if (fd === 1 || fd === 2) return ctx.stdio.write(fd, data);
  return -EBADF;
}

/** Walks an iovec array, calling `each` per buffer until it returns less than asked or an error. */
function vectored(ctx: SyscallContext, iov: number, count: number, write: boolean, each: (buf: Uint8Array) => number): number {
  if (count < 0 || count > MAX_IOV) return -EINVAL;
  let total = 0;
  for (let i = 0; i < count; i++) {
    const base = ctx.mem.u64(iov + i * 16);
    const len = ctx.mem.u64(iov + i * 16 + 8);
    if (len === 0) continue;
    const n = each(write ? ctx.mem.writable(base, len) : ctx.mem.user(base, len));
    if (n < 0) return total > 0 ? total : n;
    total += n;
    if (n < len) break;
  }
  return total;
}

const statPath = (ctx: SyscallContext, path: string, addr: number): number => {
  const fd = ctx.files.openReadOnly(path, 0);
  if (fd < 0) return fd === -EISDIR ? statDirectory(ctx, path, addr) : fd;
  const r = writeStat(ctx, addr, fstatSync(ctx.files.get(fd)!.hostFd, { bigint: true }));
  ctx.files.close(fd);
  return r;
};

function statDirectory(ctx: SyscallContext, path: string, addr: number): number {
  try {
    return writeStat(ctx, addr, statSync(path, { bigint: true }));
  } catch (err) {
    return -errnoOf(err);
  }
}

export const fileSyscalls: Record<string, SyscallHandler> = {
  read: (ctx, fd, buf, len) => readInto(ctx, int(fd), ctx.mem.writable(buf, len)),
  pread64: (ctx, fd, buf, len, off) => (int(fd) <= 2 ? -ESPIPE : readInto(ctx, int(fd), ctx.mem.writable(buf, len), off)),
  readv: (ctx, fd, iov, cnt) => vectored(ctx, iov, int(cnt), true, (b) => readInto(ctx, int(fd), b)),
  write: (ctx, fd, buf, len) => writeFrom(ctx, int(fd), ctx.mem.user(buf, len)),
  writev: (ctx, fd, iov, cnt) => vectored(ctx, iov, int(cnt), false, (b) => writeFrom(ctx, int(fd), b)),
  open: (ctx, path, flags) => ctx.files.openReadOnly(posix.resolve('/', ctx.mem.cString(path)), flags),
  openat: (ctx, dirfd, path, flags) => {
    const p = ctx.files.resolve(int(dirfd), ctx.mem.cString(path));
    return typeof p === 'number' ? p : ctx.files.openReadOnly(p, flags);
  },
  close: (ctx, fd) => ctx.files.close(int(fd)),
  lseek: (ctx, fd, offset, whence) => {
    const f = ctx.files.get(int(fd));
    if (!f) return int(fd) <= 2 ? -ESPIPE : -EBADF;
    const off = offset > Number.MAX_SAFE_INTEGER ? offset - 2 ** 64 : offset;
    const size = Number(fstatSync(f.hostFd).size);
    const base = whence === 0 ? 0 : whence === 1 ? f.position : whence === 2 ? size : NaN;
    if (Number.isNaN(base) || base + off < 0) return -EINVAL;
    f.position = base + off;
    return f.position;
  },
  fstat: (ctx, fd, addr) => {
    if (int(fd) >= 0 && int(fd) <= 2) return writeStat(ctx, addr, 'stdio');
    const f = ctx.files.get(int(fd));
    return f ? writeStat(ctx, addr, fstatSync(f.hostFd, { bigint: true })) : -EBADF;
  },
  newfstatat: (ctx, dirfd, path, addr, flags) => {
    const name = ctx.mem.cString(path);
    if (name === '' && (flags & AT_EMPTY_PATH) !== 0) return fileSyscalls.fstat!(ctx, dirfd, addr, 0, 0, 0, 0);
    const p = ctx.files.resolve(int(dirfd), name);
    return typeof p === 'number' ? p : statPath(ctx, p, addr);
  },
  stat: (ctx, path, addr) => statPath(ctx, posix.resolve('/', ctx.mem.cString(path)), addr),
  lstat: (ctx, path, addr) => statPath(ctx, posix.resolve('/', ctx.mem.cString(path)), addr),
  access: (ctx, path) => {
    const fd = ctx.files.openReadOnly(posix.resolve('/', ctx.mem.cString(path)), 0);
    return fd < 0 ? fd : ctx.files.close(fd);
  },
  readlink: (ctx, path) => (ctx.mem.cString(path), -ENOENT),
  readlinkat: (ctx, _dirfd, path) => (ctx.mem.cString(path), -ENOENT),
  getcwd: (ctx, buf, size) => {
    if (size < 2) return -34; // ERANGE
    ctx.mem.writable(buf, 2).set([0x2f, 0]);
    return 2;
  },
  ioctl: (ctx, fd) => (int(fd) <= 2 || ctx.files.get(int(fd)) ? -ENOTTY : -EBADF),
  fcntl: (ctx, fd, cmd) => {
    if (!(int(fd) <= 2 && int(fd) >= 0) && !ctx.files.get(int(fd))) return -EBADF;
    const F_GETFD = 1, F_SETFD = 2, F_GETFL = 3, F_SETFL = 4;
    if (cmd === F_GETFD || cmd === F_SETFD || cmd === F_SETFL) return 0;
    if (cmd === F_GETFL) return int(fd) === 1 || int(fd) === 2 ? 1 : 0; // O_WRONLY for stdout/stderr
    return -EINVAL;
  },
};

/** A guest pointer that failed the bounds check becomes -EFAULT, never a host exception. */
export function faultToErrno(err: unknown): number {
  if (err instanceof GuestFault) return -EFAULT;
  throw err;
}
