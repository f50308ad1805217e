// Address-space system calls: brk, mmap, munmap, mprotect and friends, on top of the Arena.
// Everything is backed by guest RAM that is already mapped; "allocating" is bookkeeping, and
// freed pages are zeroed so the next mapping starts clean as Linux promises.
import { readSync } from 'node:fs';
import { PAGE_SIZE, pageAlignUp } from '../layout.ts';
import { mapPages, USER_RW } from '../paging.ts';
import type { SyscallContext, SyscallHandler } from './context.ts';
import { EBADF, EEXIST, EINVAL, ENOMEM } from './errno.ts';

const PROT_EXEC = 4;
const MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_FIXED_NOREPLACE = 0x10_0000;

function release(ctx: SyscallContext, addr: number, len: number): void {
  ctx.arena.release(addr, len);
  ctx.mem.zeroPages(addr, len);
}

function mmap(ctx: SyscallContext, addr: number, length: number, prot: number, flags: number, fd: number, offset: number): number {
  if (length === 0 || addr % PAGE_SIZE !== 0 || offset % PAGE_SIZE !== 0) return -EINVAL;
  if (length > ctx.layout.memorySize) {
    ctx.noteOutOfMemory();
    return -ENOMEM;
  }
  const len = pageAlignUp(length);
  const file = (flags & MAP_ANONYMOUS) === 0 ? ctx.files.get(fd | 0) : undefined;
  if ((flags & MAP_ANONYMOUS) === 0 && !file) return -EBADF;
  let at: number;
  if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0) {
    if (!ctx.arena.contains(addr, len)) return -ENOMEM;
    if ((flags & MAP_FIXED_NOREPLACE) !== 0 && !ctx.arena.isFree(addr, len)) return -EEXIST;
    if (!ctx.arena.isFree(addr, len)) release(ctx, addr, len);
    ctx.arena.claim(addr, len);
    at = addr;
  } else {
    at = ctx.arena.allocate(len);
    if (at < 0) {
      ctx.noteOutOfMemory();
      return -ENOMEM;
    }
  }
  mapPages(ctx.mem, ctx.layout, at, len, (prot & PROT_EXEC) !== 0 ? { user: true, write: true, exec: true } : USER_RW);
  if (file) {
    readSync(file.hostFd, ctx.mem.bytes, at, length, offset);
    ctx.mem.markDirty(at, length);
  }
  return at;
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
    if (addr % PAGE_SIZE !== 0 || length === 0) return -EINVAL;
    const len = pageAlignUp(length);
    if (ctx.arena.contains(addr, len)) release(ctx, addr, len);
    return 0;
  },
  // Permissions are fixed at load time (program segments) and mmap time; see docs/vmm.md.
  mprotect: (ctx, addr, length) => (addr % PAGE_SIZE !== 0 ? -EINVAL : (ctx.mem.check(addr, pageAlignUp(length)), 0)),
  // glibc and musl fall back to allocate-copy-free when mremap fails.
  mremap: () => -ENOMEM,
  madvise: () => 0,
};
