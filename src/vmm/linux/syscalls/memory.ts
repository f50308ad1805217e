// Address-space system calls: brk, mmap, munmap, mprotect and friends, on top of the Arena.
// Everything is backed by guest RAM that is already mapped; "allocating" is bookkeeping, and
// freed pages are zeroed so the next mapping starts clean as Linux promises. Checks come in the
// kernel's order, so a call with several bad arguments answers the kernel's errno.
import { fstatSync, readSync } from 'node:fs';
import { PAGE_SIZE, pageAlignUp } from '../../x86/layout.ts';
import { mapPages, USER_RW } from '../../x86/paging.ts';
import type { SyscallContext, SyscallHandler } from './context.ts';
import { EBADF, EEXIST, EINVAL, ENOMEM, EOVERFLOW, errnoOf } from './errno.ts';

/** The end of a process's user address space under 4-level paging: no user address reaches it. */
export const TASK_SIZE_MAX = 0x7fff_ffff_f000;
/** One past the largest file offset a mapping may reach (the kernel's MAX_LFS_FILESIZE + 1). */
const MAX_LFS_FILESIZE_END = 2 ** 63;
/** 2^64: an end at or past it wrapped around in the kernel's unsigned arithmetic. */
const ADDRESS_END = 2 ** 64;

const PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4, PROT_SEM = 8;
const PROT_GROWSDOWN = 0x0100_0000, PROT_GROWSUP = 0x0200_0000;
const PROT_GROWS = PROT_GROWSDOWN | PROT_GROWSUP;
const MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_FIXED_NOREPLACE = 0x10_0000;

function release(ctx: SyscallContext, addr: number, len: number): void {
  ctx.arena.release(addr, len);
  ctx.mem.zeroPages(addr, len);
}

/**
 * Copies what the file holds of [offset, offset + length) to guest memory at `at`; the rest of the
 * (zeroed) mapping stays zero, as past the end of a file. Returns 0 or -errno.
 */
function copyFromFile(ctx: SyscallContext, hostFd: number, at: number, length: number, offset: number): number {
  try {
    const size = fstatSync(hostFd).size;
    const n = offset < size ? Math.min(length, size - offset) : 0;
    if (n > 0) {
      readSync(hostFd, ctx.mem.bytes, at, n, offset);
      ctx.mem.markDirty(at, n);
    }
    return 0;
  } catch (err) {
    return -errnoOf(err);
  }
}

function mmap(ctx: SyscallContext, addr: number, length: number, prot: number, flags: number, fd: number, offset: number): number {
  if (offset % PAGE_SIZE !== 0) return -EINVAL;
  const file = (flags & MAP_ANONYMOUS) === 0 ? ctx.files.get(fd) : undefined;
  if ((flags & MAP_ANONYMOUS) === 0 && !file) return -EBADF;
  if (length === 0) return -EINVAL;
  if (length > ctx.layout.memorySize) {
    ctx.noteOutOfMemory();
    return -ENOMEM;
  }
  const len = pageAlignUp(length);
  if (file && offset + len >= MAX_LFS_FILESIZE_END) return -EOVERFLOW;
  let at: number;
  if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0) {
    if (addr > TASK_SIZE_MAX - len) return -ENOMEM;
    if (addr % PAGE_SIZE !== 0) return -EINVAL;
    if (!ctx.arena.contains(addr, len)) return -ENOMEM;
    if ((flags & MAP_FIXED_NOREPLACE) !== 0 && !ctx.arena.isFree(addr, len)) return -EEXIST;
    if (!ctx.arena.isFree(addr, len)) release(ctx, addr, len);
    ctx.arena.claim(addr, len);
    at = addr;
  } else {
    // Without MAP_FIXED the address is only a hint, which this arena does not follow.
    at = ctx.arena.allocate(len);
    if (at < 0) {
      ctx.noteOutOfMemory();
      return -ENOMEM;
    }
  }
  mapPages(ctx.mem, ctx.layout, at, len, (prot & PROT_EXEC) !== 0 ? { user: true, write: true, exec: true } : USER_RW);
  if (file) {
    const copied = copyFromFile(ctx, file.hostFd, at, length, offset);
    if (copied < 0) {
      release(ctx, at, len);
      return copied;
    }
  }
  return at;
}

// Permissions are fixed at load time (program segments) and mmap time; see docs/vmm.md. The
// arguments are still checked, and an unmapped range is ENOMEM, as in the kernel.
function mprotect(ctx: SyscallContext, addr: number, length: number, prot: number): number {
  const bits = prot >>> 0; // a bit above these 32 fails the check of valid bits below
  if ((bits & PROT_GROWS) === PROT_GROWS) return -EINVAL;
  if (addr % PAGE_SIZE !== 0) return -EINVAL;
  if (length === 0) return 0;
  const len = pageAlignUp(length);
  if (addr + len >= ADDRESS_END) return -ENOMEM;
  if (prot >= 2 ** 32 || (bits & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM | PROT_GROWS)) !== 0) return -EINVAL;
  return addr >= ctx.mem.userStart && addr + len <= ctx.mem.userEnd ? 0 : -ENOMEM;
}

// Advice is only advice and changes nothing; the range is still checked as the kernel does.
function madvise(ctx: SyscallContext, addr: number, length: number): number {
  if (addr % PAGE_SIZE !== 0) return -EINVAL;
  const len = pageAlignUp(length);
  if (addr + len >= ADDRESS_END) return -EINVAL;
  if (len === 0) return 0;
  return addr >= ctx.mem.userStart && addr + len <= ctx.mem.userEnd ? 0 : -ENOMEM;
}

export const memorySyscalls: Record<string, SyscallHandler> = {
  brk: (ctx, requested) => {
    const r = ctx.arena.setBrk(requested);
    if (r.freed) ctx.mem.zeroPages(r.freed.start, r.freed.end - r.freed.start);
    if (requested > r.brk) ctx.noteOutOfMemory();
    return r.brk;
  },
  mmap,
  munmap: (ctx, addr, length) => {
    if (addr % PAGE_SIZE !== 0 || addr > TASK_SIZE_MAX || length > TASK_SIZE_MAX - addr) return -EINVAL;
    const len = pageAlignUp(length);
    if (len === 0) return -EINVAL;
    if (ctx.arena.contains(addr, len)) release(ctx, addr, len);
    return 0;
  },
  mprotect,
  // glibc and musl fall back to allocate-copy-free when mremap fails.
  mremap: () => -ENOMEM,
  madvise,
};
