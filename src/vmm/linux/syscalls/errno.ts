// Linux errno values returned to the guest as -errno.
export const EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7, EBADF = 9, EAGAIN = 11, ENOMEM = 12;
export const EACCES = 13, EFAULT = 14, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, EMFILE = 24;
export const ENOTTY = 25, ENOSPC = 28, ESPIPE = 29, EROFS = 30, EPIPE = 32, ERANGE = 34, ENAMETOOLONG = 36, ENOSYS = 38;
export const ELOOP = 40, EOVERFLOW = 75, EMSGSIZE = 90, EOPNOTSUPP = 95, ETIMEDOUT = 110;

/** Maps a Node.js system error code (from fs) to a Linux errno. */
export function errnoOf(err: unknown): number {
  const code = (err as { errno?: number }).errno;
  // Node's errno is the negated host errno; host and guest are both Linux x86-64.
  return typeof code === 'number' && code < 0 ? -code : EIO;
}

/** The errno of a failed node:fs call (an Error naming its system call), or undefined for anything else. */
export function hostFsErrno(err: unknown): number | undefined {
  if (!(err instanceof Error)) return undefined;
  const { syscall, errno } = err as NodeJS.ErrnoException;
  return typeof syscall === 'string' && typeof errno === 'number' && errno < 0 ? -errno : undefined;
}
