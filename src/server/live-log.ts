// The live request log's main-thread side. Readers (admin API streams, the access log) say whose
// records they want; the shards record just those tenants' requests (none while nobody reads) and
// send them in batches; a log thread of its own (log-worker.ts) filters and serialises them for
// each reader, so that the thread serving shard 0 pays only for building the batches; here each
// reader's bytes are written to its response. A reader that cannot keep up loses records, never
// slows anyone: what it has not taken stays within a bound, and it is told how many it lost.
// docs/observability.md has the format.
import type { ServerResponse } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { releaseSlot, slotHolders, type SlotHolders } from './log-slots.ts';
import { type EncodedBatch, releaseBatch } from './record-batch.ts';
import type { RecordFilter } from './record-filter.ts';
import { RECORD_NOTHING, type RecordScope } from './records.ts';

/** Messages to the log thread. */
export type ToLogThread =
  | { type: 'reader'; id: number; filter: RecordFilter; format: LogFormat }
  | { type: 'unreader'; id: number }
  | { type: 'accessLog'; path: string }
  | { type: 'batch'; batch: EncodedBatch }
  | { type: 'close' };

/**
 * A reader's records of one batch, serialised: in a slot of the log thread's shared memory
 * (`slot` ≥ 0, held once for this chunk until it is written or dropped), or in memory of its own
 * (`slot` -1, transferred).
 */
export interface LogChunk {
  id: number;
  bytes: Uint8Array;
  slot: number;
  records: number;
}

/** Messages from the log thread: each batch's serialised records (one message a batch), warnings, and the end. */
export type FromLogThread =
  | { type: 'out'; chunks: LogChunk[] }
  | { type: 'warn'; message: string }
  | { type: 'closed' };

export type LogFormat = 'ndjson' | 'sse';

/** What the log thread starts with: the holders of its output slots, shared with this thread. */
export interface LogThreadData {
  holders: SlotHolders;
}

/** Most bytes a reader may have waiting in its socket's buffer before its records are dropped. */
export const MAX_BUFFERED_BYTES = 1024 * 1024;

/**
 * Most batches handed to the log thread and not yet done with: past it (a core too busy to give
 * that thread its share, or readers whose filters cost more than the shards' rate allows), a
 * batch is dropped and its records counted lost for every reader, instead of queueing without bound.
 */
export const MAX_BATCHES_BEHIND = 16;

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

/**
 * A reader streaming to an HTTP response, as NDJSON (one record a line) or Server-Sent Events
 * (one `data:` event a record). Records it cannot take are counted; the count reaches it as a
 * `{"dropped":N}` line (or a `dropped` event) before the next records it gets.
 */
export class StreamReader {
  private dropped = 0;
  private heartbeat: ReturnType<typeof setInterval> | undefined;

