// The programs a thread serves, run on that very thread: no message, no structured clone, no
// wake-up of another thread for a request that a program answers. Programs are built on loader
// threads (loaders.ts) and adopted here by key — and by the pools of other threads, which adopt
// the same build; each has `concurrency` instances (VMs), made on
// first use, and a request waits for a free one up to the program's queue timeout. A guest call
// holds the thread at most a slice at a time, and the guests of all programs together at most
// one slice per turn of the event loop (turns.ts): a call still running then lets the thread's
// other work through and goes on in a later turn. The instance is reset after its answer has been
// handed back, so the answer goes out first. Requests of a persistent program that wait together
// for an instance go to it together, as one batch answered with one VM exit (Instance.callBatch).
import { type BatchOutcome, callOptions, type CallOptions, type CallResult, type Instance } from './instance.ts';
import { Kvm } from '../kvm/kvm.ts';
import { type ExportedProgram, Program, type LoadTiming } from './program.ts';
import { type Build, Loaders, type Warmup } from './loaders.ts';
import type { ProgramOptions, SandboxRequest } from './types.ts';
import { SandboxError } from '../vmm/errors.ts';
import { installTimeoutSignalHandler } from '../vmm/run/timer.ts';
import { Turns } from './turns.ts';
import { atTurnEnd } from './turn-end.ts';
import { MAX_BATCH } from './batch-abi.ts';
import { BATCH_ABI_VERSION } from './abi-layout.ts';
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
  /** Most requests in one batch (persistent programs of ABI version 2), 1 to MAX_BATCH; default MAX_BATCH. 1: no batches. */
  maxBatch?: number;
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

/** A call waiting for an instance: its request, and how its caller hears the outcome. */
interface Waiter {
  req: SandboxRequest;
  options: CallOptions;
  resolve(result: CallResult): void;
  reject(err: unknown): void;
  queuedAt: number;
  /** When its queue timeout (a 503) ends its wait for an instance (Date.now()); Infinity: it has none. */
  expiresAt: number;
}

interface Entry {
  key: string;
  program: Program;
  options: PoolProgramOptions;
  /** Instances made so far, and those free now. */
  instances: Instance[];
  free: Instance[];
  /** Calls waiting for an instance, oldest first (so their queue timeouts end in order too). */
  waiting: Waiter[];
  /** One timer for the whole queue, armed for the oldest wait that has a timeout (`sweep`). */
  queueTimer: ReturnType<typeof setTimeout> | undefined;
  /** Requests running on an instance now. */
  inflight: number;
  /**
   * Most requests the next batch may take (persistent programs of ABI version 2): doubled after a
   * batch whose guest ran within one slice, halved after one a slice's end interrupted, within 2
   * and the program's maxBatch.
   */
  batchLimit: number;
  /** Batches of more than one request run so far. */
  batches: number;
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
  /**
   * This thread's /dev/kvm, opened by the first program it loads or adopts (`openKvm`): a pool whose server has no
   * program (a cache in front of origins) runs on a host without KVM, and a program's load there
   * fails with KvmError saying why.
   */
  private kvm: Kvm | undefined;

  private constructor(options: ProgramPoolOptions) {
    this.turns = new Turns(options.sliceMs ?? DEFAULT_SLICE_MS);
  }

  /** This thread's /dev/kvm, opened on the first call (KvmError where it is missing or unfit). */
  private openKvm(): Kvm {
    return (this.kvm ??= new Kvm());
  }

  /** A pool on this thread; KVM opens with the first program adopted, a loader thread starts with the first load. */
  static start(options: ProgramPoolOptions = {}): Promise<ProgramPool> {
    if (isMainThread) installTimeoutSignalHandler();
    return Promise.resolve(new ProgramPool(options));
  }

