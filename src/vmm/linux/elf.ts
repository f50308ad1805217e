// Loader for static x86-64 ELF executables (ET_EXEC, and static-PIE ET_DYN without an
// interpreter). Copies the PT_LOAD segments into guest memory and maps their pages with the
// segment's permissions. Anything else is refused with a message a developer can act on.
import { type Layout, PAGE_SIZE, pageAlignDown, pageAlignUp, PROGRAM_BASE, SYSTEM_END } from '../x86/layout.ts';
import type { GuestMemory } from '../memory/guest-memory.ts';
import { mapPages, type PageFlags } from '../x86/paging.ts';
import { readSymbols, type SymbolTable } from './symbols.ts';

const ET_EXEC = 2, ET_DYN = 3;
const PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
const EM_X86_64 = 62;
const PT_LOAD = 1, PT_INTERP = 3, PT_PHDR = 6;
const PF_X = 1, PF_W = 2;
const PHDR_SIZE = 56;

/** The program file cannot be run here (not ELF, not x86-64, dynamically linked, does not fit). */
export class ProgramError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProgramError';
  }
}

export interface LoadedProgram {
  entry: number;
  /** Guest address of the program headers, for AT_PHDR. */
  phdr: number;
  phnum: number;
  /** Lowest and highest (exclusive) address the segments occupy. */
  start: number;
  end: number;
  pie: boolean;
  /** The loaded pages, in runs of one protection (PROT_* bits), for the address space's mappings. */
  segments: Array<{ start: number; end: number; prot: number }>;
  /** Function symbols, at their loaded addresses (none for a stripped program). */
  symbols?: SymbolTable;
}

interface Segment {
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
  flags: number;
}

function readSegments(file: Buffer): { type: number; entry: number; phoff: number; phnum: number; loads: Segment[]; phdrVaddr?: number; interp: boolean } {
  if (file.length < 64 || file.readUInt32BE(0) !== 0x7f454c46) throw new ProgramError('not an ELF executable');
  if (file[4] !== 2 || file[5] !== 1) throw new ProgramError('not a 64-bit little-endian ELF file');
  const type = file.readUInt16LE(16);
  if (file.readUInt16LE(18) !== EM_X86_64) throw new ProgramError('not an x86-64 program');
  if (type !== ET_EXEC && type !== ET_DYN) throw new ProgramError('ELF file is not an executable');
  const entry = Number(file.readBigUInt64LE(24));
  const phoff = Number(file.readBigUInt64LE(32));
  const phentsize = file.readUInt16LE(54);
  const phnum = file.readUInt16LE(56);
  if (phentsize !== PHDR_SIZE || phoff + phnum * PHDR_SIZE > file.length) throw new ProgramError('corrupt ELF program headers');
  const loads: Segment[] = [];
  let interp = false;
  let phdrVaddr: number | undefined;
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * PHDR_SIZE;
    const ptype = file.readUInt32LE(o);
    const seg: Segment = {
      flags: file.readUInt32LE(o + 4),
      offset: Number(file.readBigUInt64LE(o + 8)),
      vaddr: Number(file.readBigUInt64LE(o + 16)),
      filesz: Number(file.readBigUInt64LE(o + 32)),
      memsz: Number(file.readBigUInt64LE(o + 40)),
    };
    if (ptype === PT_INTERP) interp = true;
    if (ptype === PT_PHDR) phdrVaddr = seg.vaddr;
    if (ptype === PT_LOAD) {
      if (seg.filesz > seg.memsz || seg.offset + seg.filesz > file.length) throw new ProgramError('corrupt ELF segment');
      loads.push(seg);
    }
  }
  if (loads.length === 0) throw new ProgramError('ELF file has nothing to load');
  return { type, entry, phoff, phnum, loads, phdrVaddr, interp };
}

const sameFlags = (a: PageFlags, b: PageFlags): boolean => a.write === b.write && a.exec === b.exec && a.user === b.user;

/** Loads `file` into `mem`; returns where it landed. */
export function loadElf(file: Buffer, mem: GuestMemory, layout: Layout): LoadedProgram {
  const elf = readSegments(file);
  if (elf.interp) throw new ProgramError('program is dynamically linked; link with -static (or -static-pie)');
  const pie = elf.type === ET_DYN;
  const lowest = Math.min(...elf.loads.map((s) => s.vaddr));
  const bias = pie ? PROGRAM_BASE - pageAlignDown(lowest) : 0;
  const start = pageAlignDown(lowest + bias);
  const end = pageAlignUp(Math.max(...elf.loads.map((s) => s.vaddr + s.memsz)) + bias);
  if (start < SYSTEM_END) throw new ProgramError(`program wants to load at 0x${start.toString(16)}, below 0x${SYSTEM_END.toString(16)}`);
  if (end > layout.arenaEnd - PAGE_SIZE) {
    throw new ProgramError(`out of guest memory: the program needs ${Math.ceil(end / 1048576)} MiB of address space, more than ${layout.memorySize / 1048576} MiB of guest memory allows (raise --memory)`);
  }

  mem.populate(start, end - start);
  // Pages shared by two segments get the union of their permissions.
  const perms = new Map<number, PageFlags>();
  for (const seg of elf.loads) {
    const vaddr = seg.vaddr + bias;
    mem.bytes.set(file.subarray(seg.offset, seg.offset + seg.filesz), vaddr);
    mem.bytes.fill(0, vaddr + seg.filesz, vaddr + seg.memsz);
    mem.markDirty(vaddr, seg.memsz);
    for (let page = pageAlignDown(vaddr); page < vaddr + seg.memsz; page += PAGE_SIZE) {
      const prev = perms.get(page);
      perms.set(page, {
        user: true,
        write: (seg.flags & PF_W) !== 0 || (prev?.write ?? false),
        exec: (seg.flags & PF_X) !== 0 || (prev?.exec ?? false),
      });
    }
  }
  // Map runs of pages that share permissions with one call each.
  const pages = [...perms.keys()].sort((a, b) => a - b);
  const segments: LoadedProgram['segments'] = [];
  for (let i = 0; i < pages.length;) {
    const flags = perms.get(pages[i]!)!;
    let j = i + 1;
    while (j < pages.length && pages[j] === pages[j - 1]! + PAGE_SIZE && sameFlags(perms.get(pages[j]!)!, flags)) j++;
    mapPages(mem, layout, pages[i]!, (j - i) * PAGE_SIZE, flags);
    segments.push({ start: pages[i]!, end: pages[i]! + (j - i) * PAGE_SIZE, prot: PROT_READ | (flags.write ? PROT_WRITE : 0) | (flags.exec ? PROT_EXEC : 0) });
    i = j;
  }

  // AT_PHDR: PT_PHDR when present, otherwise the headers inside the segment that maps file offset phoff.
  let phdr = elf.phdrVaddr !== undefined ? elf.phdrVaddr + bias : 0;
  if (elf.phdrVaddr === undefined) {
    const seg = elf.loads.find((s) => s.offset <= elf.phoff && elf.phoff < s.offset + s.filesz);
    if (seg) phdr = seg.vaddr + bias + (elf.phoff - seg.offset);
  }
  const symbols = readSymbols(file, bias);
  return { entry: elf.entry + bias, phdr, phnum: elf.phnum, start, end, pie, segments, ...(symbols ? { symbols } : {}) };
}
