// Loader threads: each boots, initialises and snapshots one program at a time and runs its
// warm-up request on it (loader-worker.ts), so a slow start-up holds a loader, never a thread
// that serves. The build comes back as an ExportedProgram that any thread of this process adopts
// (`new Program(kvm, exported)`), which runs no guest code.
import { Worker } from 'node:worker_threads';
import type { CallOptions, HostCalls } from './instance.ts';
import type { ExportedProgram } from './program.ts';
import type { ProgramOptions, SandboxRequest } from './types.ts';
import { SandboxError } from '../vmm/errors.ts';
import type { FromLoader, LoadStage, ToLoader } from './loader-protocol.ts';

/** The request a new program version answers on its loader before anyone adopts it. */
export interface Warmup extends CallOptions {
  req: SandboxRequest;
}

/** A build that failed in the program (not in the host): `stage` says at which step. */
export class ProgramLoadError extends SandboxError {
  constructor(kind: SandboxError['kind'], message: string, readonly stage: LoadStage) {
    super(kind, message);
    this.name = 'ProgramLoadError';
  }
}

/**
 * A finished build: the program to adopt, and `release()` once every adopter has it, which
 * settles when the loader has closed its copy (or is gone): never rejects.
 */
export interface Build {
  program: ExportedProgram;
  release(): Promise<void>;
}

/**
 * Loaders kept idle between loads. Loads that overlap get further loaders, started on demand (a
 * thread start loads koffi and the sandbox's modules again, tens of milliseconds or more), which
 * end when their load is done.
 */
const IDLE_LOADERS = 1;

/**
 * The worker's entry: compiled, `loader-worker.js` beside this module; run from the TypeScript
 * sources (tests, dev scripts), a plain-JS shim that registers tsx in the worker first.
 */
const workerUrl = new URL(import.meta.url.endsWith('.ts') ? './loader-worker.mjs' : './loader-worker.js', import.meta.url);

interface PendingBuild {
  loader: Worker;
  resolve(program: ExportedProgram): void;
  reject(e: Error): void;
  host?: HostCalls;
}

export class Loaders {
  /** Every loader alive; the idle ones also wait in `idle`. */
  private readonly loaders = new Set<Worker>();
  private readonly idle: Worker[] = [];
  private readonly pending = new Map<number, PendingBuild>();
  /** Releases sent and not yet acknowledged, by build id. */
  private readonly releasing = new Map<number, { loader: Worker; done(): void }>();
  private nextId = 1;
  private closed = false;

  private constructor() {}

  /** Starts the first loader and waits until it is ready. */
  static async start(): Promise<Loaders> {
    const loaders = new Loaders();
    const first = await loaders.spawn();
    loaders.loaders.add(first);
    loaders.idle.push(first);
    return loaders;
  }

  /**
   * Boots `elf` on a loader, runs `warmup` on it (its host calls answered by `warmup.host` on this
   * thread), and returns the program to adopt. Throws, leaving nothing behind, if a step fails.
   */
  async build(elf: Buffer, options: ProgramOptions, warmup?: Warmup): Promise<Build> {
    const loader = await this.take();
    const id = this.nextId++;
    let program: ExportedProgram;
    try {
      const copy = elf.buffer.slice(elf.byteOffset, elf.byteOffset + elf.length) as ArrayBuffer;
      const warm = warmup && { req: warmup.req, phase: warmup.phase, response: warmup.response };
      program = await new Promise<ExportedProgram>((resolve, reject) => {
        this.pending.set(id, { loader, resolve, reject, host: warmup?.host });
        loader.postMessage({ type: 'build', id, elf: copy, options, warmup: warm } satisfies ToLoader, [copy]);
      });
    } catch (err) {
      this.giveBack(loader);
      throw err;
    }
    let released: Promise<void> | undefined;
    return {
      program,
      release: () => {
        released ??= new Promise<void>((done) => {
          if (this.closed || !this.loaders.has(loader)) return done();
          this.releasing.set(id, { loader, done });
          loader.postMessage({ type: 'release', id } satisfies ToLoader);
          this.giveBack(loader);
        });
        return released;
      },
    };
  }