  /**
   * Loads `elf` as program `key`: a loader thread boots, initialises and snapshots it and runs
   * `warmup` on it; then this thread adopts the snapshot, and so does `alsoAdopt` (other threads'
   * pools) before the loader lets the build go. Settles once the loader holds nothing of the
   * build. Fails, changing nothing here, if a step fails.
   */
  async load(key: string, elf: Buffer, options: PoolProgramOptions, warmup?: Warmup, alsoAdopt?: (program: ExportedProgram) => Promise<void>): Promise<{ timing: LoadTiming; snapshotPages: number }> {
    if (this.programs.has(key) || this.loading.has(key)) throw new Error(`program ${key} is already loaded`);
    this.loading.add(key);
    let build: Build | undefined;
    try {
      // KVM missing or unfit fails the load here, with KvmError's own words, before a loader starts.
      this.openKvm();
      // A loader that failed to start is tried again by the next load.
      this.loaders ??= Loaders.start().catch((err: unknown) => {
        this.loaders = undefined;
        throw err;
      });
      build = await (await this.loaders).build(elf, limitsOf(options), warmup);
      if (this.closed) throw new SandboxError('internal', 'the program pool was closed');
      // The previous version's state went into the build: the pool need not keep it.
      const { liveRestore: _state, ...kept } = options;
      this.adopt(key, build.program, kept);
      try {
        await alsoAdopt?.(build.program);
      } catch (err) {
        this.unload(key);
        throw err;
      }
      return { timing: build.program.timing, snapshotPages: build.program.snapshot.pageCount };
    } finally {
      // Adopting duplicated the snapshot's descriptor: the loader's copy can go.
      this.loading.delete(key);
      await build?.release();
    }
  }

