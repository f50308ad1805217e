// Frozen program state. A snapshot is guest memory in a memfd (new instances map it
// copy-on-write, so making one copies nothing) plus the vCPU registers, FPU/AVX state and the
// host-side process state. A reset (dirty-log.ts) copies back only the pages dirtied since.
// A snapshot taken on one thread can be adopted by another (`export`, then the adopting
// constructor): fds are process-wide, so the adopter maps the same memfd through a descriptor of
// its own.
import { writeSync } from 'node:fs';
import { check, close, F_DUPFD_CLOEXEC, fcntlInt, ftruncate, type Mapping, memfdCreate, MFD_CLOEXEC } from '../../kvm/libc.ts';
import { acquireMapping, releaseMapping } from './shell.ts';
import type { LoadedProgram } from '../linux/elf.ts';
import { type Layout, PAGE_SIZE } from '../x86/layout.ts';
import type { HostState, Machine } from '../machine.ts';

/**
 * A snapshot as another thread of this process adopts it: the memfd, valid while the exporting
 * snapshot is open, and plain data that survives structured cloning (Buffers arrive as
 * Uint8Arrays).
 */
export type ExportedSnapshot = Pick<Snapshot, 'layout' | 'program' | 'userStart' | 'userEnd' | 'allowRead' | 'executableMemory' | 'regs' | 'host' | 'pageCount'> & {
  readonly memfd: number;
  readonly sregs: Uint8Array;
  readonly xsave: Uint8Array;
};

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

export class Snapshot {
  private readonly fd: number;
  private readonly shared: Mapping;
  /** The frozen guest memory (read it; never write it). */
  readonly bytes: Uint8Array;
  readonly layout: Layout;
  readonly program: LoadedProgram;
  readonly userStart: number;
  readonly userEnd: number;
  readonly allowRead: readonly string[];
  readonly executableMemory: boolean;
  readonly regs: Uint8Array;
  readonly sregs: Buffer;
  readonly xsave: Buffer;
  readonly host: HostState;
  /** Pages the snapshot holds (the rest are zero). */
  readonly pageCount: number;

  /**
   * Freezes `machine`, which must be resettable and stopped (after boot, or yielded). The machine
   * itself then stands exactly at the snapshot and can go on serving as an instance.
   */
  constructor(machine: Machine);
  /**
   * Adopts a snapshot exported on another thread: maps its memory through a duplicate of its
   * memfd (this snapshot owns the duplicate and closes it), copying no guest memory.
   */
  constructor(exported: ExportedSnapshot);
  constructor(source: Machine | ExportedSnapshot) {
    if ('memfd' in source) {
      this.fd = check('fcntl(F_DUPFD_CLOEXEC)', fcntlInt(source.memfd, F_DUPFD_CLOEXEC, 0));
      try {
        this.shared = acquireMapping(source.layout.memorySize, this.fd, true);
      } catch (err) {
        close(this.fd);
        throw err;
      }
      this.bytes = new Uint8Array(this.shared.buffer);
      this.layout = source.layout;
      this.program = source.program;
      this.userStart = source.userStart;
      this.userEnd = source.userEnd;
      this.allowRead = source.allowRead;
      this.executableMemory = source.executableMemory;
      this.regs = source.regs;
      this.sregs = asBuffer(source.sregs);
      this.xsave = asBuffer(source.xsave);
      this.host = source.host;
      this.pageCount = source.pageCount;
      return;
    }
    const machine = source;
    const { mem, layout, vcpu } = machine;
    if (!machine.dirtyLog) throw new Error('snapshot of a machine that does not track dirty pages');
    this.layout = layout;
    this.program = machine.program;
    this.userStart = mem.userStart;
    this.userEnd = mem.userEnd;
    this.allowRead = machine.files.allowRead;
    this.executableMemory = machine.executableMemory;
    // Copies of guest bytes the host handed out for writing go in before the memory is frozen.
    mem.flush();
    this.fd = check('memfd_create', memfdCreate('tinyedge-snapshot', MFD_CLOEXEC));
    try {
      check('ftruncate', ftruncate(this.fd, layout.memorySize));
      this.shared = acquireMapping(layout.memorySize, this.fd, true);
    } catch (err) {
      close(this.fd);
      throw err;
    }
    this.bytes = new Uint8Array(this.shared.buffer);
    // Everything the guest or the host ever wrote since boot is dirty; the rest is still zero.
    // Runs of pages go into the memfd with one pwrite each: storing through the mapping would
    // take a page fault per page.
    const src = mem.bytes;
    let runStart = -1;
    let runEnd = -1;
    const flush = (): void => {
      if (runStart >= 0) writeSync(this.fd, src, runStart * PAGE_SIZE, (runEnd - runStart) * PAGE_SIZE, runStart * PAGE_SIZE);
    };
    this.pageCount = machine.dirtyLog.forEachDirty(mem, (page) => {
      if (page === runEnd) runEnd++;
      else {
        flush();
        runStart = page;
        runEnd = page + 1;
      }
    }, false);
    flush();
    this.regs = Uint8Array.from(vcpu.regsBytes());
    this.sregs = vcpu.getSregs();
    this.xsave = vcpu.getXsave();
    this.host = machine.hostState();
  }

  /** What another thread needs to adopt this snapshot; valid until this one is closed. */
  export(): ExportedSnapshot {
    return {
      memfd: this.fd,
      layout: this.layout,
      program: this.program,
      userStart: this.userStart,
      userEnd: this.userEnd,
      allowRead: this.allowRead,
      executableMemory: this.executableMemory,
      regs: this.regs,
      sregs: this.sregs,
      xsave: this.xsave,
      host: this.host,
      pageCount: this.pageCount,
    };
  }

  /** The memfd holding the frozen memory, to map copy-on-write behind a new instance. */
  get memfd(): number {
    return this.fd;
  }

  close(): void {
    releaseMapping(this.shared);
    close(this.fd);
  }
}