  /** Ends every loader; builds under way fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new SandboxError('internal', 'the loaders were closed'));
    }
    for (const r of this.releasing.values()) r.done();
    this.releasing.clear();
    await Promise.all([...this.loaders].map((w) => w.terminate()));
  }

  private spawn(): Promise<Worker> {
    const worker = new Worker(workerUrl);
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.on('message', (msg: FromLoader) => {
        if (msg.type === 'ready') {
          worker.off('error', reject);
          worker.on('error', (err) => this.died(worker, err));
          resolve(worker);
          return;
        }
        this.onMessage(worker, msg);
      });
      worker.on('exit', (code) => {
        this.releasesEnded(worker);
        const known = this.loaders.delete(worker);
        const i = this.idle.indexOf(worker);
        if (i >= 0) this.idle.splice(i, 1);
        // A loader told to exit is gone from `loaders` already.
        if (!this.closed && known) this.died(worker, new Error(`loader thread exited with code ${code}`));
      });
    });
  }

  /** An idle loader, or a new one when every loader is busy: no load waits for another. */
  private async take(): Promise<Worker> {
    const idle = this.idle.pop();
    if (idle) return idle;
    const loader = await this.spawn();
    if (this.closed) {
      await loader.terminate();
      throw new SandboxError('internal', 'the loaders were closed');
    }
    this.loaders.add(loader);
    return loader;
  }

  /** After a build: the loader waits for the next one, or ends when enough are idle. */
  private giveBack(loader: Worker): void {
    if (this.closed || !this.loaders.has(loader)) return;
    if (this.idle.length < IDLE_LOADERS) {
      this.idle.push(loader);
      return;
    }
    this.loaders.delete(loader);
    loader.postMessage({ type: 'exit' } satisfies ToLoader);
  }

  /** A loader that died takes its builds with it; they fail rather than hang. */
  private died(loader: Worker, err: Error): void {
    process.stderr.write(`tinyedge: loader thread failed: ${err.message}\n`);
    for (const [id, p] of this.pending) {
      if (p.loader !== loader) continue;
      this.pending.delete(id);
      p.reject(new SandboxError('internal', `loader thread failed: ${err.message}`));
    }
  }

  /** A loader that ended (told to, or failed: 'exit' follows 'error') holds nothing any more. */
  private releasesEnded(loader: Worker): void {
    for (const [id, r] of this.releasing) {
      if (r.loader !== loader) continue;
      this.releasing.delete(id);
      r.done();
    }
  }

  private onMessage(loader: Worker, msg: FromLoader): void {
    if (msg.type === 'host') {
      void this.answerHost(loader, msg);
      return;
    }
    if (msg.type === 'ready') return;
    if (msg.type === 'released') {
      this.releasing.get(msg.id)?.done();
      this.releasing.delete(msg.id);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.type === 'failed') p.reject(new ProgramLoadError(msg.kind, msg.message, msg.stage));
    else p.resolve(msg.program);
  }

  private async answerHost(loader: Worker, msg: Extract<FromLoader, { type: 'host' }>): Promise<void> {
    const host = this.pending.get(msg.id)?.host;
    const post = (m: ToLoader): void => loader.postMessage(m);
    try {
      const fn = host?.[msg.op] as ((...args: unknown[]) => unknown) | undefined;
      if (!fn) throw new Error(`host call ${msg.op} is not available`);
      post({ type: 'hostResult', callId: msg.callId, ok: true, value: await fn(...msg.args) });
    } catch (err) {
      post({ type: 'hostResult', callId: msg.callId, ok: false, message: err instanceof Error ? err.message : String(err) });
    }
  }
}
