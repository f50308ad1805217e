// Origin client: an undici keep-alive pool per origin with connect, first-byte (headers) and idle
// (body) timeouts, a periodic health check, and errors mapped to the status a proxy owes its
// client (502 refused/reset, 504 timeout). The cache talks to it through the small Backend
// interface so a tenant program can later stand in for an HTTP origin.
import type { Readable } from 'node:stream';
import { Client, type Dispatcher, Pool } from 'undici';
import { endToEndResponseHeaders, type HeaderList } from './headers.ts';

/** One request to a backend. `path` is origin-form (`/a?b`); headers include Host. */
export interface BackendRequest {
  method: string;
  path: string;
  headers: HeaderList;
  body: Readable | null;
  signal?: AbortSignal;
  /**
   * The client request this is for (the leader's when coalesced; none for a background refresh):
   * its IncomingMessage on the full path, a token of its own on the raw one. Only its identity
   * counts (a server finds the request's record by it).
   */
  client?: object;
  /** Receives the backend's 102 Processing and 103 Early Hints (end-to-end fields), before the final answer. */
  onInterim?: (status: 102 | 103, headers: HeaderList) => void;
}

/** A backend's answer; `headers` are end-to-end and lower-case. */
export interface BackendResponse {
  status: number;
  headers: HeaderList;
  body: Readable;
  /**
   * The whole body, when the backend already holds it in memory (a program's response): `body`
   * streams the same bytes, and a pass may write this at once instead of piping the stream.
   */
  buffered?: Buffer;
  /** How to cache it, decided by the backend itself (a tenant program), over the headers'. */
  policy?: BackendPolicy;
}

/**
 * A tenant program's cache decision (Varnish's beresp.ttl / grace / keep). Set values replace
 * what the response headers would give; unset ones keep the header-derived or default values.
 * (Tags travel as a Surrogate-Key header, like an origin's.)
 */
export interface BackendPolicy {
  ttlMs?: number;
  graceMs?: number;
  keepMs?: number;
  uncacheable?: boolean;
}

/** Where the cache fetches from: an HTTP origin, or a tenant's router to its programs and origins. */
export interface Backend {
  fetch(req: BackendRequest): Promise<BackendResponse>;
  /**
   * Whether a bodiless `method` request for `path` is answered whole, in memory (`buffered`: a
   * program's answer), without reading the request or streaming: such requests may be taken by
   * the front's raw path (fast-fetch.ts). Absent: never.
   */
  answersWhole?(method: string, path: string): boolean;
  /** False while health checks fail: the cache then prefers stale objects. */
  readonly healthy: boolean;
  close(): Promise<void>;
}

/** A failed origin exchange, with the status and short reason to show the client. */
export class OriginError extends Error {
  readonly status: 502 | 503 | 504;
  constructor(status: 502 | 503 | 504, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OriginError';
    this.status = status;
  }
}

/** How an Origin probes its health in the background; a sick origin fails fast. */
export interface HealthCheckOptions {
  /** Path requested with GET; 2xx/3xx means healthy. */
  path: string;
  intervalMs: number;
  timeoutMs?: number;
  /** Consecutive failures before the origin counts as sick (default 2). */
  threshold?: number;
}

/** Where an Origin connects, and its connection limits and timeouts. */
export interface OriginOptions {
  /** `http://host:port` of the origin. */
  url: string;
  /** Maximum connections kept to the origin (default 128). */
  connections?: number;
  connectTimeoutMs?: number;
  /** Time to the response head (first byte). */
  headersTimeoutMs?: number;
  /** Longest silence between body chunks. */
  bodyTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  healthCheck?: HealthCheckOptions;
}

interface CodedError { code?: unknown; message?: unknown; cause?: unknown }

/**
 * undici's `onInfo` for a request: 102 and 103 go to `forward` (100 Continue is the connection's own
 * business, and other 1xx codes mean nothing to a client). With `responseHeaders: 'raw'` undici
 * hands the fields over as a flat list, as for the final answer.
 */
function interimListener(forward: (status: 102 | 103, headers: HeaderList) => void): (info: { statusCode: number; headers: unknown }) => void {
  return ({ statusCode, headers }) => {
    if (statusCode === 102 || statusCode === 103) forward(statusCode, endToEndResponseHeaders(headers as string[]));
  };
}

