// A tiny VM running one static Linux program, as a façade over the files that do the work: it
// boots the program (memory, page tables, descriptor tables, stubs, ELF, stack, long mode), runs
// it through its run loop (run/loop.ts), which answers its system calls until it exits, faults,
// runs out of time, or yields at a hypercall, and restores it to a snapshot. No guest kernel: the
// host is the kernel.
import type { Kvm } from '../kvm/kvm.ts';
import type { Vcpu } from '../kvm/vcpu.ts';
import type { Vm } from '../kvm/vm.ts';
import { AddressSpace, type AddressSpaceState, PROT_READ, PROT_WRITE } from './memory/address-space.ts';
import { Arena, type ArenaState } from './memory/arena.ts';
import { enterLongMode, INITIAL_RFLAGS, MSR_FS_BASE } from './x86/cpu.ts';
import { acquireShell, cpuFeatures, destroyShell, releaseShell, type Shell } from './memory/shell.ts';
import { loadElf, type LoadedProgram } from './linux/elf.ts';
import { SandboxError } from './errors.ts';
import { writeDescriptorTables } from './x86/gdt.ts';
import { computeLayout, GDT_ADDR, IST_STACK_TOP, type Layout, MAX_MEMORY_GIB, MiB, MIN_MEMORY_MIB, PAGE_SIZE, STUBS_ADDR } from './x86/layout.ts';
import { GuestMemory } from './memory/guest-memory.ts';
import { buildPageTables, KERNEL_RW, mapPages, STUB_RX, USER_RW } from './x86/paging.ts';
import type { DirtyLog } from './memory/dirty-log.ts';
import type { Snapshot } from './memory/snapshot.ts';
import { buildInitialStack } from './linux/stack.ts';
import { stubCode } from './x86/stubs.ts';
import type { Signals, Stdio, SyscallContext, Threads } from './linux/syscalls/context.ts';
import { ENOSYS } from './linux/syscalls/errno.ts';
import { EventTable, type EventTableState } from './linux/syscalls/events.ts';
import { FileTable, type FileTableState } from './linux/syscalls/files.ts';
import { RunLoop, type RunResult, type RunState } from './run/loop.ts';
import type { Tracer } from './run/trace.ts';
import type { Journal } from './linux/journal.ts';

export type { RunResult } from './run/loop.ts';

export interface MachineOptions {
  /** Guest memory in MiB (a multiple of 2). */
  memoryMiB: number;
  argv: string[];
  env: string[];
  /** Host directories whose files the program may read. */
  allowRead?: readonly string[];
  stdio: Stdio;
  /** Track dirtied pages so the machine can be snapshotted and reset (request VMs). */
  resettable?: boolean;
  /** Let the program map executable memory beyond its own segments (JITs); without it that is EACCES. */
  executableMemory?: boolean;
}

/** The host-side state a snapshot records besides memory and vCPU registers (threads included). */
export interface HostState extends RunState {
  arena: ArenaState;
  space: AddressSpaceState;
  files: FileTableState;
  events: EventTableState;
}

/** Answers hypercalls (`out` to PORT_HYPERCALL); returns the value for RAX, or calls `yield()`. */
export type HypercallHandler = (machine: Machine, call: number) => number;

export class Machine implements SyscallContext {
  readonly vm: Vm;
  readonly vcpu: Vcpu;
  readonly mem: GuestMemory;
  readonly layout: Layout;
  readonly arena: Arena;
  readonly space: AddressSpace;
  readonly executableMemory: boolean;
  readonly files: FileTable;
  readonly events: EventTable;
  readonly program: LoadedProgram;
  stdio: Stdio;
  hypercall: HypercallHandler = () => -ENOSYS;
  /** Prints every call the program makes (`--trace`); undefined, the usual case, costs nothing. */
  trace: Tracer | undefined;
  /** Records the clock reads and random bytes the guest gets (or replays them); undefined: neither. */
  journal: Journal | undefined;
  readonly dirtyLog: DirtyLog | undefined;
  private readonly shell: Shell;
  private readonly loop: RunLoop;

