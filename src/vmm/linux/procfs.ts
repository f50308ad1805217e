// The one /proc file a program can open: /proc/self/maps (also as /proc/1/maps and
// /proc/thread-self/maps), made from the address space's mappings in the kernel's format
// (fs/proc/task_mmu.c show_map_vma): `start-end perms offset dev inode`, then the name padded to
// column 73 — the program, [heap], [stack], a mapped file — or nothing for anonymous memory. glibc's
// pthread_getattr_np reads it to find the main thread's stack, which Rust's std uses for its
// stack-overflow report. Offsets, devices and inodes are 0: nothing here has a file system to
// name. Every other /proc path answers as any path outside the allowed directories (EACCES).
import { closeSync, writeSync } from 'node:fs';
import { check, memfdCreate, MFD_CLOEXEC } from '../../kvm/libc.ts';
import type { Vma } from '../memory/vmas.ts';
import { PID } from './syscalls/process.ts';

/** The paths that name the file. */
const MAPS_PATHS: ReadonlySet<string> = new Set(['/proc/self/maps', `/proc/${PID}/maps`, '/proc/thread-self/maps']);
/**
 * The most the file holds, cut after a whole line: a program may have 65530 mappings, and the
 * host holds the text while the file is open. The low addresses (the program, its heap, the main
 * stack) come first, so what a reader of the main stack needs is always there.
 */
export const MAX_MAPS_BYTES = 64 * 1024;
/** seq_setwidth(m, 25 + sizeof(void *) * 6 - 1): the name starts one space past this column. */
const NAME_COLUMN = 25 + 8 * 6 - 1;
const PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;

const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');

/** One line of /proc/self/maps for `vma`. */
export function mapsLine(vma: Vma): string {
  const perms = `${vma.prot & PROT_READ ? 'r' : '-'}${vma.prot & PROT_WRITE ? 'w' : '-'}${vma.prot & PROT_EXEC ? 'x' : '-'}p`;
  const head = `${hex(vma.start, 8)}-${hex(vma.end, 8)} ${perms} ${hex(0, 8)} 00:00 0 `;
  return vma.name === '' ? `${head}\n` : `${head.padEnd(NAME_COLUMN)} ${vma.name}\n`;
}

/** /proc/self/maps for the mappings `vmas` (in address order), at most MAX_MAPS_BYTES. */
export function mapsText(vmas: readonly Vma[]): string {
  let text = '';
  for (const vma of vmas) {
    const line = mapsLine(vma);
    if (text.length + line.length > MAX_MAPS_BYTES) break;
    text += line;
  }
  return text;
}

/** The contents of the /proc file at `path` (absolute, resolved), or undefined when it is not one tinyedge makes. */
export function procFile(path: string, vmas: () => readonly Vma[]): string | undefined {
  return MAPS_PATHS.has(path) ? mapsText(vmas()) : undefined;
}

/** A host fd reading `text`: a memfd, so that reads, seeks and fstat work on it as on any file. */
export function textFd(text: string): number {
  const fd = check('memfd_create', memfdCreate('tinyedge-proc', MFD_CLOEXEC));
  try {
    const bytes = Buffer.from(text);
    writeSync(fd, bytes, 0, bytes.length, 0);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}