/** Maps an undici / socket error to an OriginError. */
export function toOriginError(err: unknown): OriginError {
  if (err instanceof OriginError) return err;
  let e = err as CodedError | undefined;
  // undici wraps socket errors; the useful code can sit one level down.
  let code = typeof e?.code === 'string' ? e.code : '';
  if ((code === '' || code === 'UND_ERR_SOCKET') && e?.cause !== undefined && typeof (e.cause as CodedError).code === 'string') {
    e = e.cause as CodedError;
    code = e.code as string;
  }
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT': return new OriginError(504, 'origin connect timeout', { cause: err });
    case 'UND_ERR_HEADERS_TIMEOUT': return new OriginError(504, 'origin response timeout', { cause: err });
    case 'UND_ERR_BODY_TIMEOUT': return new OriginError(504, 'origin body timeout', { cause: err });
    case 'ECONNREFUSED': return new OriginError(502, 'origin connection refused', { cause: err });
    case 'ECONNRESET': case 'EPIPE': case 'UND_ERR_SOCKET': return new OriginError(502, 'origin connection reset', { cause: err });
    case 'ENOTFOUND': case 'EAI_AGAIN': return new OriginError(502, 'origin host not found', { cause: err });
    case 'EHOSTUNREACH': case 'ENETUNREACH': return new OriginError(502, 'origin unreachable', { cause: err });
    default: return new OriginError(502, `origin error${code ? ` (${code})` : ''}`, { cause: err });
  }
}

/**
 * An undici Client that a Pool does not lose. A Pool takes `false` from a client's `dispatch` as
 * "busy until it emits 'drain'", but undici also returns `false` for a request it refused at once
 * (an argument it rejects: the target `*` of `OPTIONS *`, a field value it will not send): the
 * idle client then never emits 'drain', and the Pool never uses it again. One such request per
 * connection slot, and every later fetch waited forever (128 `OPTIONS *` stopped `tinyedge
 * proxy`'s misses for good; found by the HTTP fuzzer). A refused request leaves the client free.
 */
class OriginClient extends Client {
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    let refused = false;
    const watched = new Proxy(handler, {
      get(target, name, receiver): unknown {
        const value: unknown = Reflect.get(target, name, receiver);
        // Old-style handlers fail through onError, new-style ones through onResponseError.
        if ((name !== 'onError' && name !== 'onResponseError') || typeof value !== 'function') return value;
        return (...args: unknown[]): void => {
          refused = true;
          (value as (...a: unknown[]) => void).apply(target, args);
        };
      },
    });
    // Only an error reported before dispatch returns means the request never reached the client.
    return super.dispatch(options, watched) || refused;
  }
}

/** An HTTP/1.1 origin server as a cache's backend: pooled connections, timeouts, a health check. */
export class Origin implements Backend {
  readonly url: string;
  private readonly pool: Pool;
  private failures = 0;
  private sick = false;
  private readonly threshold: number;
  private timer: ReturnType<typeof setInterval> | null = null;
  private checking = false;
  private readonly health: HealthCheckOptions | undefined;

  constructor(options: OriginOptions) {
    const u = new URL(options.url);
    if (u.protocol !== 'http:') throw new Error(`origin must be an http:// URL, got ${options.url}`);
    this.url = u.origin;
    this.pool = new Pool(u.origin, {
      connections: options.connections ?? 128,
      connectTimeout: options.connectTimeoutMs ?? 5000,
      headersTimeout: options.headersTimeoutMs ?? 30_000,
      bodyTimeout: options.bodyTimeoutMs ?? 30_000,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 4000,
      factory: (origin, opts) => new OriginClient(origin, opts),
    });
    this.health = options.healthCheck;
    this.threshold = options.healthCheck?.threshold ?? 2;
    if (this.health !== undefined) {
      this.timer = setInterval(() => void this.check(), this.health.intervalMs);
      // The probe must never keep a process alive on its own.
      this.timer.unref();
    }
  }

  get healthy(): boolean {
    return !this.sick;
  }

  async fetch(req: BackendRequest): Promise<BackendResponse> {
    try {
      const res = await this.pool.request({
        method: req.method as 'GET',
        path: req.path,
        headers: req.headers,
        body: req.body,
        signal: req.signal,
        responseHeaders: 'raw',
        onInfo: req.onInterim === undefined ? undefined : interimListener(req.onInterim),
      });
      // With responseHeaders 'raw' undici hands back the flat [name, value, …] list.
      const raw = res.headers as unknown as string[];
      return { status: res.statusCode, headers: endToEndResponseHeaders(raw), body: res.body };
    } catch (err) {
      throw toOriginError(err);
    }
  }

  /** Runs one health probe now (the timer calls this; tests may too). */
  async check(): Promise<boolean> {
    if (this.health === undefined || this.checking) return this.healthy;
    this.checking = true;
    let ok = false;
    try {
      const res = await this.pool.request({
        method: 'GET', path: this.health.path, headersTimeout: this.health.timeoutMs ?? 2000, bodyTimeout: this.health.timeoutMs ?? 2000,
      });
      await res.body.dump();
      ok = res.statusCode >= 200 && res.statusCode < 400;
    } catch {
      ok = false;
    } finally {
      this.checking = false;
    }
    if (ok) { this.failures = 0; this.sick = false; } else if (++this.failures >= this.threshold) this.sick = true;
    return ok;
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.pool.close();
  }
}
