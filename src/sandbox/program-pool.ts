// The programs a thread serves, run on that very thread: no message, no structured clone, no
// wake-up of another thread for a request that a program answers. Programs are built on loader
// threads (loaders.ts) and adopted here by key — and by the pools of other threads, which adopt
// the same build; each has `concurrency` instances (VMs), made on
// first use, and a request waits for a free one up to the program's queue timeout. A guest call
// holds the thread at most a slice at a time, and the guests of all programs together at most
// one slice per turn of the event loop (turns.ts): a call still running then lets the thread's
// other work through and goes on in a later turn. The instance is reset after its answer has been
// handed back, so the answer goes out first.
import type { CallOptions, CallResult, Instance } from './instance.ts';
import { Kvm } from '../kvm/kvm.ts';
import { type ExportedProgram, Program, type LoadTiming } from './program.ts';
import { type Build, Loaders, type Warmup } from './loaders.ts';
import type { ProgramOptions, SandboxRequest } from './types.ts';
import { SandboxError } from '../vmm/errors.ts';
import { installTimeoutSignalHandler } from '../vmm/run/timer.ts';
import { Turns } from './turns.ts';
import { isMainThread } from 'node:worker_threads';

/** No instance became free within the program's queue timeout. */
export class QueueFullError extends Error {
  constructor(readonly program: string, waitedMs: number) {
    super(`all instances of program ${program} are busy (waited ${waitedMs} ms)`);
    this.name = 'QueueFullError';
  }
}

/** A program's options in a pool: its limits, plus how many requests it runs at once. */
export interface PoolProgramOptions extends ProgramOptions {
  /** Instances: requests of this program running at once on this thread. */
  concurrency: number;
  /** How long a request may wait for a free instance before QueueFullError (503). */
  queueTimeoutMs: number;
}

export interface ProgramPoolOptions {
  /**
   * The longest a guest call holds the thread at a time, and the guest time per turn of the event
   * loop; DEFAULT_SLICE_MS by default. Infinity: a call runs to its end once started.
   */
  sliceMs?: number;
}

/**
 * Chosen by measurement (docs/server.md, "Threading"): each slice's end costs a timer signal and
 * a VM exit (tens of µs on nested KVM, about 1 µs on bare metal), so 2 ms keeps that cost near 1 %
 * of a long call while another connection on the thread waits at most about that long.
 */
export const DEFAULT_SLICE_MS = 2;

interface Entry {
  key: string;
  program: Program;
  options: PoolProgramOptions;
  /** Instances made so far, and those free now. */
  instances: Instance[];
  free: Instance[];
  waiting: Array<{ resolve(instance: Instance): void; timer: ReturnType<typeof setTimeout> }>;
  inflight: number;
  /** Unloaded: takes no new calls; its VMs are closed when the last queued or running call ends. */
  retired: boolean;
  /** Its VMs and snapshot are closed. */
  closed: boolean;
}

export class ProgramPool {
  private readonly programs = new Map<string, Entry>();
  /** Keys being loaded: taken, so that a second load of one key cannot unload the first. */
  private readonly loading = new Set<string>();
  private readonly turns: Turns;
  /** Started by the first load: a pool that only adopts (a shard's) never starts a loader. */
  private loaders: Promise<Loaders> | undefined;
  private closed = false;

  private constructor(private readonly kvm: Kvm, options: ProgramPoolOptions) {
    this.turns = new Turns(options.sliceMs ?? DEFAULT_SLICE_MS);
  }

  /** Opens KVM on this thread; a loader thread starts with the first load. */
  static start(options: ProgramPoolOptions = {}): Promise<ProgramPool> {
    if (isMainThread) installTimeoutSignalHandler();
    return Promise.resolve(new ProgramPool(new Kvm(), options));
  }

  /**
   * Loads `elf` as program `key`: a loader thread boots, initialises and snapshots it and runs
   * `warmup` on it; then this thread adopts the snapshot, and so does `alsoAdopt` (other threads'
   * pools) before the loader lets the build go. Fails, changing nothing here, if a step fails.
   */
  async load(key: string, elf: Buffer, options: PoolProgramOptions, warmup?: Warmup, alsoAdopt?: (program: ExportedProgram) => Promise<void>): Promise<{ timing: LoadTiming; snapshotPages: number }> {
    if (this.programs.has(key) || this.loading.has(key)) throw new Error(`program ${key} is already loaded`);
    this.loading.add(key);
    let build: Build | undefined;
    try {
      // A loader that failed to start is tried again by the next load.
      this.loaders ??= Loaders.start().catch((err: unknown) => {
        this.loaders = undefined;
        throw err;
      });
      build = await (await this.loaders).build(elf, limitsOf(options), warmup);
      if (this.closed) throw new SandboxError('internal', 'the program pool was closed');
      this.adopt(key, build.program, options);
      try {
        await alsoAdopt?.(build.program);
      } catch (err) {
        this.unload(key);
        throw err;
      }
      return { timing: build.program.timing, snapshotPages: build.program.snapshot.pageCount };
    } finally {
      // Adopting duplicated the snapshot's descriptor: the loader's copy can go.
      build?.release();
      this.loading.delete(key);
    }
  }

