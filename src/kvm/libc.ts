// Every libc function tinyedge calls, bound through koffi: the one place that loads libc (the
// lowest layer, so the VMM's timer, poll, snapshot and clock code import from here). Calls are
// synchronous on purpose: a vCPU's ioctls come from the thread that owns its VM (the KVM API
// advises the thread that created it; docs/server.md measures what a change of thread costs), and
// the timer must be created on the thread it signals.
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MADV_DONTNEED = 4;
/** Linux 5.14+: fault the range in, writable, in one call. */
export const MADV_POPULATE_WRITE = 23;
export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;

export const open = libc.func('int open(const char *path, int flags)') as (path: string, flags: number) => number;
export const close = libc.func('int close(int fd)') as (fd: number) => number;
/** ioctl with a pointer argument (a Buffer, a TypedArray or null). */
export const ioctlPtr = libc.func('int ioctl(int fd, unsigned long request, void *arg)') as
  (fd: number, request: number, arg: Uint8Array | ArrayBuffer | null) => number;
/** ioctl with an integer argument. */
export const ioctlInt = libc.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']) as
  (fd: number, request: number, arg: number) => number;
const mmapRaw = libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)');
// Addresses as integers: the callers hold them as bigint, not as koffi pointers.
const munmapRaw = libc.func('munmap', 'int', ['uint64_t', 'size_t']) as (addr: bigint, length: number) => number;
const madviseRaw = libc.func('madvise', 'int', ['uint64_t', 'size_t', 'int']) as
  (addr: bigint, length: number, advice: number) => number;
const mprotectRaw = libc.func('mprotect', 'int', ['uint64_t', 'size_t', 'int']) as
  (addr: bigint, length: number, prot: number) => number;
const strerrorRaw = libc.func('const char *strerror(int errnum)') as (errnum: number) => string;
export const gettid = libc.func('int gettid()') as () => number;

// Timers that signal one thread (run/timer.ts); a timer id is a `timer_t`, a pointer-sized integer.
export const timerCreate = libc.func('int timer_create(int clockid, void *sevp, _Out_ uint8_t *timerid)') as
  (clock: number, sevp: Buffer, out: Buffer) => number;
export const timerSettime = libc.func('int timer_settime(uint64_t timerid, int flags, void *value, void *old)') as
  (id: bigint, flags: number, value: Buffer, old: null) => number;
export const timerDelete = libc.func('int timer_delete(uint64_t timerid)') as (id: bigint) => number;

/** poll(2) over an array of `struct pollfd` (8 bytes each), which the kernel updates in place. */
export const poll = libc.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)') as
  (fds: Uint8Array, nfds: number, timeout: number) => number;

/** clock_gettime(2) into a 16-byte `struct timespec`. */
export const clockGettime = libc.func('int clock_gettime(int clk, _Out_ uint8_t *ts)') as (clk: number, ts: Uint8Array) => number;

// Snapshot memory: a memfd, sized, and shared with other threads through a duplicate descriptor.
export const MFD_CLOEXEC = 1;
export const F_DUPFD_CLOEXEC = 1030;
export const memfdCreate = libc.func('int memfd_create(const char *name, unsigned int flags)') as (name: string, flags: number) => number;
export const ftruncate = libc.func('int ftruncate(int fd, long length)') as (fd: number, length: number) => number;
const fcntlRaw = libc.func('int fcntl(int fd, int cmd, ...)') as (fd: number, cmd: number, ...args: unknown[]) => number;
/** fcntl with one `int` argument (fcntl is variadic: koffi takes each extra argument's type). */
export function fcntlInt(fd: number, cmd: number, arg: number): number {
  return fcntlRaw(fd, cmd, 'int', arg);
}

// Listening sockets for the HTTP shards (http/listen-socket.ts): Node 20's `listen` has no
// SO_REUSEPORT, so the socket is made here and handed to `server.listen({ fd })`.
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_REUSEPORT = 15;
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;
export const socket = libc.func('int socket(int domain, int type, int protocol)') as
  (domain: number, type: number, protocol: number) => number;
