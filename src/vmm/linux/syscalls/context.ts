// What a system-call handler may use: guest memory, the address-space arena, open files, the
// standard streams, and the few vCPU actions a call can need. Handlers return a result or -errno.
import type { Arena } from '../../memory/arena.ts';
import type { Layout } from '../../x86/layout.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import type { FileTable } from './files.ts';

export type StdioFd = 0 | 1 | 2;

/** Where the guest's fds 0, 1 and 2 lead. `write`/`read` return a byte count or -errno. */
export interface Stdio {
  /**
   * Writes stdout or stderr, waiting at most `waitMs` for room: then it returns what it wrote so
   * far, or -EINTR if nothing (the deadline has come).
   */
  write(fd: 1 | 2, data: Uint8Array, waitMs: number): number;
  /** Reads stdin, waiting at most `waitMs` for data (then returning -EINTR: the deadline has come). */
  read(into: Uint8Array, waitMs: number): number;
  /**
   * poll(2) of the streams: for each entry, its readiness as POLL* bits (those of `events`, plus
   * POLLNVAL for a stream that is closed), waiting at most `waitMs` until one reports something.
   * Streams whose readiness cannot change while the guest waits answer at once.
   */
  poll(entries: ReadonlyArray<{ fd: StdioFd; events: number }>, waitMs: number): number[];
}

export interface SyscallContext {
  readonly mem: GuestMemory;
  readonly layout: Layout;
  readonly arena: Arena;
  readonly files: FileTable;
  readonly stdio: Stdio;
  /** Ends the program with `status` (exit_group) or by a signal (status 128 + signal). */
  exit(status: number, signal?: string): void;
  setFsBase(value: bigint): void;
  getFsBase(): bigint;
  /** Blocks for up to `ms` milliseconds, never past the program's deadline. */
  sleep(ms: number): void;
  /** Milliseconds left before the program's deadline. */
  remainingMs(): number;
  /** Records that a memory request failed, so a later crash can be explained as out of memory. */
  noteOutOfMemory(): void;
  /** The program's own CPU time in nanoseconds: what its CPU clocks read. */
  cpuTimeNs(): number;
}

/**
 * How the dispatcher reads an argument register, after the type the kernel declares for it
 * (SYSCALL_DEFINE): `int` the low 32 bits sign-extended (int, pid_t, clockid_t), `uint` the low
 * 32 bits (unsigned int, fds), `long` all 64 bits signed (long, off_t, loff_t), `ulong` all 64
 * bits unsigned (pointers, size_t, unsigned long). 64-bit values arrive as Numbers, exact while
 * their magnitude is below 2^53. Larger ones, beyond every address, length and offset the host
 * accepts, are rounded by less than a page but keep what the kernel's checks on them look at:
 * their sign, their magnitude, and whether they are a multiple of the page size.
 */
export type ArgKind = 'int' | 'uint' | 'long' | 'ulong';

export type SyscallHandler = (ctx: SyscallContext, a: number, b: number, c: number, d: number, e: number, f: number) => number;
