// Request records: one per request a shard answers, built where the request ends, for the live
// log (live-log.ts) and the access log. A shard builds them only while someone reads them
// (`RecordScope`), and sends them to the main thread in batches (`RecordBatcher`), never one
// message per request. docs/observability.md describes the format.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CallUsage } from '../sandbox/index.ts';

/** How the cache produced the response; `fast-hit`: a fresh hit answered by the raw fast path. */
export const CACHE_RESULTS = ['hit', 'fast-hit', 'miss', 'pass', 'stale', 'revalidated', 'synthetic'] as const;
export type CacheResult = (typeof CACHE_RESULTS)[number];

/** One request, as the live log and the access log show it. */
export interface RequestRecord {
  /** When the request arrived, epoch milliseconds. */
  time: number;
  shard: number;
  tenant: string;
  host: string;
  method: string;
  url: string;
  status: number;
  /** null when the response carried no cache label (a request the cache never saw). */
  cache: CacheResult | null;
  /** What answered a miss or pass: an origin's or a program's name (null for hits). */
  backend: string | null;
  backendKind: 'origin' | 'program' | null;
  /** The program version that answered (its key), for a program backend. */
  version: string | null;
  /** Arrival to the last byte handed to the socket, µs. */
  totalUs: number;
  /** Time this request's VM calls (program and hooks) ran on the thread: guest code and the exits it caused, µs. */
  vmUs: number;
  /** Of which inside KVM_RUN, µs. */
  guestUs: number;
  vmExits: number;
  /** Guest pages the request's calls dirtied (what their resets copied back). */
  dirtyPages: number;
  /** Body bytes answered. */
  bytes: number;
  /** The status the backend (origin or program) answered, before the cache's handling. */
  originStatus: number | null;
  /** Why the backend failed, when it did: the failure class and the program's or origin's message. */
  error: string | null;
  /** The lines the request's programs logged (te_log, stderr). */
  logs: string[];
}

/** The keys of a record a reader always gets. */
type AlwaysLogged = 'time' | 'shard' | 'tenant' | 'host' | 'method' | 'url' | 'status' | 'totalUs' | 'bytes';

/**
 * A record as its readers get it (the live log, `tinyedge log --json`, the access log): the
 * keys without a value are left out, which halves a hit's line. Absent: `cache` when the cache
 * never saw the request; `backend`, `backendKind`, `version`, `originStatus` when no backend
 * answered (every hit); the four VM figures when no VM call ran (all 0); `error` when nothing
 * failed; `logs` when nothing was logged. The keys present keep RequestRecord's order.
 */
export type LogRecord = Pick<RequestRecord, AlwaysLogged> & {
  [K in Exclude<keyof RequestRecord, AlwaysLogged>]?: NonNullable<RequestRecord[K]>;
};

/** Which tenants' requests a shard records: none, some, or all. */
export type RecordScope = { all: boolean; tenants: string[] };
export const RECORD_NOTHING: RecordScope = { all: false, tenants: [] };

/** A record while its request is in flight: the record, and the VM resets it still waits for. */
export class LiveRecord {
  private waiting = 0;
  private finished = false;

  constructor(readonly r: RequestRecord, private readonly emit: (r: RequestRecord) => void) {}

  /** A VM call for this request: its usage object, counted into the record as it settles. */
  vmCall(usage: CallUsage): void {
    this.waiting++;
    usage.settled = () => {
      this.addUsage(usage);
      if (--this.waiting === 0 && this.finished) this.emit(this.r);
    };
  }

  /** Whether backend details may still be added (a background refresh outlives its request). */
  get open(): boolean {
    return !this.finished;
  }