/** setsockopt(2) with the option's value in a buffer (an `int` option: 4 bytes). */
export const setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t length)') as
  (fd: number, level: number, name: number, value: Uint8Array, length: number) => number;
/** bind(2) to a `struct sockaddr_in` or `sockaddr_in6` built in a buffer. */
export const bind = libc.func('int bind(int fd, const void *addr, uint32_t length)') as
  (fd: number, addr: Uint8Array, length: number) => number;
export const listen = libc.func('int listen(int fd, int backlog)') as (fd: number, backlog: number) => number;
/** getsockname(2): fills `addr` and writes its length to the one `socklen_t` in `length`. */
export const getsockname = libc.func('int getsockname(int fd, void *addr, void *length)') as
  (fd: number, addr: Uint8Array, length: Uint32Array) => number;
/** inet_pton(3): 1 when `text` is an address of family `af` (its bytes in `out`), 0 when not. */
export const inetPton = libc.func('int inet_pton(int af, const char *text, void *out)') as
  (af: number, text: string, out: Uint8Array) => number;

/** A host memory mapping: its address (for the kernel) and an ArrayBuffer aliasing it (for us). */
export interface Mapping {
  readonly address: bigint;
  readonly length: number;
  readonly buffer: ArrayBuffer;
}

export class SysError extends Error {
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${strerrorRaw(errno)} (errno ${errno})`);
    this.name = 'SysError';
  }
}

export function lastErrno(): number {
  return koffi.errno();
}

/** Throws a SysError naming `call` when a libc call returned -1. */
export function check(call: string, result: number): number {
  if (result < 0) throw new SysError(call, koffi.errno());
  return result;
}

const EINTR = 4;

/**
 * `check` for a call a signal may interrupt before it did anything (KVM_CREATE_VM and
 * KVM_CREATE_VCPU answer EINTR when one lands, e.g. the guest-deadline timer's SIGURG that stays
 * armed between runs): tries again rather than failing the boot.
 */
export function checkRetryingEintr(call: string, attempt: () => number): number {
  for (;;) {
    const result = attempt();
    if (result >= 0) return result;
    const errno = koffi.errno();
    if (errno !== EINTR) throw new SysError(call, errno);
  }
}

export function mmap(length: number, prot: number, flags: number, fd = -1, offset = 0): Mapping {
  const pointer: unknown = mmapRaw(null, length, prot, flags, fd, offset);
  const address = koffi.address(pointer);
  if (address === 0xffffffffffffffffn) throw new SysError('mmap', koffi.errno());
  return { address, length, buffer: koffi.view(pointer, length) };
}

const MAP_FIXED = 0x10;
const mmapAt = libc.func('mmap', 'uint64_t', ['uint64_t', 'size_t', 'int', 'int', 'int', 'long']) as
  (addr: bigint, length: number, prot: number, flags: number, fd: number, offset: number) => bigint | number;

/**
 * Replaces the pages of `mapping` in place (MAP_FIXED): same addresses, so the ArrayBuffer that
 * aliases them stays valid. Used to give a pooled guest-memory mapping new contents.
 */
export function remap(mapping: Mapping, prot: number, flags: number, fd = -1, offset = 0): void {
  const at = mmapAt(mapping.address, mapping.length, prot, flags | MAP_FIXED, fd, offset);
  // koffi returns a 64-bit integer as a number when it fits in 53 bits, as a bigint otherwise.
  if (BigInt(at) !== mapping.address) throw new SysError('mmap(MAP_FIXED)', koffi.errno());
}

export function munmap(mapping: Mapping): void {
  check('munmap', munmapRaw(mapping.address, mapping.length));
}

/** madvise on a page-aligned byte range inside `mapping`. */
export function madvise(mapping: Mapping, offset: number, length: number, advice: number): void {
  check('madvise', madviseRaw(mapping.address + BigInt(offset), length, advice));
}

/** mprotect on a page-aligned byte range inside `mapping`. */
export function mprotect(mapping: Mapping, offset: number, length: number, prot: number): void {
  check('mprotect', mprotectRaw(mapping.address + BigInt(offset), length, prot));
}
