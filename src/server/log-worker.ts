// The live log's thread: reads the shards' batches of request records, and for each reader
// keeps the records its filter matches (of them its sample, up to its most a second), serialised
// (NDJSON or Server-Sent Events) into one chunk per batch, written to the reader's connection,
// which the main thread handed over (live-log.ts); the access log is written from here too.
// Serialising and writing every request's record are the live log's largest costs: here they
// cost the serving threads nothing. Chunks are written from reused slots of memory
// (log-slots.ts), and a batch's columns are handed back to its shard when done: no memory a
// batch in the steady state.
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { adoptSocket } from '../http/socket-handoff.ts';
import type { FromLogThread, LogFormat, ToLogThread } from './live-log.ts';
import { END_WAIT_MS, type LogProgress, MAX_BUFFERED_BYTES, PROGRESS_ACCESS_LOG, PROGRESS_DONE, PROGRESS_READERS } from './live-log.ts';
import { MAX_SLOT_BYTES, OutputSlots, type SlotMemory } from './log-slots.ts';
import { type EncodedBatch, releaseBatch } from './record-batch.ts';
import { BatchWriter } from './record-writer.ts';
import { pickMatching, RateCap, type RecordFilter, Sampler, testsRecords } from './record-filter.ts';

const port = parentPort;
if (!port) throw new Error('log-worker.ts must run as a worker thread');
const send = (msg: FromLogThread): void => port.postMessage(msg);
/** What this thread has done with the batches, counted where the main thread reads it (live-log.ts). */
const progress = workerData as LogProgress;
const slots = new OutputSlots();

/** Where the order of a batch's rows is written (record-batch.ts, `rowOrder`), reused batch after batch. */
let order: Int32Array = new Int32Array(1024);

/** Idle time before TCP's keepalive probes a reader's connection (the kernel's own default is two hours). */
const KEEPALIVE_MS = 60_000;

const CRLF = Buffer.from('\r\n');
/** The last chunk of a chunked body. */
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/**
 * A reader's connection: the answer to its request (200, then the stream: NDJSON, one record a
 * line, or Server-Sent Events, one `data:` event a record). Records it cannot take are counted;
 * the count reaches it as a `{"dropped":N}` line (or a `dropped` event) before the next records it gets.
 */
class Reader {
  private dropped = 0;
  /** The filter's sample, and its most records a second, if it has them. */
  readonly sampler: Sampler | null;
  readonly cap: RateCap | null;
  private heartbeat: ReturnType<typeof setInterval> | undefined;

  constructor(readonly id: number, private readonly socket: Socket, readonly filter: RecordFilter, readonly format: LogFormat, private readonly chunked: boolean) {
    this.sampler = filter.sample === undefined ? null : new Sampler(filter.sample);
    this.cap = filter.max === undefined ? null : new RateCap(filter.max, performance.now());
    socket.on('error', () => {});
    socket.once('close', () => {
      if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
      readers.delete(id);
      send({ type: 'gone', id });
    });
    // A reader sends nothing more; whatever it does send is read and dropped, so that its leaving is seen.
    socket.resume();
    // A quiet stream writes nothing, so a client gone without a word (its host down, the network
    // cut) would hold its place among the bounded readers for ever: TCP's keepalive finds it.
    socket.setKeepAlive(true, KEEPALIVE_MS);
    const type = format === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8';
    socket.write(
      'HTTP/1.1 200 OK\r\n' +
        `content-type: ${type}\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n` +
        `date: ${new Date().toUTCString()}\r\n${chunked ? 'transfer-encoding: chunked\r\n' : ''}connection: close\r\n\r\n`,
    );
    if (format === 'sse') {
      this.send(Buffer.from(': tinyedge live log\n\n'));
      // A comment now and then keeps proxies from closing a quiet stream.
      this.heartbeat = setInterval(() => this.send(Buffer.from(': keep-alive\n\n')), 15_000);
    }
  }

