// The HTTP thread's side of the VM workers: starts the worker threads, loads programs (on a
// loader thread, then adopted by every serving worker), and runs requests on an instance slot,
// waiting for a free slot up to a bound. Each program has `concurrency` slots spread over the
// workers; a slot is one instance (one VM).
import { Worker } from 'node:worker_threads';
import type { CallOptions, CallResult, ExportedProgram, HostCalls, LoadTiming } from './program.ts';
import type { ProgramOptions, SandboxRequest } from './types.ts';
import { SandboxError } from '../vmm/errors.ts';
import { installTimeoutSignalHandler } from '../vmm/run/timer.ts';
import type { FromWorker, ToWorker } from './pool-protocol.ts';

/** No instance became free within the program's queue timeout. */
export class QueueFullError extends Error {
  constructor(readonly program: string, waitedMs: number) {
    super(`all instances of program ${program} are busy (waited ${waitedMs} ms)`);
    this.name = 'QueueFullError';
  }
}

/** A program's options on the VM worker pool: its limits, plus how many requests it runs at once. */
export interface PoolProgramOptions extends ProgramOptions {
  /** Instances (concurrent requests) across all workers. */
  concurrency: number;
  /** How long a request may wait for a free instance before 503. */
  queueTimeoutMs: number;
}

interface Pending {
  worker: Worker;
  resolve(v: unknown): void;
  reject(e: Error): void;
  host?: HostCalls;
}

interface Slots {
  key: string;
  options: PoolProgramOptions;
  free: number[];
  waiting: Array<{ resolve(slot: number): void; timer: ReturnType<typeof setTimeout> }>;
  inflight: number;
  /** Unloaded: takes no new calls; the workers drop it when the last queued or running one ends. */
  retired: boolean;
}

/** The request a new program version answers on its loader before it is adopted. */
export interface Warmup extends CallOptions {
  req: SandboxRequest;
}

/**
 * Loader threads kept idle between loads. Loads that overlap get further loaders, started on
 * demand (a thread start loads koffi and the sandbox's modules again, tens of milliseconds or more), which
 * end when their load is done.
 */
const IDLE_LOADERS = 1;

/**
 * The worker's entry: compiled, `pool-worker.js` beside this module; run from the TypeScript
 * sources (tests, dev scripts), a plain-JS shim that registers tsx in the worker first.
 */
const workerUrl = new URL(import.meta.url.endsWith('.ts') ? './pool-worker.mjs' : './pool-worker.js', import.meta.url);

/**
 * The VM worker pool: threads that own the VMs and run guest code, so that a running guest never
 * holds the thread that calls it. Programs are loaded by key (`load`), called on a free instance
 * (`call`, waiting up to the program's queue timeout) and unloaded without dropping calls.
 */
export class VmWorkers {
  private readonly workers: Worker[] = [];
  /** Every loader thread alive; the idle ones also wait in `idleLoaders`. */
  private readonly loaders = new Set<Worker>();
  private readonly idleLoaders: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly programs = new Map<string, Slots>();
  /** Keys being loaded: taken, so that a second load of one key cannot unload the first. */
  private readonly loading = new Set<string>();
  private nextId = 1;
  private closed = false;

  private constructor() {}

  /** Starts `count` serving worker threads and a loader, and waits until each is ready. */
  static async start(count: number): Promise<VmWorkers> {
    installTimeoutSignalHandler();
    const pool = new VmWorkers();
    const [loader, ...workers] = await Promise.all(Array.from({ length: Math.max(1, count) + 1 }, () => pool.spawn()));
    pool.workers.push(...workers);
    pool.loaders.add(loader!);
    pool.idleLoaders.push(loader!);
    return pool;
  }

  /** Serving worker threads (loaders not counted). */
  get size(): number {
    return this.workers.length;
  }