  /** Boots `elf` in a new VM; the vCPU stands at the program's entry point. */
  static boot(kvm: Kvm, elf: Buffer, options: MachineOptions): Machine {
    const memoryMiB = options.memoryMiB;
    if (!Number.isInteger(memoryMiB) || memoryMiB < MIN_MEMORY_MIB || memoryMiB > MAX_MEMORY_GIB * 1024 || memoryMiB % 2 !== 0) {
      throw new SandboxError('program', `guest memory must be an even number of MiB from ${MIN_MEMORY_MIB} MiB to ${MAX_MEMORY_GIB} GiB (got ${memoryMiB} MiB)`);
    }
    const layout = computeLayout(memoryMiB * MiB);
    const shell = acquireShell(kvm, layout.memorySize, options.resettable ?? false);
    return new Machine(shell, layout, true, options, (m) => m.writeGuest(elf), (m) => {
      enterLongMode(m.vcpu, cpuFeatures(kvm));
      m.startAtEntry(options.argv, options.env);
    });
  }

  /** A new VM whose memory is a copy-on-write view of `snapshot`, stopped where it was taken. */
  static fromSnapshot(kvm: Kvm, snapshot: Snapshot, stdio: Stdio): Machine {
    const shell = acquireShell(kvm, snapshot.layout.memorySize, true, snapshot.memfd);
    const options: MachineOptions = {
      memoryMiB: snapshot.layout.memorySize / MiB, argv: [], env: [], allowRead: snapshot.allowRead, stdio, resettable: true,
      executableMemory: snapshot.executableMemory,
    };
    return new Machine(shell, snapshot.layout, false, options, (m) => {
      m.mem.userStart = snapshot.userStart;
      m.mem.userEnd = snapshot.userEnd;
      return snapshot.program;
    }, (m) => {
      m.vcpu.setSregs(snapshot.sregs);
      m.restoreFrom(snapshot, true);
    });
  }

