// The live request log's main-thread side. Readers (admin API streams, the access log) say whose
// records they want; the shards record just those tenants' requests (none while nobody reads) and
// send them in batches; a log thread of its own (log-worker.ts) filters and serialises them for
// each reader and writes them to the reader's connection, which this thread hands over to it once
// the request is accepted. A serving thread's work for a reader is then its records and their
// batches alone: no serialising, no writes, none of a reader socket's stream code running among
// the front's. A reader that cannot keep up loses records, never slows anyone: what it has not
// taken stays within a bound, and it is told how many it lost. docs/observability.md has the format.
import type { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { detachSocket, dropDetached } from '../http/socket-handoff.ts';
import { type EncodedBatch, releaseBatch } from './record-batch.ts';
import type { RecordFilter } from './record-filter.ts';
import { RECORD_NOTHING, type RecordScope } from './records.ts';

export type LogFormat = 'ndjson' | 'sse';

/** What a reader reads, and how its connection takes the stream. */
export interface ReaderSpec {
  /** null reads every tenant's records (the filter may still name one). */
  tenant: string | null;
  filter: RecordFilter;
  format: LogFormat;
  /** The request was HTTP/1.1: the stream is chunked. HTTP/1.0: it ends with the connection. */
  chunked: boolean;
}

/** Messages to the log thread. */
export type ToLogThread =
  | { type: 'reader'; id: number; fd: number; filter: RecordFilter; format: LogFormat; chunked: boolean }
  | { type: 'accessLog'; path: string }
  /** `lost`: records of batches dropped since the last batch handed over. */
  | { type: 'batch'; batch: EncodedBatch; lost: number }
  | { type: 'endReaders' }
  | { type: 'settle'; n: number }
  | { type: 'close' };

/**
 * Messages from the log thread. What it does with each batch is counted in shared memory
 * (`LogProgress`) instead: a message a batch back would wake the main thread ten times a second
 * to count, and cost the log thread a send.
 */
export type FromLogThread =
  /** A reader's connection closed. */
  | { type: 'gone'; id: number }
  | { type: 'settled'; n: number }
  | { type: 'warn'; message: string }
  | { type: 'closed' };

/**
 * The log thread's counts, in memory both threads share (a BigInt64Array): batches it is done
 * with (`PROGRESS_DONE`: MAX_BATCHES_BEHIND), records readers could not take (`PROGRESS_READERS`,
 * once per reader), lines the access log lost (`PROGRESS_ACCESS_LOG`). Only the log thread adds.
 */
export type LogProgress = BigInt64Array<SharedArrayBuffer>;
export const PROGRESS_DONE = 0;
export const PROGRESS_READERS = 1;
export const PROGRESS_ACCESS_LOG = 2;

/** Most bytes a reader may have waiting in its socket's buffer before its records are dropped. */
export const MAX_BUFFERED_BYTES = 1024 * 1024;

/**
 * Most batches handed to the log thread and not yet done with: past it (a core too busy to give
 * that thread its share, or readers whose filters cost more than the shards' rate allows), a
 * batch is dropped and its records counted lost for every reader, instead of queueing without bound.
 */
export const MAX_BATCHES_BEHIND = 16;

/** How long stopping waits for readers' connections to take their last bytes. */
export const END_WAIT_MS = 1000;

/**
 * The log thread's heap is small and its thread mostly idle, which starts V8's memory reducer
 * there (8 s after the thread starts, then every ~9 s): each of its rounds of full collections
 * throws the thread's optimised code away, and the serialiser was recompiled (~100 ms of V8's
 * helper threads) and ran unoptimised meanwhile (docs/benchmarks.md, "The live request log").
 * Without this flag V8 starts the reducer for a heap that grew by 8 MB before its first full
 * collection, which the log thread's never does. Process-wide, but it changes nothing for an
 * isolate that has had a full collection (the main thread's, any busy shard's).
 */
const NO_MEMORY_REDUCER_FOR_SMALL_HEAPS = '--no-memory-reducer-for-small-heaps';

const workerUrl = new URL(import.meta.url.endsWith('.ts') ? './log-worker.mjs' : './log-worker.js', import.meta.url);

/** A reader could not start: said to its client (503). */
export class ReaderRefused extends Error {}

/** A reader would pass a bound on how many read at once: said to its client (429). */
export class TooManyReaders extends ReaderRefused {}

/** How many readers may read at once: in all, and of one tenant's records. */
export interface ReaderLimits {
  readers: number;
  perTenant: number;
}

/** "1 stream is open", "3 streams of tenant a's records are open". */
const openStreams = (n: number, of = ''): string => `${n} stream${n === 1 ? '' : 's'}${of} ${n === 1 ? 'is' : 'are'} open`;

/** The main thread's hub: which readers read what, the log thread, and the recording scope the shards are told. */
export class LiveLog {
  private readonly readers = new Map<number, string | null>();
  private nextId = 1;
  private accessLog = false;
  private scope: RecordScope = RECORD_NOTHING;
  private applying: Promise<void> = Promise.resolve();
  private worker: Worker | undefined;
  private failed = false;
  private closing: Promise<void> | undefined;
  /** Batches handed to the log thread; those it is done with are counted in `progress` (MAX_BATCHES_BEHIND). */
  private delivered = 0;
  private readonly progress: LogProgress = new BigInt64Array(new SharedArrayBuffer(3 * BigInt64Array.BYTES_PER_ELEMENT));
  /** Records of batches dropped because the log thread fell behind, since the start. */
  private droppedBehind = 0;
  /** Records of batches dropped since the last one handed over: said to the readers with it. */
  private lost = 0;
  /** Records of batches dropped since the last warning, for the access log's. */
  private lostSinceWarning = 0;
  private readonly settling = new Map<number, () => void>();
  /**
   * Records lost since the start (the metrics): `behind`, of batches dropped because the log thread
   * fell behind (once each, whoever would have read them); `readers`, records a reader could not
   * take (once per reader); `accessLog`, lines the access log could not write.
   */
  get dropped(): { behind: number; readers: number; accessLog: number } {
    return {
      behind: this.droppedBehind,
      readers: Number(Atomics.load(this.progress, PROGRESS_READERS)),
      accessLog: Number(Atomics.load(this.progress, PROGRESS_ACCESS_LOG)),
    };
  }
  private nextSettle = 1;

  /**
   * `apply` tells every shard what to record (and where shard 0's batches go: `deliver`). Each
   * reader holds a connection and costs the log thread every batch: `limits` bound them, so that
   * one tenant's streams cannot use up the process's descriptors or the log thread's time.
   */
  constructor(
    private readonly apply: (scope: RecordScope) => Promise<void>,
    private readonly warn: (message: string) => void,
    private readonly limits: ReaderLimits,
  ) {}

  /** Every shard's batches come here, and go on to the log thread (their columns shared, not copied). */
  readonly deliver = (batch: EncodedBatch): void => {
    if (this.worker === undefined || this.failed) {
      releaseBatch(batch);
      return;
    }
    if (this.delivered - Number(Atomics.load(this.progress, PROGRESS_DONE)) >= MAX_BATCHES_BEHIND) {
      this.lost += batch.count;
      this.droppedBehind += batch.count;
      if (this.accessLog) this.lostSinceWarning += batch.count;
      releaseBatch(batch);
      return;
    }
    if (this.lostSinceWarning > 0) {
      this.warn(`access log: ${this.lostSinceWarning} records dropped: the live log's thread fell behind`);
      this.lostSinceWarning = 0;
    }
    this.delivered++;
    this.worker.postMessage({ type: 'batch', batch, lost: this.lost } satisfies ToLogThread);
    this.lost = 0;
  };

  /**
   * Starts a reader on `socket`, the connection its request came on: once every shard records what
   * it reads, the connection is handed to the log thread, which answers the request (200 and the
   * stream) and owns the connection from then on; a reader that has the answer's head misses none
   * of the requests sent after it. Resolves when handed over, or at once if the client left
   * meanwhile. Throws ReaderRefused, with the socket untouched, when the log cannot take it
   * (TooManyReaders past `limits`).
   */
  async add(spec: ReaderSpec, socket: Socket): Promise<void> {
    if (this.closing !== undefined || this.failed) throw new ReaderRefused('the live log is stopping');
    if (this.readers.size >= this.limits.readers) throw new TooManyReaders(`${openStreams(this.readers.size)}, the most the server allows`);
    if (spec.tenant !== null) {
      let same = 0;
      for (const tenant of this.readers.values()) if (tenant === spec.tenant) same++;
      if (same >= this.limits.perTenant) throw new TooManyReaders(`${openStreams(same, ` of tenant ${spec.tenant}'s records`)}, the most the server allows one tenant`);
    }
    const id = this.nextId++;
    this.readers.set(id, spec.tenant);
    this.startWorker();
    await this.rescope();
    let fd: number;
    try {
      if (socket.destroyed) throw new ReaderRefused('the client left');
      if (this.closing !== undefined || this.failed) throw new ReaderRefused('the live log is stopping');
      fd = detachSocket(socket);
    } catch (err) {
      this.readers.delete(id);
      void this.rescope();
      if (socket.destroyed) return;
      throw err instanceof ReaderRefused ? err : new ReaderRefused((err as Error).message);
    }
    this.post({ type: 'reader', id, fd, filter: spec.filter, format: spec.format, chunked: spec.chunked });
  }

  /** Writes every tenant's records to `path` ('-': stdout), one JSON line each, from the log thread. */
  startAccessLog(path: string): Promise<void> {
    this.accessLog = true;
    this.startWorker();
    this.post({ type: 'accessLog', path });
    return this.rescope();
  }

  /** Readers whose connections are open. */
  get readerCount(): number {
    return this.readers.size;
  }

  /** Resolves once the log thread has handled everything handed to it so far (readers' records written or counted lost). */
  settled(): Promise<void> {
    if (this.worker === undefined || this.failed) return Promise.resolve();
    // A closing log thread handles everything before it ends, and answers nothing after.
    if (this.closing !== undefined) return this.closing;
    const n = this.nextSettle++;
    // The answer is awaited: the thread is held open until it comes.
    this.worker.ref();
    return new Promise((resolve) => {
      this.settling.set(n, resolve);
      this.post({ type: 'settle', n });
    });
  }

  /** Ends every reader's stream, so that stopping the admin port need not wait for them. */
  endStreams(): void {
    if (this.readers.size > 0) this.post({ type: 'endReaders' });
  }

  /** Stops recording, lets the log thread end its readers' streams and write what it has (the access log), and ends it. */
  async close(): Promise<void> {
    this.closing ??= (async () => {
      this.readers.clear();
      this.accessLog = false;
      await this.rescope();
      const worker = this.worker;
      if (worker === undefined) return;
      // Held open while it finishes: with nothing else left running, an unref'd thread's last
      // message would never come, and the access log's last lines would be lost.
      worker.ref();
      await new Promise<void>((resolve) => {
        worker.on('message', (m: FromLogThread) => m.type === 'closed' && resolve());
        worker.once('exit', () => resolve());
        worker.postMessage({ type: 'close' } satisfies ToLogThread);
      });
      await worker.terminate();
      // It handled every message before its 'close': nothing is left to answer.
      this.endSettling();
    })();
    return this.closing;
  }

  private startWorker(): void {
    if (this.worker !== undefined) return;
    setFlagsFromString(NO_MEMORY_REDUCER_FOR_SMALL_HEAPS);
    const worker = new Worker(workerUrl, { workerData: this.progress });
    worker.on('message', (m: FromLogThread) => this.onMessage(m));
    worker.on('error', (err) => {
      this.failed = true;
      this.warn(`the live log's thread failed: ${err.message}; records are no longer written`);
      this.readers.clear();
      this.endSettling();
      void this.rescope();
    });
    // The log thread must never keep the process alive on its own.
    worker.unref();
    this.worker = worker;
  }

  /** Answers every `settled()` still waiting: the log thread is gone and will answer none. */
  private endSettling(): void {
    for (const resolve of this.settling.values()) resolve();
    this.settling.clear();
  }

  private post(msg: ToLogThread): void {
    if (this.failed) {
      if (msg.type === 'reader') dropDetached(msg.fd);
      return;
    }
    this.worker!.postMessage(msg);
  }

  private onMessage(m: FromLogThread): void {
    switch (m.type) {
      case 'gone':
        if (this.readers.delete(m.id)) void this.rescope();
        return;
      case 'settled':
        this.settling.get(m.n)?.();
        this.settling.delete(m.n);
        if (this.settling.size === 0 && this.closing === undefined) this.worker?.unref();
        return;
      case 'warn':
        this.warn(m.message);
        return;
      case 'closed':
        return;
    }
  }

  private rescope(): Promise<void> {
    const readers = [...this.readers.values()];
    const all = this.accessLog || readers.some((tenant) => tenant === null);
    const tenants = all ? [] : [...new Set(readers as string[])].sort();
    const next: RecordScope = { all, tenants };
    if (next.all === this.scope.all && next.tenants.join('\n') === this.scope.tenants.join('\n')) return this.applying;
    this.scope = next;
    // One change at a time, in order: the last scope asked is the one the shards end with.
    this.applying = this.applying.then(() => this.apply(next)).catch(() => undefined);
    return this.applying;
  }
}
