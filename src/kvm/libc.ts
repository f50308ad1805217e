// The few libc functions the KVM binding and the VMM need, bound through koffi. Calls are
// synchronous on purpose: vCPU ioctls must come from the thread that created the vCPU.
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

export const PROT_NONE = 0;
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
const strerrorRaw = libc.func('const char *strerror(int errnum)') as (errnum: number) => string;
export const gettid = libc.func('int gettid()') as () => number;

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

export function mmap(length: number, prot: number, flags: number, fd = -1, offset = 0): Mapping {
  const pointer: unknown = mmapRaw(null, length, prot, flags, fd, offset);
  const address = koffi.address(pointer);
  if (address === 0xffffffffffffffffn) throw new SysError('mmap', koffi.errno());
  return { address, length, buffer: koffi.view(pointer, length) };
}

export const MAP_FIXED = 0x10;
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
