// Address-space system calls: brk, mmap, munmap, mprotect, madvise and mremap, on top of the
// AddressSpace (memory/address-space.ts). Where a mapping goes: small accessible ones inside
// guest RAM, backed at once; reservations (PROT_NONE), large ones and hinted ones above it, backed
// page by page when touched; MAP_FIXED and hints where asked. Freed pages are zeroed, as Linux
// promises for the next mapping. Checks come in the kernel's order, so a call with several bad
// arguments answers the kernel's errno.
import { fstatSync, readSync } from 'node:fs';
import { PROT_EXEC, protFlags } from '../../memory/address-space.ts';
import { TASK_SIZE_MAX } from '../../memory/guest-memory.ts';
import { MAX_MAP_COUNT, type Vma, type VmaKind } from '../../memory/vmas.ts';
import { PAGE_SIZE, pageAlignUp } from '../../x86/layout.ts';
import type { SyscallContext, SyscallHandler } from './context.ts';
import { EACCES, EBADF, EEXIST, EINVAL, ENOMEM, EOVERFLOW, errnoOf } from './errno.ts';

export { TASK_SIZE_MAX };

/** One past the largest file offset a mapping may reach (the kernel's MAX_LFS_FILESIZE + 1). */
const MAX_LFS_FILESIZE_END = 2 ** 63;
/** 2^64: an end at or past it wrapped around in the kernel's unsigned arithmetic. */
const ADDRESS_END = 2 ** 64;
/** Where mappings above guest RAM are placed, top-down, when no address is asked for (below Linux's usual mmap base). */
const MMAP_TOP = 0x7f00_0000_0000;
/** Accessible mappings up to this size live inside guest RAM and are backed when made. */
const EAGER_MAX = 2 * 1024 * 1024;

const PROT_READ = 1, PROT_WRITE = 2, PROT_SEM = 8;
const PROT_GROWSDOWN = 0x0100_0000, PROT_GROWSUP = 0x0200_0000;
const PROT_GROWS = PROT_GROWSDOWN | PROT_GROWSUP;
const MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_NORESERVE = 0x4000, MAP_FIXED_NOREPLACE = 0x10_0000;
const MADV_DONTNEED = 4;

/**
 * Copies what the file holds of [offset, offset + length) into the mapping at `at`; the rest of
 * the (zeroed) mapping stays zero, as past the end of a file. Returns 0 or -errno.
 */
function copyFromFile(ctx: SyscallContext, hostFd: number, at: number, length: number, offset: number): number {
  try {
    const size = fstatSync(hostFd).size;
    const n = offset < size ? Math.min(length, size - offset) : 0;
    let done = 0;
    // The host fills the mapping's frames, whatever the mapping's protection.
    for (const part of n > 0 ? ctx.space.frames(at, n) : []) done += readSync(hostFd, part, 0, part.length, offset + done);
    return 0;
  } catch (err) {
    return -errnoOf(err);
  }
}

/**
 * True when [start, end) inside guest RAM could become one identity mapping: each page is either
 * mapped already (MAP_FIXED replaces it) or a free frame of the arena.
 */
function identityRoom(ctx: SyscallContext, start: number, end: number): boolean {
  if (!ctx.arena.contains(start, end - start)) return false;
  let at = start;
  for (const piece of ctx.space.vmas.overlapping(start, end)) {
    if (piece.start > at && !ctx.arena.isFree(at, piece.start - at)) return false;
    if (piece.kind !== 'identity') return false;
    at = piece.end;
  }
  return at >= end || ctx.arena.isFree(at, end - at);
}

/**
 * Linux's heuristic overcommit: a private writable mapping is charged for, and one larger than
 * all of memory is refused (MAP_NORESERVE is not charged). Reservations are free.
 */
function overcommits(ctx: SyscallContext, prot: number, flags: number, len: number): boolean {
  return (prot & PROT_WRITE) !== 0 && (flags & MAP_NORESERVE) === 0 && len > ctx.layout.memorySize;
}