  /** The response is complete; the record goes out once the VM resets it waits for are done. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.waiting === 0) this.emit(this.r);
  }

  private addUsage(u: CallUsage): void {
    this.r.vmUs += Math.round(u.runUs);
    this.r.guestUs += Math.round(u.guestUs);
    this.r.vmExits += u.exits;
    this.r.dirtyPages += u.dirtyPages;
  }
}

/**
 * The live record of a request, found by its `IncomingMessage` (the backend's `client`) or its
 * headers object (what the hooks see). Per thread, as every module's state is.
 */
const live = new WeakMap<object, LiveRecord>();

export function recordOf(key: object | undefined): LiveRecord | undefined {
  return key === undefined ? undefined : live.get(key);
}

/**
 * `performance.timeOrigin`, read once: each read is a call into the runtime (~0.1 µs), as much
 * as the rest of a fast-path hit's record. It does not change while a thread runs.
 */
export const TIME_ORIGIN: number = performance.timeOrigin;

/** Starts the record of a request the full path serves. */
export function startRecord(shard: number, tenant: string, req: IncomingMessage, res: ServerResponse, startedMs: number, emit: (r: RequestRecord) => void): LiveRecord {
  const rec = new LiveRecord(
    {
      time: Math.round(TIME_ORIGIN + startedMs), shard, tenant, host: req.headers.host ?? '', method: req.method ?? 'GET', url: req.url ?? '/',
      status: 0, cache: null, backend: null, backendKind: null, version: null, totalUs: 0, vmUs: 0, guestUs: 0, vmExits: 0, dirtyPages: 0,
      bytes: 0, originStatus: null, error: null, logs: [],
    },
    emit,
  );
  live.set(req, rec);
  live.set(req.headers, rec);
  countBody(res, rec.r);
  return rec;
}

/**
 * Starts the record of a request the raw path answers later (a program's pass or miss); `client`
 * is the identity the backend is given for it (BackendRequest.client).
 */
export function startRawRecord(shard: number, tenant: string, host: string, method: string, url: string, startedMs: number, emit: (r: RequestRecord) => void, client: object): LiveRecord {
  const rec = new LiveRecord(
    {
      time: Math.round(TIME_ORIGIN + startedMs), shard, tenant, host, method, url,
      status: 0, cache: null, backend: null, backendKind: null, version: null, totalUs: 0, vmUs: 0, guestUs: 0, vmExits: 0, dirtyPages: 0,
      bytes: 0, originStatus: null, error: null, logs: [],
    },
    emit,
  );
  live.set(client, rec);
  return rec;
}

type Chunk = string | Uint8Array;
const chunkBytes = (c: unknown): number => (typeof c === 'string' ? Buffer.byteLength(c) : c instanceof Uint8Array ? c.byteLength : 0);

/** Counts the body bytes of a recorded response as they are written (streamed ones have no length to read). */
function countBody(res: ServerResponse, r: RequestRecord): void {
  const write = res.write;
  const end = res.end;
  res.write = function (this: ServerResponse, chunk: Chunk, ...rest: unknown[]): boolean {
    r.bytes += chunkBytes(chunk);
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as ServerResponse['write'];
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]): ServerResponse {
    if (typeof chunk !== 'function') r.bytes += chunkBytes(chunk);
    return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest);
  } as ServerResponse['end'];
}

const LABELS: Record<string, CacheResult> = { HIT: 'hit', MISS: 'miss', PASS: 'pass', STALE: 'stale', REVALIDATED: 'revalidated', SYNTH: 'synthetic' };

/**
 * The response's status and cache label, from the head Node wrote: the cache writes its fields
 * as a list, which `getHeader` does not see, so the head's own text is read.
 */
/**
 * The record of a response its client did not wait for (the connection closed before its end):
 * the status sent, or 499 when none was (nginx's "client closed request"), and why, in `error`.
 */
export function abandonedRecord(rec: LiveRecord, res: ServerResponse, totalUs: number): void {
  rec.r.error ??= 'client: the connection closed before the response ended';
  completeRecord(rec, res, totalUs, res.headersSent ? res.statusCode : CLIENT_CLOSED);
}

/** The status recorded for a request whose client left before any answer was sent. */
export const CLIENT_CLOSED = 499;

export function completeRecord(rec: LiveRecord, res: ServerResponse, totalUs: number, status: number = res.statusCode): void {
  const r = rec.r;
  r.status = status;
  r.totalUs = Math.round(totalUs);
  const head = (res as unknown as { _header?: string | null })._header ?? '';
  const label = /\r\nx-cache: *([A-Z]+)\r\n/i.exec(head)?.[1]?.toUpperCase();
  r.cache = label === undefined ? null : (LABELS[label] ?? null);
  rec.finish();
}