  /**
   * Takes `program`, built by another thread's pool and not yet released there, as `key`: maps
   * its snapshot (its own descriptor of it); no guest code runs.
   */
  adopt(key: string, program: ExportedProgram, options: PoolProgramOptions): void {
    if (this.programs.has(key)) throw new Error(`program ${key} is already loaded`);
    if (this.closed) throw new SandboxError('internal', 'the program pool was closed');
    this.programs.set(key, { key, program: new Program(this.kvm, program), options, instances: [], free: [], waiting: [], inflight: 0, retired: false, closed: false });
  }

  /**
   * Stops routing new calls to `key`. Calls already queued or running finish on it (a live swap
   * drops nothing); its VMs are closed after the last one.
   */
  unload(key: string): void {
    const entry = this.programs.get(key);
    this.programs.delete(key);
    if (!entry) return;
    entry.retired = true;
    this.closeIfIdle(entry);
  }

  /** True while `key` is loaded and takes calls. */
  has(key: string): boolean {
    return this.programs.has(key);
  }

  /** Calls of `key` running on an instance now (not those waiting for one). */
  inflight(key: string): number {
    return this.programs.get(key)?.inflight ?? 0;
  }

  /**
   * Runs `req` on a free instance of `key`, on this thread, a slice at a time; throws
   * QueueFullError after the queue timeout, or the call's SandboxError.
   */
  async call(key: string, req: SandboxRequest, options: CallOptions = {}): Promise<CallResult> {
    const entry = this.programs.get(key);
    let instance: Instance;
    try {
      if (!entry) throw new SandboxError('internal', `program ${key} is not loaded`);
      instance = await this.acquire(entry);
    } catch (err) {
      // No instance ran it: nothing to reset, and the caller's usage is complete as it is.
      options.usage?.settled?.();
      throw err;
    }
    entry.inflight++;
    try {
      return await instance.call(req, { ...options, turns: this.turns, reset: 'later' });
    } finally {
      // After the caller has the answer (its continuation runs before this turn's immediates):
      // reset, then the instance serves the next request.
      setImmediate(() => {
        entry.inflight--;
        const usage = options.usage;
        try {
          const pages = instance.reset();
          if (usage) usage.dirtyPages += pages;
        } catch (err) {
          // KVM failed on this VM: it is dropped, and the next request gets a new one.
          process.stderr.write(`tinyedge: dropping an instance of ${entry.key} whose reset failed: ${err instanceof Error ? err.message : String(err)}\n`);
          this.drop(entry, instance);
          return;
        } finally {
          usage?.settled?.();
        }
        this.release(entry, instance);
      });
    }
  }

  /** Ends the loaders and closes every VM not in a call; those in a call close when it ends. */
  async close(): Promise<void> {
    this.closed = true;
    for (const key of [...this.programs.keys()]) this.unload(key);
    if (this.loaders) await (await this.loaders).close();
    // VMs still in a call keep their own descriptors: closing /dev/kvm does not end them.
    this.kvm.close();
  }

  private acquire(entry: Entry): Promise<Instance> {
    const free = entry.free.pop();
    if (free) return Promise.resolve(free);
    if (entry.instances.length < Math.max(1, entry.options.concurrency)) {
      const made = entry.program.instance();
      entry.instances.push(made);
      return Promise.resolve(made);
    }
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        timer: setTimeout(() => {
          entry.waiting.splice(entry.waiting.indexOf(waiter), 1);
          reject(new QueueFullError(entry.key, Date.now() - started));
          this.closeIfIdle(entry);
        }, entry.options.queueTimeoutMs),
      };
      entry.waiting.push(waiter);
    });
  }

  private release(entry: Entry, instance: Instance): void {
    const next = entry.waiting.shift();
    if (next) {
      clearTimeout(next.timer);
      next.resolve(instance);
      return;
    }
    entry.free.push(instance);
    this.closeIfIdle(entry);
  }

  /** Closes a broken instance; a request waiting for one gets a new instance in its place. */
  private drop(entry: Entry, instance: Instance): void {
    entry.instances.splice(entry.instances.indexOf(instance), 1);
    instance.close();
    if (entry.waiting.length > 0) {
      try {
        const made = entry.program.instance();
        entry.instances.push(made);
        const next = entry.waiting.shift()!;
        clearTimeout(next.timer);
        next.resolve(made);
      } catch {
        // No new VM either: the waiting requests get a 503 at their queue timeout.
      }
    }
    this.closeIfIdle(entry);
  }

  private closeIfIdle(entry: Entry): void {
    if (!entry.retired || entry.closed || entry.inflight > 0 || entry.waiting.length > 0) return;
    entry.closed = true;
    for (const instance of entry.instances) instance.close();
    entry.instances.length = 0;
    entry.free.length = 0;
    entry.program.close();
  }
}

/** What a loader needs of the options (the pool's own fields stay here). */
function limitsOf(options: PoolProgramOptions): ProgramOptions {
  const { concurrency: _c, queueTimeoutMs: _q, ...rest } = options;
  return rest;
}