  /**
   * Runs in `shell` (from the pool). `load` puts the program in memory and says where it is;
   * `start` sets the vCPU going.
   */
  private constructor(shell: Shell, layout: Layout, anonymous: boolean, options: MachineOptions, load: (m: Machine) => LoadedProgram, start: (m: Machine) => void) {
    this.shell = shell;
    this.vm = shell.vm;
    this.vcpu = shell.vcpu;
    this.dirtyLog = shell.dirtyLog;
    this.layout = layout;
    this.mem = new GuestMemory(shell.mapping, anonymous, layout, 0, 0);
    this.stdio = options.stdio;
    this.executableMemory = options.executableMemory ?? false;
    this.files = new FileTable(options.allowRead ?? []);
    this.events = new EventTable(this.files);
    this.loop = new RunLoop(this);
    try {
      this.program = load(this);
      this.arena = new Arena(this.program.end, layout.arenaEnd);
      this.space = new AddressSpace(this.mem, layout, this.arena);
      if (anonymous) this.mapProgram(options.argv[0] ?? 'program');
      start(this);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private writeGuest(elf: Buffer): LoadedProgram {
    const { mem, layout } = this;
    buildPageTables(mem, layout);
    writeDescriptorTables(mem);
    mem.bytes.set(stubCode(), STUBS_ADDR);
    mem.markDirty(STUBS_ADDR, PAGE_SIZE);
    mapPages(mem, layout, GDT_ADDR, STUBS_ADDR - GDT_ADDR, KERNEL_RW);
    mapPages(mem, layout, STUBS_ADDR, PAGE_SIZE, STUB_RX);
    mapPages(mem, layout, STUBS_ADDR + PAGE_SIZE, IST_STACK_TOP - STUBS_ADDR - PAGE_SIZE, KERNEL_RW);
    const program = loadElf(elf, mem, layout);
    mapPages(mem, layout, program.end, layout.arenaEnd - program.end, USER_RW);
    mapPages(mem, layout, layout.stackBottom, layout.stackTop - layout.stackBottom, USER_RW);
    mem.userStart = program.start;
    mem.userEnd = layout.stackTop;
    return program;
  }

  /** The mappings a booted program (named `name`) starts with: its segments and its stack, already in the page tables. */
  private mapProgram(name: string): void {
    for (const seg of this.program.segments) this.space.vmas.insert({ ...seg, kind: 'identity', name, program: true });
    this.space.vmas.insert({ start: this.layout.stackBottom, end: this.layout.stackTop, prot: PROT_READ | PROT_WRITE, kind: 'identity', name: '[stack]' });
  }

  /** Points the vCPU at the program's entry with a fresh initial stack (argv, env, auxv). */
  startAtEntry(argv: string[], env: string[]): void {
    const program = this.program;
    const sp = buildInitialStack(this.mem, this.layout.stackTop, program, { argv, env, hwcap: cpuFeatures(this.vm.kvm).hwcap });
    this.vcpu.regsBytes().fill(0);
    this.vcpu.setReg('rflags', 0x2);
    this.loop.start(program.entry, sp, INITIAL_RFLAGS);
  }

  // --- SyscallContext -------------------------------------------------------------------------

  exit(status: number, signal?: string): void {
    this.loop.exit(status, signal);
  }

  setFsBase(value: bigint): void {
    this.vcpu.setMsrs([{ index: MSR_FS_BASE, value }]);
    this.loop.threads.current.fsBase = value;
  }

  getFsBase(): bigint {
    return this.loop.threads.current.fsBase;
  }

  get threads(): Threads {
    return this.loop.threads;
  }

  get signals(): Signals {
    return this.loop.signals;
  }

  sleep(ms: number): void {
    this.loop.sleep(ms);
  }

  remainingMs(): number {
    return this.loop.remainingMs();
  }

  noteOutOfMemory(): void {
    this.loop.noteOutOfMemory();
  }

  cpuTimeNs(): number {
    return this.loop.cpuTimeNs();
  }


  // --- running --------------------------------------------------------------------------------

  /**
   * Runs the program for at most `timeoutMs` of wall-clock time, until it exits or yields, or for
   * one slice of `sliceMs` ('preempted': the next run continues). Throws a SandboxError for a
   * fault, a timeout, or anything else that is not the program's doing.
   */
  run(timeoutMs: number, sliceMs?: number): RunResult {
    return this.loop.run(timeoutMs, sliceMs);
  }

  /** Called by a hypercall handler: stop the run after this call, leaving it pending. */
  yield(): void {
    this.loop.yield();
  }

  /** Answers the pending hypercall with `value`; the next `run()` continues after it. */
  resume(value: number): void {
    this.loop.resume(value);
  }

  // --- snapshot and reset ---------------------------------------------------------------------

  /** The host-side state a snapshot records besides memory and vCPU registers. */
  hostState(): HostState {
    return { arena: this.arena.save(), space: this.space.save(), files: this.files.save(), events: this.events.save(), ...this.loop.save() };
  }

  /**
   * Puts the machine back to `snapshot`: every page dirtied since (by the guest or the host), the
   * registers, FPU/AVX state, FS base, the threads, and the host-side state; returns the pages
   * copied back.
   * `fresh` is for a new VM whose memory already is the snapshot.
   */
  restoreFrom(snapshot: Snapshot, fresh = false): number {
    this.mem.flush();
    const pages = fresh ? 0 : this.dirtyLog!.restorePages(this.mem, snapshot);
    this.vcpu.regsBytes().set(snapshot.regs);
    this.vcpu.markRegsDirty();
    this.vcpu.setXsave(snapshot.xsave);
    // Segments go back whole, with their FS and GS bases: a request may have changed them without
    // the host seeing it (wrfsbase, wrgsbase, loading a selector), and after a failure the vCPU may
    // stand in ring 0. A new VM got them from KVM_SET_SREGS already.
    if (!fresh) this.vcpu.setSregsOnEntry(snapshot.sregs);
    this.arena.restore(snapshot.host.arena);
    this.space.restore(snapshot.host.space, fresh);
    this.files.restore(snapshot.host.files);
    this.events.restore(snapshot.host.events);
    this.loop.restore(snapshot.host);
    return pages;
  }

  /** VM exits since the machine was made (every return from KVM_RUN). */
  get exits(): number {
    return this.loop.exits;
  }

  /** Of `exits`, the timer's interrupts. */
  get timerExits(): number {
    return this.loop.timerExits;
  }

  /** Pages dirtied since the last restore (a resettable machine's; 0 for another), restoring nothing. */
  dirtyPages(): number {
    this.mem.flush();
    return this.dirtyLog?.count(this.mem) ?? 0;
  }

  /** Ends the machine; its shell goes back to the pool unless KVM itself failed on it. */
  close(): void {
    this.files.closeAll();
    this.events.clear();
    if (this.loop.broken) destroyShell(this.shell);
    else releaseShell(this.shell);
  }
}
