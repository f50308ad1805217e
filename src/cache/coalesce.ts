// Request coalescing: one origin fetch per key ("busy object" in Varnish) whose response head and
// body chunks fan out to every client waiting on it as they arrive. Late joiners replay the chunks
// buffered so far, then follow live. Buffering stops (and joining closes) past the object size cap.
import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderList } from './headers.ts';
import type { CacheObject } from './object.ts';

/** What a fetch produced, announced once before any body chunk. */
export interface FetchHead {
  status: number;
  /** Delivery header block (Via added; Content-Length when known). */
  head: HeaderList;
  /** Origin headers as received (end-to-end), for uncacheable pass-through delivery. */
  originHeaders: HeaderList;
  /** May the body be shared with other clients (RFC 9111 storable)? */
  shareable: boolean;
  /** Secondary key names of the response; a waiter whose headers differ must fetch on its own. */
  varyNames: readonly string[] | null;
  /** Set when the fetch ended in a complete object (304 refresh, stale fallback): deliver from it. */
  obj?: CacheObject;
  /** `X-Cache` to report for an `obj` answer (REVALIDATED, STALE). */
  objLabel?: string;
  /** Age header value in seconds, when the response is cacheable. */
  ageSec?: number;
}

/** One client (or the storage writer) following a fetch. */
export interface FetchListener {
  head(head: FetchHead): void;
  data(chunk: Buffer): void;
  end(): void;
  /** Before head: the fetch failed (status 502/504 in the error). After head: the body broke. */
  error(err: Error): void;
}

/** An in-flight origin fetch for one primary key. */
export class BusyFetch {
  readonly key: string;
  /** Request headers of the client that started the fetch (to compare Vary for joiners). */
  readonly leaderHeaders: IncomingHttpHeaders;
  head: FetchHead | null = null;
  /** Buffered body so far; null once buffering stopped (object too large) or the fetch ended. */
  chunks: Buffer[] | null = [];
  bytes = 0;
  done = false;
  failed: Error | null = null;
  /** New clients may still join (false after the size cap or once it ended). */
  joinable = true;
  /** Set by purge/ban while in flight: the result must not be stored. */
  invalidated = false;
  /** True while the body is being kept to become an object (the fetch then outlives its clients). */
  storing = false;
  /** Holds the key's claim in shared storage: released when the fetch is over (`runFetch`). */
  claimed = false;
  /** Surrogate keys of the response, once its head is known. */
  tags: readonly string[] | null = null;
  /** Set by the fetch once a body streams: abort it, pause it, resume it. */
  cancel: (() => void) | null = null;
  pause: (() => void) | null = null;
  resume: (() => void) | null = null;
  private listeners: FetchListener[] = [];

  constructor(key: string, leaderHeaders: IncomingHttpHeaders) {
    this.key = key;
    this.leaderHeaders = leaderHeaders;
  }

  /** Number of listeners attached (for tests and stats). */
  get listenerCount(): number {
    return this.listeners.length;
  }

  /** Attaches a listener and replays what already happened, so it misses nothing. */
  subscribe(l: FetchListener): void {
    if (this.head !== null) {
      l.head(this.head);
      if (this.chunks !== null) for (const c of this.chunks) l.data(c);
    }
    if (this.failed !== null) { l.error(this.failed); return; }
    if (this.done) { l.end(); return; }
    this.listeners.push(l);
  }

  /** Detaches a listener; when nobody is left and nothing is being stored, the origin exchange stops. */
  unsubscribe(l: FetchListener): void {
    const i = this.listeners.indexOf(l);
    if (i >= 0) this.listeners.splice(i, 1);
    if (this.listeners.length === 0 && !this.storing && !this.done && this.failed === null) this.cancel?.();
  }

  emitHead(head: FetchHead): void {
    this.head = head;
    for (const l of this.listeners.slice()) l.head(head);
  }

  emitData(chunk: Buffer): void {
    if (this.chunks !== null) this.chunks.push(chunk);
    this.bytes += chunk.length;
    for (const l of this.listeners) l.data(chunk);
  }

  /** Stops buffering: the body will not be stored, and nobody new can join (they would miss the start). */
  stopBuffering(): void {
    this.chunks = null;
    this.joinable = false;
  }

  emitEnd(): void {
    this.done = true;
    this.joinable = false;
    const ls = this.listeners;
    this.listeners = [];
    for (const l of ls) l.end();
  }

  emitError(err: Error): void {
    this.failed = err;
    this.joinable = false;
    this.chunks = null;
    const ls = this.listeners;
    this.listeners = [];
    for (const l of ls) l.error(err);
  }
}

/** The set of in-flight fetches of one namespace. */
export class Coalescer {
  private readonly busy = new Map<string, BusyFetch>();

  get(key: string): BusyFetch | undefined {
    return this.busy.get(key);
  }

  start(key: string, leaderHeaders: IncomingHttpHeaders): BusyFetch {
    const b = new BusyFetch(key, leaderHeaders);
    this.busy.set(key, b);
    return b;
  }

  /** Forgets `b` if it is still the registered fetch for its key. */
  finish(b: BusyFetch): void {
    if (this.busy.get(b.key) === b) this.busy.delete(b.key);
  }

  /** Marks the in-flight fetch of `key` so its result is not stored. */
  invalidate(key: string): void {
    const b = this.busy.get(key);
    if (b !== undefined) { b.invalidated = true; this.busy.delete(key); }
  }

  /** Marks every in-flight fetch matching `pred` (tag and ban invalidation). */
  invalidateWhere(pred: (b: BusyFetch) => boolean): void {
    for (const b of [...this.busy.values()]) if (pred(b)) this.invalidate(b.key);
  }

  get size(): number {
    return this.busy.size;
  }
}