  /**
   * Writes `records` serialised records, or counts them lost when the reader is behind (not when it has left).
   * `done` runs once `bytes` are no longer needed: written to the socket, or dropped.
   */
  write(bytes: Uint8Array, records: number, done: () => void): void {
    if (this.socket.destroyed || this.socket.writableEnded) {
      // Its reader left (or the stream is ending): nobody is there to lose them.
      done();
      return;
    }
    if (this.socket.writableLength > MAX_BUFFERED_BYTES) {
      this.dropped += records;
      droppedNow.readers += records;
      done();
      return;
    }
    if (this.dropped > 0) {
      this.notice('dropped', { dropped: this.dropped });
      this.dropped = 0;
    }
    this.send(bytes, done);
  }

  /**
   * Says that `skipped` records of a batch were over the reader's `max` and only `kept` of them
   * follow: `{"skipped":N,"kept":K}` (a `skipped` event), so a view can scale what it counts.
   */
  overCap(skipped: number, kept: number): void {
    if (this.socket.destroyed || this.socket.writableEnded || this.socket.writableLength > MAX_BUFFERED_BYTES) return;
    this.notice('skipped', { skipped, kept });
  }

  /** A notice among the records: a JSON line (NDJSON), or an event named `event` (SSE). */
  private notice(event: 'dropped' | 'skipped', value: object): void {
    const json = JSON.stringify(value);
    this.send(Buffer.from(this.format === 'sse' ? `event: ${event}\ndata: ${json}\n\n` : `${json}\n`));
  }

  /** Records lost before they reached this reader's filter (the main thread dropped their batch). */
  lose(records: number): void {
    this.dropped += records;
  }

  /** Ends the stream: its reader sees the end at once. */
  end(): void {
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    if (this.socket.writableEnded) return;
    if (this.chunked) this.socket.end(LAST_CHUNK);
    else this.socket.end();
  }

  /** Resolves when the connection has closed, or after END_WAIT_MS, when it is closed. */
  closed(): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.socket.destroy(), END_WAIT_MS);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Body bytes, in a chunk of their own when the stream is chunked (one write to the kernel either way). */
  private send(bytes: Uint8Array, done?: () => void): void {
    if (!this.chunked) {
      this.socket.write(bytes, done);
      return;
    }
    this.socket.cork();
    this.socket.write(`${bytes.length.toString(16)}\r\n`);
    this.socket.write(bytes);
    this.socket.write(CRLF, done);
    this.socket.uncork();
  }
}

const readers = new Map<number, Reader>();

/** Records readers could not take, and lines the access log lost, since the last batch was done with. */
const droppedNow = { readers: 0, accessLog: 0 };

/** The access log's file (or stdout), and the lines it lost to a disk that could not keep up. */
let access: { out: WriteStream | NodeJS.WriteStream; owned: boolean; dropped: number } | undefined;

function openAccessLog(path: string): void {
  const owned = path !== '-';
  const out = owned ? createWriteStream(path, { flags: 'a' }) : process.stdout;
  out.on('error', (err) => send({ type: 'warn', message: `access log ${path}: ${err.message}` }));
  access = { out, owned, dropped: 0 };
}

/** Writes a batch's records to the access log; the slot they are in is held until written. */
function writeAccessLog(out: SlotMemory, count: number): void {
  if (access === undefined) return;
  if (access.out.writableLength > MAX_BUFFERED_BYTES) {
    access.dropped += count;
    droppedNow.accessLog += count;
    return;
  }
  if (access.dropped > 0) {
    send({ type: 'warn', message: `access log: ${access.dropped} records dropped: the log could not keep up` });
    access.dropped = 0;
  }
  slots.holdSlot(out.slot);
  access.out.write(out.bytes, () => slots.releaseSlot(out.slot));
}