  /** `tenant` null reads every tenant's records (the filter may still name one). Nothing is sent before `begin`. */
  constructor(readonly tenant: string | null, readonly filter: RecordFilter, private readonly res: ServerResponse, readonly format: LogFormat) {
    res.writeHead(200, {
      'content-type': format === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
  }

  /**
   * Sends the head (if no record has yet): called once every shard records what this reader
   * reads, so that a reader that has the head misses none of the requests sent after it.
   */
  begin(): void {
    const res = this.res;
    if (res.destroyed) return;
    // Sends the head unless a record already has (writeHead only made it).
    res.flushHeaders();
    if (this.format === 'sse') {
      res.write(': tinyedge live log\n\n');
      // A comment now and then keeps proxies from closing a quiet stream.
      this.heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
      this.heartbeat.unref();
    }
  }

  /**
   * Writes `records` serialised records, or counts them lost when the reader is behind or gone.
   * `done` runs once `bytes` are no longer needed: written to the socket, or dropped.
   */
  write(bytes: Uint8Array, records: number, done?: () => void): void {
    // A socket already closed would never call back: its records are lost at once.
    const socket = this.res.socket;
    if (this.res.writableLength > MAX_BUFFERED_BYTES || this.res.destroyed || socket === null || socket.destroyed) {
      this.dropped += records;
      done?.();
      return;
    }
    this.announceDropped();
    this.res.write(bytes, done);
  }

  /**
   * Records lost before they reached this reader's filter (the log thread fell behind): counted
   * as lost whether or not the filter would have kept them; said with the next records.
   */
  lose(records: number): void {
    this.dropped += records;
  }

  private announceDropped(): void {
    if (this.dropped === 0) return;
    const notice = JSON.stringify({ dropped: this.dropped });
    this.res.write(this.format === 'sse' ? `event: dropped\ndata: ${notice}\n\n` : `${notice}\n`);
    this.dropped = 0;
  }

  close(): void {
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
  }

  /** Ends the stream (the server is stopping): its reader sees the end at once. */
  end(): void {
    this.close();
    this.res.end();
  }
}

/** The main thread's hub: its readers, the log thread, and the recording scope the shards are told. */
export class LiveLog {
  private readonly readers = new Map<number, StreamReader>();
  private nextId = 1;
  private accessLog = false;
  private scope: RecordScope = RECORD_NOTHING;
  private applying: Promise<void> = Promise.resolve();
  private worker: Worker | undefined;
  private closing: Promise<void> | undefined;
  /** Batches handed to the log thread that it has not answered yet (MAX_BATCHES_BEHIND). */
  private behind = 0;
  /** Records of batches dropped since the last warning, for the access log's. */
  private lostSinceWarning = 0;
  /** Holders of the log thread's output slots (log-slots.ts). */
  private readonly holders = slotHolders();

  /** `apply` tells every shard what to record (and where shard 0's batches go: `deliver`). */
  constructor(private readonly apply: (scope: RecordScope) => Promise<void>, private readonly warn: (message: string) => void) {}

  /** Every shard's batches come here, and go on to the log thread (their columns shared, not copied). */
  readonly deliver = (batch: EncodedBatch): void => {
    if (this.worker === undefined) {
      releaseBatch(batch);
      return;
    }
    if (this.behind >= MAX_BATCHES_BEHIND) {
      for (const r of this.readers.values()) r.lose(batch.count);
      if (this.accessLog) this.lostSinceWarning += batch.count;
      releaseBatch(batch);
      return;
    }
    if (this.lostSinceWarning > 0) {
      this.warn(`access log: ${this.lostSinceWarning} records dropped: the live log's thread fell behind`);
      this.lostSinceWarning = 0;
    }
    this.behind++;
    this.worker.postMessage({ type: 'batch', batch } satisfies ToLogThread);
  };

  /** Adds a reader; resolves once every shard records what it reads. */
  add(reader: StreamReader): Promise<void> {
    const id = this.nextId++;
    this.readers.set(id, reader);
    this.post({ type: 'reader', id, filter: reader.filter, format: reader.format });
    return this.rescope();
  }

  remove(reader: StreamReader): Promise<void> {
    for (const [id, r] of this.readers) {
      if (r !== reader) continue;
      this.readers.delete(id);
      this.worker?.postMessage({ type: 'unreader', id } satisfies ToLogThread);
      return this.rescope();
    }
    return this.applying;
  }

  /** Writes every tenant's records to `path` ('-': stdout), one JSON line each, from the log thread. */
  startAccessLog(path: string): Promise<void> {
    this.accessLog = true;
    this.post({ type: 'accessLog', path });
    return this.rescope();
  }

  get readerCount(): number {
    return this.readers.size;
  }

  /** Ends every reader's stream, so that closing the admin port need not wait for them. */
  endStreams(): void {
    for (const r of this.readers.values()) r.end();
  }

  /** Stops recording, lets the log thread write what it has (the access log), and ends it. */
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
    })();
    return this.closing;
  }

  private post(msg: ToLogThread): void {
    if (this.worker === undefined) {
      setFlagsFromString(NO_MEMORY_REDUCER_FOR_SMALL_HEAPS);
      const worker = new Worker(workerUrl, { workerData: { holders: this.holders } satisfies LogThreadData });
      worker.on('message', (m: FromLogThread) => this.onMessage(m));
      worker.on('error', (err) => this.warn(`the live log's thread failed: ${err.message}; records are no longer written`));
      // The log thread must never keep the process alive on its own.
      worker.unref();
      this.worker = worker;
    }
    this.worker.postMessage(msg);
  }

  private onMessage(m: FromLogThread): void {
    if (m.type === 'warn') this.warn(m.message);
    else if (m.type === 'out') {
      this.behind--;
      for (const c of m.chunks) {
        const reader = this.readers.get(c.id);
        const release = (): void => releaseSlot(this.holders, c.slot);
        if (reader === undefined) release();
        else reader.write(c.bytes, c.records, c.slot < 0 ? undefined : release);
      }
    }
  }

  private rescope(): Promise<void> {
    const readers = [...this.readers.values()];
    const all = this.accessLog || readers.some((r) => r.tenant === null);
    const tenants = all ? [] : [...new Set(readers.map((r) => r.tenant!))].sort();
    const next: RecordScope = { all, tenants };
    if (next.all === this.scope.all && next.tenants.join('\n') === this.scope.tenants.join('\n')) return this.applying;
    this.scope = next;
    // One change at a time, in order: the last scope asked is the one the shards end with.
    this.applying = this.applying.then(() => this.apply(next)).catch(() => undefined);
    return this.applying;
  }
}
