// The main thread's side of the other shards (shard 0 is the main thread itself): starts their
// threads, sends each command to all of them and waits until every one has applied it (an admin
// call answers only then), answers their key-value calls from the stores it owns, and writes their
// log records to its logger.
import { Worker } from 'node:worker_threads';
import type { KvStore } from './kv.ts';
import type { EncodedBatch } from './record-batch.ts';
import type { FailureBundle } from './failure-bundles.ts';
import type { FromShard, ShardAnswers, ShardCommand, ShardInit, ToShard } from './shard-protocol.ts';
import type { Logger } from './tenant.ts';

/**
 * The worker's entry: compiled, `shard-worker.js` beside this module; run from the TypeScript
 * sources (tests, dev scripts), a plain-JS shim that registers tsx in the worker first.
 */
const workerUrl = new URL(import.meta.url.endsWith('.ts') ? './shard-worker.mjs' : './shard-worker.js', import.meta.url);

interface Pending {
  worker: Worker;
  resolve(v: unknown): void;
  reject(e: Error): void;
}

export class RemoteShards {
  private readonly pending = new Map<number, Pending>();
  /** Shards whose thread ended: their connections and cache went with them; commands skip them. */
  private readonly gone = new Set<Worker>();
  private nextId = 1;
  /** Set when `close` begins: from then on a command is refused, never sent to a thread that may end before it answers. */
  private closing: Promise<void> | undefined;

  /** Where the shards' batches of request records go (the live log). */
  onRecords: (batch: EncodedBatch) => void = () => undefined;
  /** Where the shards' failure bundles go (the main thread's store). */
  onBundle: (bundle: FailureBundle) => void = () => undefined;

  private constructor(private readonly workers: Worker[], private readonly kv: (tenant: string) => KvStore | undefined, private readonly log: Logger) {}

  /** Starts shards 1 … count on threads of their own and waits until each is ready. */
  static async start(count: number, init: Omit<ShardInit, 'index'>, kv: (tenant: string) => KvStore | undefined, log: Logger): Promise<RemoteShards> {
    const workers: Worker[] = [];
    const shards = new RemoteShards(workers, kv, log);
    try {
      for (let i = 1; i <= count; i++) workers.push(await shards.spawn({ ...init, index: i }));
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw err;
    }
    return shards;
  }

  get count(): number {
    return this.workers.length;
  }

  /** Runs `command` on every live shard; resolves with their answers once all have applied it. */
  all<C extends ShardCommand>(command: C): Promise<Array<ShardAnswers[C['type']]>> {
    return Promise.all(this.workers.filter((w) => !this.gone.has(w)).map((w) => this.ask<C>(w, command)));
  }

  /** Runs `command` on shard `index` (1-based, as shards are numbered). */
  one<C extends ShardCommand>(index: number, command: C): Promise<ShardAnswers[C['type']]> {
    const worker = this.workers[index - 1];
    if (!worker) throw new RangeError(`no shard ${index}`);
    return this.ask<C>(worker, command);
  }

  /** Closes every shard's front, runtimes and VMs, then their threads end. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled(this.workers.filter((w) => !this.gone.has(w)).map((w) => this.send(w, { type: 'close' })));
      await Promise.all(this.workers.map((w) => w.terminate()));
    })();
    return this.closing;
  }

  private ask<C extends ShardCommand>(worker: Worker, command: C): Promise<ShardAnswers[C['type']]> {
    // A shard's thread ends once it has closed: a command that reached it after its 'close' would wait for ever.
    if (this.closing !== undefined) return Promise.reject(new Error('the shards are closed'));
    if (this.gone.has(worker)) return Promise.reject(new Error(`shard ${this.workers.indexOf(worker) + 1} is gone`));
    return this.send(worker, command);
  }

  private send<C extends ShardCommand>(worker: Worker, command: C): Promise<ShardAnswers[C['type']]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { worker, resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ type: 'command', id, command } satisfies ToShard);
    });
  }

  private spawn(init: ShardInit): Promise<Worker> {
    const worker = new Worker(workerUrl, { workerData: init });
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.on('message', (msg: FromShard) => {
        if (msg.type === 'ready') {
          worker.off('error', reject);
          worker.on('error', (err) => this.died(worker, init.index, err));
          resolve(worker);
          return;
        }
        this.onMessage(worker, msg);
      });
      worker.on('exit', (code) => {
        if (this.closing === undefined) this.died(worker, init.index, new Error(`exited with code ${code}`));
        // Whatever it had not answered when it ended (the server stopping) is refused, not left waiting.
        else this.refusePending(worker, new Error('the shards are closed'));
      });
    });
  }

  /** A shard that died fails what was asked of it; its connections are gone with it. */
  private died(worker: Worker, index: number, err: Error): void {
    this.gone.add(worker);
    this.log.warn({ shard: index }, `shard ${index} failed: ${err.message}; the other shards go on serving`);
    this.refusePending(worker, new Error(`shard ${index} failed: ${err.message}`));
  }

  private refusePending(worker: Worker, err: Error): void {
    for (const [id, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(id);
      p.reject(err);
    }
  }

  private onMessage(worker: Worker, msg: FromShard): void {
    switch (msg.type) {
      case 'done':
      case 'failed': {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.type === 'done') p?.resolve(msg.value);
        else p?.reject(new Error(msg.message));
        return;
      }
      case 'log':
        this.log[msg.level](msg.details, msg.message);
        return;
      case 'kv':
        this.answerKv(worker, msg);
        return;
      case 'records':
        this.onRecords(msg.batch);
        return;
      case 'bundle':
        this.onBundle(msg.bundle);
        return;
    }
  }

  private answerKv(worker: Worker, msg: Extract<FromShard, { type: 'kv' }>): void {
    const store = this.kv(msg.tenant);
    const post = (m: ToShard): void => worker.postMessage(m);
    if (!store) {
      post({ type: 'kvResult', callId: msg.callId, ok: false, message: `no key-value store for tenant ${msg.tenant}` });
      return;
    }
    // One synchronous step on this thread: an increment or compare-and-set from one shard cannot
    // interleave with another shard's.
    post({ type: 'kvResult', callId: msg.callId, ok: true, value: store.apply(msg.request) });
  }
}