function onBatch(batch: EncodedBatch, lost: number): void {
  if (lost > 0) for (const r of readers.values()) r.lose(lost);
  const out = new BatchWriter(batch, order);
  order = out.rows;
  /** Slots this batch took: held until every write of them is handed out. */
  const taken: number[] = [];
  const serialise = (format: LogFormat, pick?: readonly number[]): SlotMemory => {
    // Written straight into a slot: one that holds the records' bound (constant time to know),
    // or, when the bound is more than a slot may be (a batch with a very long string), one that
    // holds their exact size (a pass over them). A scratch buffer copied into the slot cost the
    // log thread a second pass over its output, and its core's caches the output's size again.
    const bound = out.bound(format, pick);
    const memory = slots.take(bound <= MAX_SLOT_BYTES ? bound : out.size(format, pick));
    const length = out.writeInto(memory.bytes, format, pick);
    if (memory.slot >= 0) taken.push(memory.slot);
    return { bytes: memory.bytes.subarray(0, length), slot: memory.slot };
  };
  // Readers without a filter in the same format share one serialisation of the batch; a filter
  // is tested on the batch's columns (pickMatching).
  const whole = new Map<LogFormat, SlotMemory>();
  const all = (format: LogFormat): SlotMemory => {
    let memory = whole.get(format);
    if (memory === undefined) whole.set(format, (memory = serialise(format)));
    return memory;
  };
  const write = (reader: Reader, { bytes, slot }: SlotMemory, records: number): void => {
    slots.holdSlot(slot);
    reader.write(bytes, records, () => slots.releaseSlot(slot));
  };
  for (const reader of readers.values()) {
    const { filter, sampler, cap } = reader;
    /** The records this reader gets, by index; undefined: all of them. */
    let pick: number[] | undefined;
    if (testsRecords(filter)) {
      pick = [];
      pickMatching(batch, out.rows, filter, sampler, pick);
    } else if (sampler !== null) {
      // A sample alone: no record decoded, a random draw per record kept.
      pick = [];
      sampler.pickFrom(batch.count, pick);
    }
    if (cap !== null) {
      const wanted = pick ?? Array.from({ length: batch.count }, (_, k) => k);
      const kept = cap.take(wanted, performance.now());
      if (kept !== wanted) {
        reader.overCap(wanted.length - kept.length, kept.length);
        pick = kept;
      }
    }
    if (pick === undefined) write(reader, all(reader.format), batch.count);
    else if (pick.length > 0) write(reader, serialise(reader.format, pick), pick.length);
  }
  if (access !== undefined) writeAccessLog(all('ndjson'), batch.count);
  // Everything is serialised: the shard may write a later batch into these columns.
  releaseBatch(batch);
  for (const slot of taken) slots.releaseSlot(slot);
  if (droppedNow.readers > 0) Atomics.add(progress, PROGRESS_READERS, BigInt(droppedNow.readers));
  if (droppedNow.accessLog > 0) Atomics.add(progress, PROGRESS_ACCESS_LOG, BigInt(droppedNow.accessLog));
  // Last: the main thread reads a batch as done only with its losses counted.
  Atomics.add(progress, PROGRESS_DONE, 1n);
  droppedNow.readers = 0;
  droppedNow.accessLog = 0;
}

/** Ends every reader's stream and waits (a bounded time) for their connections to close. */
async function endReaders(): Promise<void> {
  const all = [...readers.values()];
  for (const r of all) r.end();
  await Promise.all(all.map((r) => r.closed()));
}

port.on('message', (msg: ToLogThread) => {
  switch (msg.type) {
    case 'reader':
      readers.set(msg.id, new Reader(msg.id, adoptSocket(msg.fd), msg.filter, msg.format, msg.chunked));
      return;
    case 'accessLog':
      openAccessLog(msg.path);
      return;
    case 'batch':
      onBatch(msg.batch, msg.lost);
      return;
    case 'endReaders':
      void endReaders();
      return;
    case 'settle':
      send({ type: 'settled', n: msg.n });
      return;
    case 'close':
      void endReaders().then(() => {
        const done = (): void => send({ type: 'closed' });
        if (access?.owned === true) (access.out as WriteStream).end(done);
        else done();
      });
      return;
  }
});
