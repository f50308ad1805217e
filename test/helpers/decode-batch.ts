// A batch of request records (src/server/record-batch.ts) as objects again: the inverse of the
// batcher, which the tests compare with the records pushed and with what the writer and the
// filters make of the same batch. The server itself never makes them: its log thread reads the
// columns.
import { type EncodedBatch, KINDS, loadRow, NUMS, rowOrder, STRS } from '../../src/server/record-batch.ts';
import { CACHE_RESULTS, type LogRecord, type RequestRecord } from '../../src/server/records.ts';

/** The records of a batch, in `order` (record-batch.ts's `rowOrder`). */
export function decodeBatch(b: EncodedBatch, order: Int32Array = rowOrder(b)): RequestRecord[] {
  const out: RequestRecord[] = [];
  const s = (i: number): string | null => (i === 0 ? null : b.table[i - 1]!);
  const x = new Float64Array(NUMS);
  const st = new Uint32Array(STRS);
  for (let k = 0; k < b.count; k++) {
    loadRow(b, order[k]!, x, st, 0);
    const logs = s(st[7]!);
    out.push({
      time: x[0]!, shard: x[1]!, tenant: s(st[0]!)!, host: s(st[1]!)!, method: s(st[2]!)!, url: s(st[3]!)!, status: x[2]!,
      cache: x[3]! < 0 ? null : CACHE_RESULTS[x[3]!]!, backend: s(st[4]!), backendKind: x[4]! < 0 ? null : KINDS[x[4]!]!,
      version: s(st[5]!), totalUs: x[5]!, vmUs: x[6]!, guestUs: x[7]!, vmExits: x[8]!, dirtyPages: x[9]!, bytes: x[10]!,
      originStatus: x[11]! < 0 ? null : x[11]!, error: s(st[6]!), logs: logs === null ? [] : (JSON.parse(logs) as string[]),
    });
  }
  return out;
}

/**
 * A record as its readers get it (records.ts, `LogRecord`): written out by hand, key by key, as
 * the reference the writer's bytes are checked against (JSON.stringify of it).
 */
export function logged(r: RequestRecord): LogRecord {
  // Built key by key: JSON.stringify writes keys in the order they were added.
  const out: Record<string, unknown> = { time: r.time, shard: r.shard, tenant: r.tenant, host: r.host, method: r.method, url: r.url, status: r.status };
  if (r.cache !== null) out.cache = r.cache;
  if (r.backend !== null) out.backend = r.backend;
  if (r.backendKind !== null) out.backendKind = r.backendKind;
  if (r.version !== null) out.version = r.version;
  out.totalUs = r.totalUs;
  if (r.vmUs !== 0 || r.guestUs !== 0 || r.vmExits !== 0 || r.dirtyPages !== 0) {
    out.vmUs = r.vmUs;
    out.guestUs = r.guestUs;
    out.vmExits = r.vmExits;
    out.dirtyPages = r.dirtyPages;
  }
  out.bytes = r.bytes;
  if (r.originStatus !== null) out.originStatus = r.originStatus;
  if (r.error !== null) out.error = r.error;
  if (r.logs.length > 0) out.logs = r.logs;
  return out as LogRecord;
}
