// The guest memory map. Guest virtual addresses equal guest physical addresses (identity map),
// so a guest pointer is an offset into the one host mapping that backs guest RAM.
//
//   0x0000_0000  not mapped: NULL dereferences fault
//   0x0000_1000  GDT | IDT | TSS | ring-0 stubs | iretq frame | IST stack   (supervisor only)
//   0x0000_8000  PML4, PDPT, page directories                               (not mapped)
//   0x0040_0000  the program (non-PIE at its link address; static-PIE loaded here)
//   …            brk heap grows up ↑        ↓ mmap areas grow down
//   stackBottom  guard page (not mapped: a stack overflow faults here)
//   …            the stack, growing down from stackTop
//   stackTop     page tables (not mapped) up to the end of guest RAM

export const PAGE_SIZE = 4096;

export const GDT_ADDR = 0x1000;
export const IDT_ADDR = 0x2000;
export const TSS_ADDR = 0x3000;
/** Ring-0 code: the syscall entry and one exception stub per vector. */
export const STUBS_ADDR = 0x4000;
/** Where the host writes the iretq frame that returns from a system call to ring 3. */
export const SYSCALL_FRAME_ADDR = 0x5000 - 5 * 8;
/** IST1 stack for exceptions: its top. Two pages, so a double fault still has room. */
export const IST_STACK_TOP = 0x8000;
export const PML4_ADDR = 0x8000;
export const PDPT_ADDR = 0x9000;
/** One page directory per GiB of guest memory, from here. */
export const PD_ADDR = 0xa000;
export const MAX_MEMORY_GIB = 4;
/**
 * The smallest guest memory a program gets: computeLayout fits a program in 8 MiB (it starts at
 * 4 MiB and needs room above it below a stack of a quarter of memory; 6 MiB leaves none), and an
 * SDK program also needs its request region (the default 1 MiB of `maxRequestBytes` and the batch
 * header) above its code: 8 MiB has no room left for it.
 */
export const MIN_MEMORY_MIB = 10;
export const SYSTEM_END = PD_ADDR + MAX_MEMORY_GIB * PAGE_SIZE;

/** Lowest address a program may occupy; static-PIE programs are loaded here. */
export const PROGRAM_BASE = 0x40_0000;
/** Unmapped pages below the stack: a frame larger than this could jump over them. */
const STACK_GUARD_PAGES = 16;

export const MiB = 1024 * 1024;

export interface Layout {
  readonly memorySize: number;
  /** First byte of the page tables at the top of guest RAM (also the end of the stack). */
  readonly pageTablesAddr: number;
  readonly stackTop: number;
  /** Lowest address of the stack; below it lies the guard page. */
  readonly stackBottom: number;
  /** End of the memory that brk and mmap may hand out. */
  readonly arenaEnd: number;
}

export const pageAlignDown = (x: number): number => Math.floor(x / PAGE_SIZE) * PAGE_SIZE;
export const pageAlignUp = (x: number): number => Math.ceil(x / PAGE_SIZE) * PAGE_SIZE;

/** Computes the map for a guest of `memorySize` bytes whose stack may grow to `stackSize` bytes. */
export function computeLayout(memorySize: number, stackSize = 8 * MiB): Layout {
  if (memorySize % (2 * MiB) !== 0) throw new RangeError('guest memory must be a multiple of 2 MiB');
  if (memorySize > MAX_MEMORY_GIB * 1024 * MiB) throw new RangeError(`guest memory is limited to ${MAX_MEMORY_GIB} GiB`);
  const pageTableCount = memorySize / (2 * MiB);
  const pageTablesAddr = memorySize - pageTableCount * PAGE_SIZE;
  const stackTop = pageTablesAddr;
  // The stack gets at most a quarter of memory, so small guests still have a heap.
  const stack = Math.min(stackSize, pageAlignDown(memorySize / 4));
  const stackBottom = stackTop - stack;
  const arenaEnd = stackBottom - STACK_GUARD_PAGES * PAGE_SIZE;
  if (arenaEnd <= PROGRAM_BASE + MiB) throw new RangeError(`guest memory of ${memorySize / MiB} MiB is too small`);
  return { memorySize, pageTablesAddr, stackTop, stackBottom, arenaEnd };
}
