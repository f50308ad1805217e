// What a system-call handler may use: guest memory, the address-space arena, open files, the
// standard streams, and the few vCPU actions a call can need. Handlers return a result or -errno.
import type { Arena } from '../arena.ts';
import type { Layout } from '../layout.ts';
import type { GuestMemory } from '../memory.ts';
import type { FileTable } from './files.ts';

/** Where the guest's fds 0, 1 and 2 lead. `write`/`read` return a byte count or -errno. */
export interface Stdio {
  write(fd: 1 | 2, data: Uint8Array): number;
  /** Reads stdin, waiting at most `waitMs` for data (then returning -EINTR: the deadline has come). */
  read(into: Uint8Array, waitMs: number): number;
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
}

export type SyscallHandler = (ctx: SyscallContext, a: number, b: number, c: number, d: number, e: number, f: number) => number;
