// The live log's thread: decodes the shards' batches of request records, and for each reader
// keeps the records its filter matches, serialised (NDJSON or Server-Sent Events) into one chunk
// per batch that goes back to the main thread to write; the access log is written from here.
// Serialising every request's record is the live log's largest cost: here it costs the serving
// threads nothing. Chunks are written into reused slots of shared memory (log-slots.ts), and a
// batch's columns are handed back to its shard when done: no memory a batch in the steady state.
import { createWriteStream, type WriteStream } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import type { FromLogThread, LogChunk, LogFormat, LogThreadData, ToLogThread } from './live-log.ts';
import { MAX_BUFFERED_BYTES } from './live-log.ts';
import { holdSlot, OutputSlots, releaseSlot, type SlotMemory } from './log-slots.ts';
import { decodeBatch, type EncodedBatch, releaseBatch } from './record-batch.ts';
import { BatchWriter } from './record-writer.ts';
import { matches, type RecordFilter } from './record-filter.ts';
import type { RequestRecord } from './records.ts';

const port = parentPort;
if (!port) throw new Error('log-worker.ts must run as a worker thread');
const send = (msg: FromLogThread, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);
const { holders } = workerData as LogThreadData;
const slots = new OutputSlots(holders);

/**
 * Where batches are serialised before their bytes go to a slot in one copy: writing shared
 * memory piece by piece (a copy a record) costs about twice what writing this thread's own does.
 */
let scratch = Buffer.allocUnsafeSlow(64 * 1024);
/** The scratch buffer grows to a batch's bound (`BatchWriter.bound`) up to this; past it, to the batch's size. */
const MAX_SCRATCH_BYTES = 16 * 1024 * 1024;
/** Where the order of a batch's rows is written (record-batch.ts, `rowOrder`), reused batch after batch. */
let order: Int32Array = new Int32Array(1024);

const readers = new Map<number, { filter: RecordFilter; format: LogFormat }>();

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
    return;
  }
  if (access.dropped > 0) {
    send({ type: 'warn', message: `access log: ${access.dropped} records dropped: the log could not keep up` });
    access.dropped = 0;
  }
  holdSlot(holders, out.slot);
  access.out.write(out.bytes, () => releaseSlot(holders, out.slot));
}

function onBatch(batch: EncodedBatch): void {
  const out = new BatchWriter(batch, order);
  order = out.rows;
  /** Slots this batch took: held by this thread until their chunks are handed over. */
  const taken: number[] = [];
  const serialise = (format: LogFormat, pick?: readonly number[]): SlotMemory => {
    // The records' exact size is a pass over them: counted only when the scratch buffer is not
    // larger than their bound, and then the buffer grows to hold that bound from then on.
    const bound = out.bound(format, pick);
    if (scratch.length < bound) {
      const size = out.size(format, pick);
      if (scratch.length < size) scratch = Buffer.allocUnsafeSlow(2 ** Math.ceil(Math.log2(Math.max(size, Math.min(bound, MAX_SCRATCH_BYTES)))));
    }
    const length = out.writeInto(scratch, format, pick);
    const memory = slots.take(length);
    memory.bytes.set(scratch.subarray(0, length));
    if (memory.slot >= 0) taken.push(memory.slot);
    return { bytes: memory.bytes.subarray(0, length), slot: memory.slot };
  };
  // Readers without a filter in the same format share one serialisation of the batch; the
  // records are decoded into objects only for readers with a filter, to test them.
  const whole = new Map<LogFormat, SlotMemory>();
  const all = (format: LogFormat): SlotMemory => {
    let memory = whole.get(format);
    if (memory === undefined) whole.set(format, (memory = serialise(format)));
    return memory;
  };
  const chunks: LogChunk[] = [];
  let records: RequestRecord[] | undefined;
  for (const [id, { filter, format }] of readers) {
    if (Object.keys(filter).length === 0) {
      const { bytes, slot } = all(format);
      chunks.push({ id, bytes, slot, records: batch.count });
      continue;
    }
    records ??= decodeBatch(batch, out.rows);
    const pick: number[] = [];
    for (let k = 0; k < records.length; k++) if (matches(filter, records[k]!)) pick.push(k);
    if (pick.length > 0) {
      const { bytes, slot } = serialise(format, pick);
      chunks.push({ id, bytes, slot, records: pick.length });
    }
  }
  if (access !== undefined) {
    const memory = all('ndjson');
    // Memory of its own is transferred with the chunks: the access log keeps a copy of it then.
    const shared = memory.slot < 0 && chunks.some((c) => c.bytes === memory.bytes);
    writeAccessLog(shared ? { bytes: Buffer.from(memory.bytes), slot: -1 } : memory, batch.count);
  }
  // Everything is serialised: the shard may write a later batch into these columns.
  releaseBatch(batch);
  for (const c of chunks) holdSlot(holders, c.slot);
  // Sent for every batch, chunks or none: it tells the main thread this batch is done with.
  send({ type: 'out', chunks }, [...new Set(chunks.filter((c) => c.slot < 0).map((c) => c.bytes.buffer as ArrayBuffer))]);
  for (const slot of taken) releaseSlot(holders, slot);
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
