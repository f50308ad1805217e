// The live log's thread: decodes the shards' batches of request records, and for each reader
// keeps the records its filter matches, serialised (NDJSON or Server-Sent Events) into one chunk
// per batch that goes back to the main thread to write; the access log is written from here.
// Serialising every request's record is the live log's largest cost: here it costs the serving
// threads nothing.
import { createWriteStream, type WriteStream } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { FromLogThread, LogFormat, ToLogThread } from './live-log.ts';
import { MAX_BUFFERED_BYTES } from './live-log.ts';
import { decodeBatch, type EncodedBatch } from './record-batch.ts';
import { BatchWriter } from './record-writer.ts';
import { matches, type RecordFilter } from './record-filter.ts';
import type { RequestRecord } from './records.ts';

const port = parentPort;
if (!port) throw new Error('log-worker.ts must run as a worker thread');
const send = (msg: FromLogThread, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);

const readers = new Map<number, { filter: RecordFilter; format: LogFormat }>();

/** The access log's file (or stdout), and the lines it lost to a disk that could not keep up. */
let access: { out: WriteStream | NodeJS.WriteStream; owned: boolean; dropped: number } | undefined;

function openAccessLog(path: string): void {
  const owned = path !== '-';
  const out = owned ? createWriteStream(path, { flags: 'a' }) : process.stdout;
  out.on('error', (err) => send({ type: 'warn', message: `access log ${path}: ${err.message}` }));
  access = { out, owned, dropped: 0 };
}

function writeAccessLog(bytes: Uint8Array, count: number): void {
  if (access === undefined) return;
  if (access.out.writableLength > MAX_BUFFERED_BYTES) {
    access.dropped += count;
    return;
  }
  if (access.dropped > 0) {
    send({ type: 'warn', message: `access log: ${access.dropped} records dropped: the log could not keep up` });
    access.dropped = 0;
  }
  access.out.write(bytes);
}

function onBatch(batch: EncodedBatch): void {
  const out = new BatchWriter(batch);
  // Readers without a filter in the same format share one serialisation of the batch; the
  // records are decoded into objects only for readers with a filter, to test them.
  const whole = new Map<LogFormat, Buffer>();
  const all = (format: LogFormat): Buffer => {
    let bytes = whole.get(format);
    if (bytes === undefined) whole.set(format, (bytes = out.write(format)));
    return bytes;
  };
  const chunks: Array<{ id: number; bytes: Uint8Array; records: number }> = [];
  let records: RequestRecord[] | undefined;
  for (const [id, { filter, format }] of readers) {
    if (Object.keys(filter).length === 0) {
      chunks.push({ id, bytes: all(format), records: batch.count });
      continue;
    }
    records ??= decodeBatch(batch);
    const pick: number[] = [];
    for (let k = 0; k < records.length; k++) if (matches(filter, records[k]!)) pick.push(k);
    if (pick.length > 0) chunks.push({ id, bytes: out.write(format, pick), records: pick.length });
  }
  if (access !== undefined) {
    // The access log keeps its bytes until written: a copy when the same bytes go to a reader.
    const bytes = all('ndjson');
    writeAccessLog(chunks.some((c) => c.bytes === bytes) ? Buffer.from(bytes) : bytes, batch.count);
  }
  // Sent for every batch, chunks or none: it tells the main thread this batch is done with.
  // Each chunk's memory is its own (BatchWriter's buffers are not from a pool): handed over, not copied.
  send({ type: 'out', chunks }, [...new Set(chunks.map((c) => c.bytes.buffer as ArrayBuffer))]);
}

port.on('message', (msg: ToLogThread) => {
  switch (msg.type) {
    case 'reader':
      readers.set(msg.id, { filter: msg.filter, format: msg.format });
      return;
    case 'unreader':
      readers.delete(msg.id);
      return;
    case 'accessLog':
      openAccessLog(msg.path);
      return;
    case 'batch':
      onBatch(msg.batch);
      return;
    case 'close': {
      const done = (): void => send({ type: 'closed' });
      if (access?.owned === true) (access.out as WriteStream).end(done);
      else done();
      return;
    }
  }
});