/** Where a mapping of `len` bytes goes, and how it is backed; -ENOMEM when nowhere. */
function place(ctx: SyscallContext, hint: number, len: number, prot: number): { at: number; kind: VmaKind } | number {
  const high = ctx.layout.memorySize;
  // A hint is followed when the range is free, as the kernel does.
  if (hint !== 0 && hint <= TASK_SIZE_MAX - len) {
    const at = pageAlignUp(hint);
    if (at >= high && at + len <= TASK_SIZE_MAX && ctx.space.vmas.isFree(at, at + len)) return { at, kind: 'demand' };
    if (at + len <= high && ctx.space.vmas.isFree(at, at + len) && ctx.arena.contains(at, len) && ctx.arena.isFree(at, len)) {
      ctx.arena.claim(at, len);
      return { at, kind: 'identity' };
    }
  }
  if (protFlags(prot) && len <= EAGER_MAX) {
    const at = ctx.arena.allocate(len);
    if (at >= 0) return { at, kind: 'identity' };
  }
  // Below the mmap base first; above it (where only hints put mappings) when that is full.
  let at = ctx.space.vmas.highestGap(len, high, MMAP_TOP);
  if (at < 0) at = ctx.space.vmas.highestGap(len, MMAP_TOP, TASK_SIZE_MAX);
  return at >= 0 ? { at, kind: 'demand' } : -ENOMEM;
}

function mmap(ctx: SyscallContext, addr: number, length: number, prot: number, flags: number, fd: number, offset: number): number {
  if (offset % PAGE_SIZE !== 0) return -EINVAL;
  const file = (flags & MAP_ANONYMOUS) === 0 ? ctx.files.get(fd) : undefined;
  if ((flags & MAP_ANONYMOUS) === 0 && !file) return -EBADF;
  if ((prot & PROT_EXEC) !== 0 && !ctx.executableMemory) return -EACCES;
  if (length === 0) return -EINVAL;
  const len = pageAlignUp(length);
  if (len > TASK_SIZE_MAX) return -ENOMEM;
  if (file && offset + len >= MAX_LFS_FILESIZE_END) return -EOVERFLOW;
  if (overcommits(ctx, prot, flags, len)) {
    ctx.noteOutOfMemory();
    return -ENOMEM;
  }
  const fixed = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0;
  let at: number;
  let kind: VmaKind;
  if (fixed) {
    if (addr > TASK_SIZE_MAX - len) return -ENOMEM;
    if (addr % PAGE_SIZE !== 0) return -EINVAL;
    if ((flags & MAP_FIXED_NOREPLACE) !== 0 && !ctx.space.vmas.isFree(addr, addr + len)) return -EEXIST;
    if (addr >= ctx.layout.memorySize) kind = 'demand';
    else if (identityRoom(ctx, addr, addr + len)) kind = 'identity';
    else return -ENOMEM;
    if (ctx.space.wouldExceedCount(addr, addr + len, 1)) return -ENOMEM;
    ctx.space.unmap(addr, addr + len);
    if (kind === 'identity') ctx.arena.claim(addr, len);
    at = addr;
  } else {
    if (ctx.space.vmas.count + 1 > MAX_MAP_COUNT) return -ENOMEM;
    const where = place(ctx, addr, len, prot);
    if (typeof where === 'number') {
      ctx.noteOutOfMemory();
      return where;
    }
    ({ at, kind } = where);
  }
  const vma: Vma = { start: at, end: at + len, prot, kind, name: file ? file.path : '' };
  // File contents and small accessible mappings above guest RAM are backed now; the rest when touched.
  const eager = kind === 'demand' && (file !== undefined || (protFlags(prot) !== undefined && len <= EAGER_MAX));
  if (!ctx.space.map(vma, eager)) {
    ctx.noteOutOfMemory();
    return -ENOMEM;
  }
  if (file) {
    const copied = copyFromFile(ctx, file.hostFd, at, length, offset);
    if (copied < 0) {
      ctx.space.unmap(at, at + len);
      return copied;
    }
  }
  return at;
}