  /**
   * Takes `program`, built by another thread's pool and not yet released there, as `key`: maps
   * its snapshot (its own descriptor of it); no guest code runs.
   */
  adopt(key: string, program: ExportedProgram, options: PoolProgramOptions): void {
    if (this.programs.has(key)) throw new Error(`program ${key} is already loaded`);
    if (this.closed) throw new SandboxError('internal', 'the program pool was closed');
    this.programs.set(key, { key, program: new Program(this.openKvm(), program), options, instances: [], free: [], waiting: [], queueTimer: undefined, inflight: 0, batchLimit: maxBatchOf(options), batches: 0, retired: false, closed: false });
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

  /**
   * VM exits of `key`'s instances so far (all, and of them the timer's), and the batches of more
   * than one request its calls ran in: what a benchmark divides by its requests.
   */
  counters(key: string): { exits: number; timerExits: number; batches: number } {
    const entry = this.programs.get(key);
    let exits = 0;
    let timerExits = 0;
    for (const i of entry?.instances ?? []) {
      exits += i.exits.all;
      timerExits += i.exits.timer;
    }
    return { exits, timerExits, batches: entry?.batches ?? 0 };
  }

  /** Calls of `key` running on an instance now (not those waiting for one). */
  inflight(key: string): number {
    return this.programs.get(key)?.inflight ?? 0;
  }

  /**
   * Runs `req` on a free instance of `key`, on this thread, a slice at a time; throws
   * QueueFullError after the queue timeout, or the call's SandboxError. Requests of a persistent
   * program (ABI version 2) that wait together go to a free instance together, as one batch
   * (`Instance.callBatch`); a request that finds an instance free never waits for company.
   */
  call(key: string, req: SandboxRequest, options: CallOptions = {}): Promise<CallResult> {
    const entry = this.programs.get(key);
    if (!entry) {
      // No instance ran it: the caller's usage is complete as it is.
      options.usage?.settled?.();
      return Promise.reject(new SandboxError('internal', `program ${key} is not loaded`));
    }
    return new Promise((resolve, reject) => {
      // The options in one shape whoever made them (callOptions): read on every step of the call.
      this.enqueue(entry, { req, options: callOptions(options), resolve, reject, queuedAt: Date.now(), expiresAt: Infinity }, false);
      this.dispatch(entry);
    });
  }

  /**
   * The state a persistent program of ABI version 2 hands its next version (te_on_live_update),
   * asked of one of `key`'s instances as a request of its own; undefined when the program is not
   * one or keeps no state (it answers 204). Throws as a call does when the program fails.
   */
  async liveUpdateState(key: string): Promise<Uint8Array | undefined> {
    const entry = this.programs.get(key);
    if (!entry || !batchable(entry)) return undefined;
    const r = await this.call(key, { method: 'GET', url: '/', headers: [['Host', 'warmup.invalid'], ['X-Tinyedge-Warmup', '1']], body: new Uint8Array(0) }, { liveUpdate: true });
    return r.status === 200 ? new Uint8Array(r.body.buffer, r.body.byteOffset, r.body.byteLength) : undefined;
  }

  /** Ends the loaders and closes every VM not in a call; those in a call close when it ends. */
  async close(): Promise<void> {
    this.closed = true;
    for (const key of [...this.programs.keys()]) this.unload(key);
    if (this.loaders) await (await this.loaders).close();
    // VMs still in a call keep their own descriptors: closing /dev/kvm does not end them.
    this.kvm?.close();
  }

  /**
   * Puts `waiter` in the queue with its queue timeout; or, given back by a batch that did not
   * answer it, at the queue's head without one: it was admitted, and runs on the next instance.
   */
  private enqueue(entry: Entry, waiter: Waiter, givenBack: boolean): void {
    if (givenBack) {
      waiter.expiresAt = Infinity;
      entry.waiting.unshift(waiter);
      return;
    }
    if (entry.waiting.length === 0 && (entry.free.length > 0 || entry.instances.length < Math.max(1, entry.options.concurrency))) {
      // An instance takes it in the dispatch that follows: no queue, no queue timeout.
      entry.waiting.push(waiter);
      return;
    }
    waiter.expiresAt = waiter.queuedAt + entry.options.queueTimeoutMs;
    entry.waiting.push(waiter);
    // Waits end in the order they began: a timer armed for an older one comes first.
    if (entry.queueTimer === undefined) this.armQueueTimer(entry, waiter.expiresAt);
  }

  private armQueueTimer(entry: Entry, at: number): void {
    entry.queueTimer = setTimeout(() => this.sweep(entry), Math.max(1, at - Date.now()));
    // The calls running meanwhile keep the thread alive; this timer alone need not.
    entry.queueTimer.unref();
  }

  /**
   * Ends the waits whose queue timeout has passed (QueueFullError), and arms the queue's timer for
   * the next. One timer per queue rather than one per waiting call: under load most calls wait,
   * and each wait's own timer was made and cleared for nothing.
   */
  private sweep(entry: Entry): void {
    entry.queueTimer = undefined;
    const now = Date.now();
    const { waiting } = entry;
    for (let i = 0; i < waiting.length; i++) {
      const waiter = waiting[i]!;
      // Calls given back by a batch (at the head) have no timeout.
      if (waiter.expiresAt === Infinity) continue;
      if (waiter.expiresAt > now) {
        this.armQueueTimer(entry, waiter.expiresAt);
        break;
      }
      waiting.splice(i--, 1);
      waiter.options.usage?.settled?.();
      waiter.reject(new QueueFullError(entry.key, now - waiter.queuedAt));
    }
    this.closeIfIdle(entry);
  }

  /** Starts waiting calls on free instances (making instances up to `concurrency`), oldest first. */
  private dispatch(entry: Entry): void {
    while (entry.waiting.length > 0) {
      let instance = entry.free.pop();
      if (!instance && entry.instances.length < Math.max(1, entry.options.concurrency)) {
        try {
          instance = entry.program.instance();
        } catch (err) {
          // No VM to be had: the oldest call hears why; the others wait for an instance to free up.
          const waiter = entry.waiting.shift()!;
          waiter.options.usage?.settled?.();
          waiter.reject(err);
          continue;
        }
        entry.instances.push(instance);
      }
      if (!instance) return;
      const batch = entry.waiting.splice(0, batchable(entry) ? Math.min(entry.waiting.length, entry.batchLimit) : 1);
      void this.run(entry, instance, batch);
    }
  }

  /** Runs `batch` on `instance`, answers each caller, and gives the instance back once reset. */
  private async run(entry: Entry, instance: Instance, batch: Waiter[]): Promise<void> {
    entry.inflight += batch.length;
    const preempted = instance.preemptions;
    let outcomes: BatchOutcome[];
    try {
      // A lone request (an ephemeral program's, always) skips the batch's bookkeeping.
      outcomes = batch.length === 1 ? [await instance.callOne(batch[0]!, this.turns, 'later')] : await instance.callBatch(batch, this.turns, 'later');
    } catch (err) {
      // Not the program's doing (callBatch answers for those): KVM failed on this VM. Its calls
      // hear why, and it is dropped like a VM whose reset failed.
      outcomes = batch.map(() => ({ kind: 'failed', error: err }));
      instance.broken = true;
    }
    if (batch.length > 1) {
      entry.batches++;
      // Adapt to how long batches run: one whose guest ran past a slice was too long for this
      // thread. The guest's time, not the batch's wall time: a collection, a wait for the turn's
      // budget or a slow host call is no reason for smaller batches, which only make the requests
      // left out wait for another turn.
      const within = instance.preemptions === preempted;
      // Never below 2: only a batch of more than one adapts the bound, so at 1 it would stay there
      // for good after a stall (batching off until a reload).
      entry.batchLimit = Math.max(Math.min(2, maxBatchOf(entry.options)), Math.min(maxBatchOf(entry.options), within ? entry.batchLimit * 2 : Math.floor(entry.batchLimit / 2)));
    }
    const back: Waiter[] = [];
    const ran: Waiter[] = [];
    outcomes.forEach((o, i) => {
      const w = batch[i]!;
      if (o.kind === 'answered') w.resolve(o.result);
      else if (o.kind === 'failed') w.reject(o.error);
      else back.push(w);
      if (o.kind !== 'again') ran.push(w);
    });
    // The callers' usage is complete once the instance is reset (its dirty pages counted to the first).
    const settle = (pages: number): void => {
      const first = ran[0]?.options.usage;
      if (first) first.dirtyPages += pages;
      for (const w of ran) w.options.usage?.settled?.();
    };
    // Not answered in this batch: they go first in the queue, in their order. A program that
    // answers only part of its batches (large answers, or a program that will not) gets smaller ones.
    if (back.length > 0) entry.batchLimit = Math.max(Math.min(2, maxBatchOf(entry.options)), Math.min(entry.batchLimit, 2 * (batch.length - back.length)));
    for (const w of back.reverse()) this.enqueue(entry, w, true);
    // The instance serves the next requests once reset. One to reset waits for the turn's end,
    // after the answers have left (turn-end.ts): the reset is never on their path. One with
    // nothing to reset (a persistent program's) serves at once, as its callers' answers are held
    // to leave at the turn's end anyway; or, when it takes batches, at the turn's end too, before
    // the answers leave, so that the requests this turn brought go into its next batch together.
    const giveBack = (): void => {
      entry.inflight -= batch.length;
      try {
        if (instance.broken) throw new Error('its last call failed in the host');
        settle(instance.reset());
      } catch (err) {
        settle(0);
        // KVM failed on this VM: it is dropped, and the next request gets a new one.
        process.stderr.write(`tinyedge: dropping an instance of ${entry.key} whose reset failed: ${err instanceof Error ? err.message : String(err)}\n`);
        entry.instances.splice(entry.instances.indexOf(instance), 1);
        instance.close();
        this.dispatch(entry);
        this.closeIfIdle(entry);
        return;
      }
      entry.free.push(instance);
      this.dispatch(entry);
      this.closeIfIdle(entry);
    };
    if (instance.resetPending || instance.broken) atTurnEnd(giveBack, 'then');
    else if (batchable(entry) && maxBatchOf(entry.options) > 1) atTurnEnd(giveBack, 'first');
    else giveBack();
  }

  private closeIfIdle(entry: Entry): void {
    if (!entry.retired || entry.closed || entry.inflight > 0 || entry.waiting.length > 0) return;
    entry.closed = true;
    clearTimeout(entry.queueTimer);
    for (const instance of entry.instances) instance.close();
    entry.instances.length = 0;
    entry.free.length = 0;
    entry.program.close();
  }
}

/** The bound a program's batches start from and never pass. */
function maxBatchOf(options: PoolProgramOptions): number {
  const n = options.maxBatch ?? MAX_BATCH;
  return Number.isSafeInteger(n) ? Math.max(1, Math.min(MAX_BATCH, n)) : MAX_BATCH;
}

/** A persistent program of ABI version 2 answers several requests per entry; any other, one. */
function batchable(entry: Entry): boolean {
  const { limits, abiVersion } = entry.program;
  return abiVersion >= BATCH_ABI_VERSION && limits.mode === 'sdk' && limits.lifecycle === 'persistent';
}

/** What a loader needs of the options (the pool's own fields stay here). */
function limitsOf(options: PoolProgramOptions): ProgramOptions {
  const { concurrency: _c, queueTimeoutMs: _q, maxBatch: _b, ...rest } = options;
  return rest;
}
