// File system calls. The guest sees no file system except read-only access to files under the
// directories the caller allows (by their host paths); fds 0–2 lead to the caller's Stdio.
import { accessSync, closeSync, fstatSync, lstatSync, openSync, readlinkSync, realpathSync, constants as fsc, type BigIntStats, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { GuestFault } from '../../memory/guest-memory.ts';
import { procFile, textFd } from '../procfs.ts';
import type { SyscallContext, SyscallHandler } from './context.ts';
import { MAX_FILE_OFFSET, pread, readable, readBuffer, stdinRead, transfer, vectored, writable, writeFrom } from './io.ts';
import { EACCES, EBADF, EINVAL, EISDIR, ELOOP, EMFILE, ENAMETOOLONG, ENOENT, ENOTDIR, ENOTTY, ENXIO, ERANGE, EROFS, ESPIPE, errnoOf } from './errno.ts';

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100, AT_NO_AUTOMOUNT = 0x800, AT_EMPTY_PATH = 0x1000, AT_STATX_SYNC_TYPE = 0x6000;
const O_ACCMODE = 3, O_CREAT = 0o100, O_TRUNC = 0o1000, O_APPEND = 0o2000, O_DIRECTORY = 0o200000;
/** A handle that names a file without opening it for I/O (Node does not export the flag). */
const O_PATH = 0o10000000;
/** access(2) modes: the one that asks for writing, and every valid bit (the kernel checks `mode & ~S_IRWXO`). */
const W_OK = 2, S_IRWXO = 0o7;
/** Longest path a call takes, NUL included; longer answers ENAMETOOLONG (the kernel's limit). */
const PATH_MAX = 4096;
/** Most symbolic links one lookup follows before answering ELOOP (the kernel's limit). */
const MAXSYMLINKS = 40;
/** The most fds a guest may have open (its RLIMIT_NOFILE). */
export const MAX_FDS = 256;

/** Where a walk ended: a real path under an allowed directory, or the error (`last`: at the final name). */
type Walked = { real: string; dir: boolean } | { errno: number; last: boolean };

interface OpenFile {
  hostFd: number;
  path: string;
  position: number;
  /** A file tinyedge made (/proc/self/maps): its text, held in a memfd. */
  text?: string;
}

/** Open files as a snapshot records them: reopened by path (or made again from their text), at their position. */
export type FileTableState = ReadonlyArray<{ fd: number; path: string; position: number; text?: string }>;

/** The guest's open files beyond 0–2, and the directories it may read. */
export class FileTable {
  private readonly open = new Map<number, OpenFile>();
  private readonly roots: string[];
  /** Set by any open, close or seek; lets a reset skip restoring an untouched table. */
  private changed = false;

  /**
   * The only places outside the roots a walk may look at: what a lookup of each configured path
   * passes through (links there included, so a path given through a link works as given), and
   * the directories above each root. The operator chose them all, so they tell a guest nothing.
   */
  private readonly approaches = new Set<string>();

  constructor(readonly allowRead: readonly string[]) {
    this.roots = allowRead.map((dir) => realpathSync(dir));
    for (const root of this.roots) {
      for (let up = posix.dirname(root); up !== '/'; up = posix.dirname(up)) this.approaches.add(up);
    }
    for (const dir of allowRead) {
      this.walk(posix.resolve(dir), (outside) => {
        this.approaches.add(outside);
        return true;
      });
    }
  }

  save(): FileTableState {
    this.changed = false;
    return [...this.open].map(([fd, f]) => (f.text === undefined ? { fd, path: f.path, position: f.position } : { fd, path: f.path, position: f.position, text: f.text }));
  }

  /** Puts the table back as `state` recorded it, reopening files; cheap when nothing changed. */
  restore(state: FileTableState): void {
    if (!this.changed && state.length === this.open.size && state.every((s) => this.open.get(s.fd)?.position === s.position)) return;
    this.closeAll();
    for (const s of state) {
      const hostFd = s.text === undefined ? openSync(s.path, fsc.O_RDONLY) : textFd(s.text);
      this.open.set(s.fd, s.text === undefined ? { hostFd, path: s.path, position: s.position } : { hostFd, path: s.path, position: s.position, text: s.text });
    }
    this.changed = false;
  }

  /** Opens `path` (absolute, from `resolve`) read-only if it leads to a regular file under an allowed directory. */
  openReadOnly(path: string, flags: number): number {
    const found = this.walk(path);
    if ((flags & O_ACCMODE) !== 0 || (flags & (O_CREAT | O_TRUNC | O_APPEND)) !== 0) {
      // Read-only file system: what exists inside, or could be created there, refuses writing.
      if ('errno' in found) return found.errno === ENOENT && found.last && (flags & O_CREAT) !== 0 ? -EROFS : -found.errno;
      return found.dir ? -EISDIR : -EROFS;
    }
    if ('errno' in found) return -found.errno;
    if (found.dir) return (flags & O_DIRECTORY) !== 0 ? -EACCES : -EISDIR;
    if ((flags & O_DIRECTORY) !== 0) return -ENOTDIR;
    const fd = this.lowestFreeFd();
    if (fd < 0) return -EMFILE;
    const pinned = this.pin(found.real);
    if (pinned < 0) return pinned;
    try {
      if (!fstatSync(pinned).isFile()) return -EACCES;
      // Reopening the handle through /proc opens the very inode that was checked.
      this.open.set(fd, { hostFd: openSync(`/proc/self/fd/${pinned}`, fsc.O_RDONLY), path: found.real, position: 0 });
      this.changed = true;
    } catch (err) {
      return -errnoOf(err);
    } finally {
      closeSync(pinned);
    }
    return fd;
  }

  /**
   * Opens a file tinyedge made, holding `text`, read-only as /proc files are (a write access is
   * EACCES, O_DIRECTORY ENOTDIR).
   */
  openText(path: string, text: string, flags: number): number {
    if ((flags & O_ACCMODE) !== 0) return -EACCES;
    if ((flags & O_DIRECTORY) !== 0) return -ENOTDIR;
    const fd = this.lowestFreeFd();
    if (fd < 0) return -EMFILE;
    this.open.set(fd, { hostFd: textFd(text), path, position: 0, text });
    this.changed = true;
    return fd;
  }

  /** The metadata of what `path` leads to under an allowed directory, or -errno. */
  stat(path: string): BigIntStats | number {
    const found = this.walk(path);
    if ('errno' in found) return -found.errno;
    const pinned = this.pin(found.real);
    if (pinned < 0) return pinned;
    try {
      return fstatSync(pinned, { bigint: true });
    } catch (err) {
      return -errnoOf(err);
    } finally {
      closeSync(pinned);
    }
  }

  /** access(2): the host's own answer for reading and searching; writing is EROFS everywhere inside. */
  access(path: string, mode: number): number {
    if ((mode & ~S_IRWXO) !== 0) return -EINVAL;
    const found = this.walk(path);
    if ('errno' in found) return -found.errno;
    if ((mode & W_OK) !== 0) return -EROFS;
    const pinned = this.pin(found.real);
    if (pinned < 0) return pinned;
    try {
      accessSync(`/proc/self/fd/${pinned}`, mode);
      return 0;
    } catch (err) {
      return -errnoOf(err);
    } finally {
      closeSync(pinned);
    }
  }

  /** readlink(2): the walk follows every link, so what the guest can name is never a link (EINVAL). */
  readlink(path: string): number {
    const found = this.walk(path);
    return 'errno' in found ? -found.errno : -EINVAL;
  }

  /**
   * Follows `path` (absolute, `..` already applied by `resolve`) one name at a time as the kernel
   * does, symlinks included, to the real host path it names. Inside the allowed directories every
   * answer is the host's own (ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG, EACCES). Outside them a name
   * is looked up only if `mayLook` allows it (by default, one of the `approaches`), and any other
   * step answers EACCES before touching the file system, as does any failure there. So a path
   * that leads outside, by a link at any depth or by an absolute path, answers EACCES whether or
   * not, and as whatever, anything exists there.
   */
  private walk(path: string, mayLook = (outside: string): boolean => this.approaches.has(outside)): Walked {
    const names = path.split('/').reverse();
    let at = '/';
    let dir = true;
    let links = 0;
    for (let name = names.pop(); name !== undefined; name = names.pop()) {
      if (!dir) return { errno: this.allowed(at) ? ENOTDIR : EACCES, last: false };
      if (name === '' || name === '.') continue;
      if (name === '..') {
        at = posix.dirname(at);
        continue;
      }
      const next = at === '/' ? `/${name}` : `${at}/${name}`;
      const inside = this.allowed(at);
      if (!inside && !this.allowed(next) && !mayLook(next)) return { errno: EACCES, last: false };
      let st: Stats;
      let target: string | undefined;
      try {
        st = lstatSync(next);
        if (st.isSymbolicLink()) target = readlinkSync(next);
      } catch (err) {
        if (!inside) return { errno: EACCES, last: false };
        return { errno: errnoOf(err), last: names.every((n) => n === '' || n === '.') };
      }
      if (target !== undefined) {
        if (++links > MAXSYMLINKS) return { errno: ELOOP, last: false };
        // The link's names replace its own; `at` stays its directory, or restarts at / for an absolute target.
        names.push(...target.split('/').reverse());
        if (target.startsWith('/')) at = '/';
        continue;
      }
      at = next;
      dir = st.isDirectory();
    }
    return this.allowed(at) ? { real: at, dir } : { errno: EACCES, last: false };
  }

  /**
   * An O_PATH handle on `real`, a path `walk` returned, or -errno. Walk and open are two steps: a
   * host process renaming or replacing a directory in between could make `real` lead elsewhere,
   * so the handle's own path (its /proc/self/fd link) must still be `real`, with no link followed
   * at its end (O_NOFOLLOW), or the answer is EACCES. Stat, access and open then use the handle,
   * so no later change redirects them. What remains: an answer may describe the tree as it was
   * before such a change (which only the host, never a guest, can make), and a file moved out
   * after the check is still the file that was inside.
   */
  private pin(real: string): number {
    let fd: number;
    try {
      fd = openSync(real, O_PATH | fsc.O_NOFOLLOW);
    } catch {
      return -EACCES;
    }
    let where: string | undefined;
    try {
      where = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      where = undefined;
    }
    if (where === real) return fd;
    closeSync(fd);
    return -EACCES;
  }

  private allowed(real: string): boolean {
    return this.roots.some((root) => real === root || real.startsWith(root.endsWith('/') ? root : `${root}/`));
  }

  get(fd: number): OpenFile | undefined {
    return this.open.get(fd);
  }

  /** The fds another table holds (pipes, eventfds, epoll instances: events.ts), which opens skip. */
  otherFds: ReadonlyMap<number, unknown> = new Map();

  /** The lowest fd above 2 that is free, as the kernel hands out; -1 past MAX_FDS. */
  lowestFreeFd(): number {
    let fd = 3;
    while (this.open.has(fd) || this.otherFds.has(fd)) fd++;
    return fd < MAX_FDS ? fd : -1;
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

  /**
   * Makes a guest path absolute against `dirfd` (AT_FDCWD means "/"), applying `..` to the names
   * before it (as written, not through links); `walk` then follows the links.
   */
  resolve(dirfd: number, path: string): string | number {
    if (path === '') return -ENOENT;
    if (path.startsWith('/') || dirfd === AT_FDCWD) return posix.resolve('/', path);
    const dir = this.open.get(dirfd);
    return dir ? posix.resolve(posix.dirname(dir.path), path) : -EBADF;
  }
}

export function writeStat(ctx: SyscallContext, addr: number, st: BigIntStats | 'stdio'): number {
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

const statPath = (ctx: SyscallContext, path: string, addr: number): number => {
  const st = ctx.files.stat(path);
  return typeof st === 'number' ? st : writeStat(ctx, addr, st);
};

/** A path argument, read as the kernel's getname() does: at most PATH_MAX bytes with its NUL. */
function guestPath(ctx: SyscallContext, addr: number): string | number {
  try {
    return ctx.mem.cString(addr, PATH_MAX);
  } catch (err) {
    if (!(err instanceof GuestFault)) throw err;
    ctx.mem.user(addr, PATH_MAX); // a string that runs off user memory is EFAULT
    return -ENAMETOOLONG;
  }
}

/** open and openat of `path` (absolute): a /proc file tinyedge makes, or a file under an allowed directory. */
function openPath(ctx: SyscallContext, path: string, flags: number): number {
  const text = procFile(path, () => ctx.space.vmas.all());
  return text === undefined ? ctx.files.openReadOnly(path, flags) : ctx.files.openText(path, text, flags);
}

/** Reads the path at `addr`, makes it absolute against `dirfd` and hands it to `then`. */
function atPath(ctx: SyscallContext, dirfd: number, addr: number, then: (path: string) => number): number {
  const name = guestPath(ctx, addr);
  if (typeof name === 'number') return name;
  const path = ctx.files.resolve(dirfd, name);
  return typeof path === 'number' ? path : then(path);
}

export const fileSyscalls: Record<string, SyscallHandler> = {
  // The fd is checked before the buffer, as in the kernel: a bad fd is EBADF whatever the buffer.
  read: (ctx, fd, buf, len) => (readable(ctx, fd) ? stdinRead(ctx, readBuffer(ctx, fd, buf, len)) : -EBADF),
  pread64: pread,
  readv: (ctx, fd, iov, cnt) => (readable(ctx, fd) ? stdinRead(ctx, vectored(ctx, fd, iov, cnt, true)) : -EBADF),
  write: (ctx, fd, buf, len) => (writable(fd) ? transfer(ctx, buf, len, false, (view) => writeFrom(ctx, fd, view)) : -EBADF),
  writev: (ctx, fd, iov, cnt) => (writable(fd) ? vectored(ctx, fd, iov, cnt, false) : -EBADF),
  open: (ctx, path, flags) => atPath(ctx, AT_FDCWD, path, (p) => openPath(ctx, p, flags)),
  openat: (ctx, dirfd, path, flags) => atPath(ctx, dirfd, path, (p) => openPath(ctx, p, flags)),
  close: (ctx, fd) => ctx.files.close(fd),
  lseek: (ctx, fd, offset, whence) => {
    const SEEK_SET = 0, SEEK_CUR = 1, SEEK_END = 2, SEEK_DATA = 3, SEEK_HOLE = 4;
    const f = ctx.files.get(fd);
    if (!f && fd > 2) return -EBADF;
    if (whence > SEEK_HOLE) return -EINVAL;
    if (!f) return -ESPIPE; // stdio is a pipe
    const size = fstatSync(f.hostFd).size;
    let position: number;
    if (whence === SEEK_SET) position = offset;
    else if (whence === SEEK_CUR) position = f.position + offset;
    else if (whence === SEEK_END) position = size + offset;
    else if (offset < 0 || offset >= size) return -ENXIO; // SEEK_DATA and SEEK_HOLE: files have no holes here
    else position = whence === SEEK_DATA ? offset : size;
    if (position < 0 || position > MAX_FILE_OFFSET) return -EINVAL;
    f.position = position;
    return position;
  },
  fstat: (ctx, fd, addr) => {
    if (fd <= 2) return writeStat(ctx, addr, 'stdio');
    const f = ctx.files.get(fd);
    return f ? writeStat(ctx, addr, fstatSync(f.hostFd, { bigint: true })) : -EBADF;
  },
  newfstatat: (ctx, dirfd, path, addr, flags) => {
    const name = guestPath(ctx, path);
    // An empty path with AT_EMPTY_PATH names `dirfd` itself, and the working directory for AT_FDCWD.
    if (name === '' && (flags & AT_EMPTY_PATH) !== 0) return dirfd === AT_FDCWD ? statPath(ctx, '/', addr) : fileSyscalls.fstat!(ctx, dirfd >>> 0, addr, 0, 0, 0, 0);
    if (typeof name === 'number') return name;
    if ((flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE)) !== 0) return -EINVAL;
    const p = ctx.files.resolve(dirfd, name);
    return typeof p === 'number' ? p : statPath(ctx, p, addr);
  },
  // Links are never visible (the walk follows them), so lstat answers as stat does.
  stat: (ctx, path, addr) => atPath(ctx, AT_FDCWD, path, (p) => statPath(ctx, p, addr)),
  lstat: (ctx, path, addr) => atPath(ctx, AT_FDCWD, path, (p) => statPath(ctx, p, addr)),
  access: (ctx, path, mode) => atPath(ctx, AT_FDCWD, path, (p) => ctx.files.access(p, mode)),
  readlink: (ctx, path, _buf, size) => (size <= 0 ? -EINVAL : atPath(ctx, AT_FDCWD, path, (p) => ctx.files.readlink(p))),
  readlinkat: (ctx, dirfd, path, _buf, size) => (size <= 0 ? -EINVAL : atPath(ctx, dirfd, path, (p) => ctx.files.readlink(p))),
  getcwd: (ctx, buf, size) => {
    if (size < 2) return -ERANGE;
    ctx.mem.writable(buf, 2).set([0x2f, 0]);
    return 2;
  },
  ioctl: (ctx, fd) => (fd <= 2 || ctx.files.get(fd) ? -ENOTTY : -EBADF),
  fcntl: (ctx, fd, cmd) => {
    if (fd > 2 && !ctx.files.get(fd)) return -EBADF;
    const F_GETFD = 1, F_SETFD = 2, F_GETFL = 3, F_SETFL = 4;
    if (cmd === F_GETFD || cmd === F_SETFD || cmd === F_SETFL) return 0;
    if (cmd === F_GETFL) return writable(fd) ? 1 : 0; // O_WRONLY for stdout/stderr
    return -EINVAL;
  },
};