/**
 * mprotect, piece by piece as the kernel goes: the first page unmapped is ENOMEM before anything
 * changes; a hole further on is ENOMEM after the pieces before it changed. Executable memory
 * outside the program's own segments needs the program's permission (EACCES otherwise, as a
 * kernel that forbids executable memory answers).
 */
function mprotect(ctx: SyscallContext, addr: number, length: number, prot: number): number {
  const bits = prot >>> 0; // a bit above these 32 fails the check of valid bits below
  if ((bits & PROT_GROWS) === PROT_GROWS) return -EINVAL;
  if (addr % PAGE_SIZE !== 0) return -EINVAL;
  if (length === 0) return 0;
  const len = pageAlignUp(length);
  if (addr + len >= ADDRESS_END) return -ENOMEM;
  if (prot >= 2 ** 32 || (bits & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM | PROT_GROWS)) !== 0) return -EINVAL;
  const newProt = bits & (PROT_READ | PROT_WRITE | PROT_EXEC);
  const end = addr + len;
  let at = addr;
  for (const piece of ctx.space.vmas.overlapping(addr, end)) {
    if (piece.start !== at) return -ENOMEM;
    if ((newProt & PROT_EXEC) !== 0 && !piece.program && !ctx.executableMemory) return -EACCES;
    if (piece.prot !== newProt) {
      if ((piece.prot & PROT_WRITE) === 0 && overcommits(ctx, newProt, 0, piece.end - piece.start)) return -ENOMEM;
      if (ctx.space.wouldExceedCount(piece.start, piece.end, 1)) return -ENOMEM;
      ctx.space.protect(piece.start, piece.end, newProt);
    }
    at = piece.end;
  }
  return at >= end ? 0 : -ENOMEM;
}

/** madvise: MADV_DONTNEED zeroes the range (above guest RAM its pages give their frames back); other advice is only advice. */
function madvise(ctx: SyscallContext, addr: number, length: number, advice: number): number {
  if (addr % PAGE_SIZE !== 0) return -EINVAL;
  const len = pageAlignUp(length);
  if (addr + len >= ADDRESS_END) return -EINVAL;
  if (len === 0) return 0;
  if (!ctx.space.mapped(addr, addr + len)) return -ENOMEM;
  if (advice === MADV_DONTNEED) ctx.space.discard(addr, addr + len);
  return 0;
}

function brk(ctx: SyscallContext, requested: number): number {
  const before = pageAlignUp(ctx.arena.brk);
  const r = ctx.arena.setBrk(requested);
  const after = pageAlignUp(r.brk);
  if (after > before) ctx.space.map({ start: before, end: after, prot: PROT_READ | PROT_WRITE, kind: 'identity', name: '[heap]' }, false);
  // Shrinking unmaps what lies past the new break; the arena already took the frames back.
  if (r.freed) ctx.space.unmap(r.freed.start, r.freed.end);
  if (requested > r.brk) ctx.noteOutOfMemory();
  return r.brk;
}

export const memorySyscalls: Record<string, SyscallHandler> = {
  brk,
  mmap,
  munmap: (ctx, addr, length) => {
    if (addr % PAGE_SIZE !== 0 || addr > TASK_SIZE_MAX || length > TASK_SIZE_MAX - addr) return -EINVAL;
    const len = pageAlignUp(length);
    if (len === 0) return -EINVAL;
    if (ctx.space.wouldExceedCount(addr, addr + len)) return -ENOMEM;
    ctx.space.unmap(addr, addr + len);
    return 0;
  },
  mprotect,
  // glibc and musl fall back to allocate-copy-free when mremap fails.
  mremap: () => -ENOMEM,
  madvise,
};
