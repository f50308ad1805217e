// Linux errno values returned to the guest as -errno.
export const EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, EBADF = 9, EAGAIN = 11, ENOMEM = 12;
export const EACCES = 13, EFAULT = 14, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, EMFILE = 24;
export const ENOTTY = 25, ESPIPE = 29, EROFS = 30, EPIPE = 32, ERANGE = 34, ENAMETOOLONG = 36, ENOSYS = 38;
export const ELOOP = 40, EOVERFLOW = 75, EDEADLK = 35, ETIMEDOUT = 110;

/** Maps a Node.js system error code (from fs) to a Linux errno. */
export function errnoOf(err: unknown): number {
  const code = (err as { errno?: number }).errno;
  // Node's errno is the negated host errno; host and guest are both Linux x86-64.
  return typeof code === 'number' && code < 0 ? -code : EIO;
}