  private spawn(): Promise<Worker> {
    const worker = new Worker(workerUrl);
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.on('message', (msg: FromWorker) => {
        if (msg.type === 'ready') {
          worker.off('error', reject);
          worker.on('error', (err) => this.workerDied(worker, err));
          resolve(worker);
          return;
        }
        this.onMessage(worker, msg);
      });
      worker.on('exit', (code) => {
        const wasLoader = this.loaders.delete(worker);
        const idle = this.idleLoaders.indexOf(worker);
        if (idle >= 0) this.idleLoaders.splice(idle, 1);
        // A loader told to exit is gone from `loaders` already.
        if (!this.closed && (wasLoader || this.workers.includes(worker))) this.workerDied(worker, new Error(`VM worker exited with code ${code}`));
      });
    });
  }

  /** An idle loader, or a new one when every loader is busy: no load waits for another. */
  private async takeLoader(): Promise<Worker> {
    const idle = this.idleLoaders.pop();
    if (idle) return idle;
    const loader = await this.spawn();
    if (this.closed) {
      await loader.terminate();
      throw new SandboxError('internal', 'the VM workers were closed');
    }
    this.loaders.add(loader);
    return loader;
  }

  /** After a load: the loader waits for the next one, or ends when enough are idle. */
  private returnLoader(loader: Worker): void {
    if (this.closed || !this.loaders.has(loader)) return;
    if (this.idleLoaders.length < IDLE_LOADERS) {
      this.idleLoaders.push(loader);
      return;
    }
    this.loaders.delete(loader);
    loader.postMessage({ type: 'exit' } satisfies ToWorker);
  }

  /** A worker that died takes its in-flight requests with it; they fail rather than hang. */
  private workerDied(worker: Worker, err: Error): void {
    process.stderr.write(`tinyedge: VM worker failed: ${err.message}\n`);
    for (const [id, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(id);
      p.reject(new SandboxError('internal', `VM worker failed: ${err.message}`));
    }
  }

  private onMessage(worker: Worker, msg: FromWorker): void {
    if (msg.type === 'host') {
      void this.answerHost(worker, msg);
      return;
    }
    if (msg.type === 'ready') return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.type === 'failed') p.reject(new SandboxError(msg.kind, msg.message));
    else if (msg.type === 'built') p.resolve(msg.program);
    else if (msg.type === 'adopted') p.resolve(undefined);
    else if (msg.type === 'result') p.resolve({ ...msg.result, body: Buffer.from(msg.result.body.buffer, msg.result.body.byteOffset, msg.result.body.length) });
  }

  private async answerHost(worker: Worker, msg: Extract<FromWorker, { type: 'host' }>): Promise<void> {
    const host = this.pending.get(msg.id)?.host;
    const post = (m: ToWorker): void => worker.postMessage(m);
    try {
      const fn = host?.[msg.op] as ((...args: unknown[]) => unknown) | undefined;
      if (!fn) throw new Error(`host call ${msg.op} is not available`);
      post({ type: 'hostResult', callId: msg.callId, ok: true, value: await fn(...msg.args) });
    } catch (err) {
      post({ type: 'hostResult', callId: msg.callId, ok: false, message: err instanceof Error ? err.message : String(err) });
    }
  }

  private request<T>(worker: Worker, msg: ToWorker, transfer: ArrayBuffer[] = [], host?: HostCalls): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.set((msg as { id: number }).id, { worker, resolve: resolve as (v: unknown) => void, reject, host });
      worker.postMessage(msg, transfer);
    });
  }

  /**
   * Loads `elf` as program `key`. A loader thread boots, initialises and snapshots it and runs
   * `warmup` on it (a slow start-up holds that thread only, never the serving workers); then
   * every serving worker adopts the snapshot, which runs no guest code. Fails, changing nothing,
   * if any step fails.
   */
  async load(key: string, elf: Buffer, options: PoolProgramOptions, warmup?: Warmup): Promise<{ timing: LoadTiming; snapshotPages: number }> {
    if (this.programs.has(key) || this.loading.has(key)) throw new Error(`program ${key} is already loaded`);
    this.loading.add(key);
    try {
      const loader = await this.takeLoader();
      const buildId = this.nextId++;
      let program: ExportedProgram;
      try {
        const copy = elf.buffer.slice(elf.byteOffset, elf.byteOffset + elf.length) as ArrayBuffer;
        const warm = warmup && { req: warmup.req, phase: warmup.phase, response: warmup.response };
        program = await this.request<ExportedProgram>(loader, { type: 'build', id: buildId, elf: copy, options: stripPool(options), warmup: warm }, [copy], warmup?.host);
      } catch (err) {
        this.returnLoader(loader);
        throw err;
      }
      try {
        await this.adoptEverywhere(key, program);
      } finally {
        // Every adopter holds its own descriptor of the snapshot by now: the loader's can go.
        loader.postMessage({ type: 'release', id: buildId } satisfies ToWorker);
        this.returnLoader(loader);
      }
      const concurrency = Math.max(1, options.concurrency);
      this.programs.set(key, { key, options, free: Array.from({ length: concurrency }, (_, i) => i), waiting: [], inflight: 0, retired: false });
      return { timing: program.timing, snapshotPages: program.snapshot.pageCount };
    } finally {
      this.loading.delete(key);
    }
  }

  /** Every serving worker adopts `program` as `key`, or none keeps it. */
  private async adoptEverywhere(key: string, program: ExportedProgram): Promise<void> {
    const results = await Promise.allSettled(this.workers.map((w) => this.request<void>(w, { type: 'adopt', id: this.nextId++, key, program })));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      for (const w of this.workers) w.postMessage({ type: 'unload', key } satisfies ToWorker);
      throw failed.reason;
    }
  }

  /**
   * Stops routing new calls to `key`. Calls already queued or running finish on it (a live swap
   * drops nothing); its VMs are closed after the last one.
   */
  unload(key: string): void {
    const slots = this.programs.get(key);
    this.programs.delete(key);
    if (!slots) return;
    slots.retired = true;
    this.dropIfIdle(slots);
  }

  private dropIfIdle(slots: Slots): void {
    if (!slots.retired || slots.inflight > 0 || slots.waiting.length > 0) return;
    for (const w of this.workers) w.postMessage({ type: 'unload', key: slots.key } satisfies ToWorker);
  }

  /** True while `key` is loaded and takes calls. */
  has(key: string): boolean {
    return this.programs.has(key);
  }

  /** Calls of `key` running on an instance now (not those waiting for one). */
  inflight(key: string): number {
    return this.programs.get(key)?.inflight ?? 0;
  }

  /** Runs `req` on a free instance of `key`; throws QueueFullError after the queue timeout. */
  async call(key: string, req: SandboxRequest, options: CallOptions = {}): Promise<CallResult> {
    const slots = this.programs.get(key);
    if (!slots) throw new SandboxError('internal', `program ${key} is not loaded`);
    const slot = await this.acquire(slots);
    slots.inflight++;
    try {
      const worker = this.workers[slot % this.workers.length]!;
      const id = this.nextId++;
      const body = req.body.length > 0 ? (req.body.buffer.slice(req.body.byteOffset, req.body.byteOffset + req.body.length) as ArrayBuffer) : undefined;
      const msg: ToWorker = { type: 'call', id, key, slot, req: { ...req, body: body ? new Uint8Array(body) : new Uint8Array(0) }, phase: options.phase, response: options.response };
      return await this.request<CallResult>(worker, msg, body ? [body] : [], options.host);
    } finally {
      slots.inflight--;
      this.releaseSlot(slots, slot);
      this.dropIfIdle(slots);
    }
  }

  private acquire(slots: Slots): Promise<number> {
    const slot = slots.free.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        timer: setTimeout(() => {
          slots.waiting.splice(slots.waiting.indexOf(waiter), 1);
          reject(new QueueFullError(slots.key, Date.now() - started));
          this.dropIfIdle(slots);
        }, slots.options.queueTimeoutMs),
      };
      slots.waiting.push(waiter);
    });
  }

  private releaseSlot(slots: Slots, slot: number): void {
    const next = slots.waiting.shift();
    if (next) {
      clearTimeout(next.timer);
      next.resolve(slot);
    } else slots.free.push(slot);
  }

  /** Ends every thread; loads and calls still under way fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new SandboxError('internal', 'the VM workers were closed'));
    }
    await Promise.all([...this.workers, ...this.loaders].map((w) => w.terminate()));
  }
}

/** What the worker needs of the options (the pool's own fields stay here). */
function stripPool(options: PoolProgramOptions): ProgramOptions {
  const { concurrency: _c, queueTimeoutMs: _q, ...rest } = options;
  return rest;
}
