// The hardened HTTP/1.1 front: the listener `tinyedge proxy` and the multi-tenant server share.
// Clients are hostile. Node's llhttp parser in strict mode frames every request; its `clientError`
// answers malformed ones, and vet.ts adds what llhttp lets through (URL length, header bytes,
// Host, transfer codings, request-target forms, hop-by-hop fields). Any request we refuse ends its
// connection, and no later bytes on that connection ever reach the handler as a request. This
// sits on the cache-hit path: for a plain request the added work is a few compares, no allocation,
// and a synchronous handler is called directly (no promise wrapper).
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { answerServerOptions, isServerOptions } from '../cache/server-options.ts';
import { type FastLimits, type FastPath, type RawConnections, serveFast } from './fast-path.ts';
import { LISTEN_BACKLOG } from './listen-socket.ts';
import { ACCEPT_THEN_CLOSE, vetRequest } from './vet.ts';

export { stripHopByHop } from '../cache/hop-by-hop.ts';

export interface FrontOptions {
  host?: string;
  port?: number;
  /**
   * A listening socket to accept on instead of `host`/`port` (a shard's own SO_REUSEPORT socket,
   * listen-socket.ts); the front owns it from then on and closes it with itself.
   */
  fd?: number;
  maxHeaderBytes?: number;
  maxUrlBytes?: number;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  /**
   * Answers plain, simple GET/HEAD requests straight from raw bytes (a cache's fresh hits); every
   * other request, and the connection it arrived on, goes to the hardened path (fast-path.ts).
   */
  fastPath?: FastPath;
}

export type FrontHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface Front {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  maxHeaderBytes: 16 * 1024,
  maxUrlBytes: 8 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
} as const;

/**
 * Node's parser counts the request line into its header limit. We give it room for both limits
 * plus the method and version, so our own checks decide between 414 and 431; only a head larger
 * than both together trips the parser (and gets 431).
 */
const REQUEST_LINE_SLACK = 64;
/** How long a refused connection may keep sending before we drop it (lingering close). */
const MAX_LINGER_MS = 1_000;
/** How long `close()` lets in-flight responses finish before cutting connections. */
const CLOSE_GRACE_MS = 2_000;

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  413: 'Content Too Large',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  505: 'HTTP Version Not Supported',
};

/** Ready-made responses for connections whose parser is gone or broken: written raw, once. */
const RAW = new Map<number, Buffer>();
for (const status of [400, 408, 413, 431, 501, 505]) {
  RAW.set(status, Buffer.from(`HTTP/1.1 ${status} ${REASONS[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, 'latin1'));
}
const rawResponse = (status: number): Buffer => RAW.get(status) ?? (RAW.get(400) as Buffer);
const CLOSE_HEADERS = ['Connection', 'close', 'Content-Length', '0'];
const ERROR_BODY = 'Internal Server Error\n';
const ERROR_HEADERS = ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(Buffer.byteLength(ERROR_BODY))];

/** Status for a parser or connection error, or 0 to close without a word. */
function statusForClientError(code: string | undefined): number {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 431;
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return 413;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 408;
    case 'HPE_PAUSED_H2_UPGRADE': // "PRI * HTTP/2.0": an HTTP/2 client with prior knowledge
      return 505;
    case 'HPE_CLOSED_CONNECTION': // bytes after "Connection: close": the client asked us to stop
      return 0;
    default:
      return code !== undefined && code.startsWith('HPE_') ? 400 : 0;
  }
}

/** Node's own in-flight response on a socket; we read it to keep pipelined answers in order. */
type HttpSocket = Socket & { _httpMessage?: ServerResponse | null };

function positiveInt(name: string, value: number | undefined, fallback: number, allowZero: boolean): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0 || (!allowZero && value === 0)) {
    throw new RangeError(`FrontOptions.${name} must be ${allowZero ? 'a non-negative' : 'a positive'} integer, got ${value}`);
  }
  return value;
}

/** Starts the front on `host:port` and resolves once it is listening. */
export async function startFront(handler: FrontHandler, options: FrontOptions = {}): Promise<Front> {
  const host = options.host ?? DEFAULTS.host;
  const port = positiveInt('port', options.port, DEFAULTS.port, true);
  const limits = {
    maxHeaderBytes: positiveInt('maxHeaderBytes', options.maxHeaderBytes, DEFAULTS.maxHeaderBytes, false),
    maxUrlBytes: positiveInt('maxUrlBytes', options.maxUrlBytes, DEFAULTS.maxUrlBytes, false),
  };
  const headersTimeout = positiveInt('headersTimeoutMs', options.headersTimeoutMs, DEFAULTS.headersTimeoutMs, false);
  const requestTimeout = positiveInt('requestTimeoutMs', options.requestTimeoutMs, Math.max(DEFAULTS.requestTimeoutMs, headersTimeout), false);
  const keepAliveTimeout = positiveInt('keepAliveTimeoutMs', options.keepAliveTimeoutMs, DEFAULTS.keepAliveTimeoutMs, false);
  if (headersTimeout > requestTimeout) {
    throw new RangeError(`FrontOptions.headersTimeoutMs (${headersTimeout}) must not exceed requestTimeoutMs (${requestTimeout})`);
  }
  const lingerMs = Math.min(MAX_LINGER_MS, headersTimeout);

  /** Sockets we decided to close: later requests parsed from them are dropped, not handled. */
  const refused = new WeakSet<Duplex>();
  /** Refused sockets Node no longer tracks (CONNECT), so `close()` can end them too. */
  const lingering = new Set<Duplex>();

  const server: Server = createServer({
    insecureHTTPParser: false,
    // vet.ts checks Host itself: Node's own 400 for a missing Host does not stop the parser, so a
    // request pipelined behind it would still be handled.
    requireHostHeader: false,
    maxHeaderSize: limits.maxHeaderBytes + limits.maxUrlBytes + REQUEST_LINE_SLACK,
    headersTimeout,
    requestTimeout,
    keepAliveTimeout,
    // Node checks the headers/request deadlines on this interval (30 s by default); a quarter of
    // the shortest deadline bounds how late a slowloris connection is cut.
    connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(headersTimeout / 4))),
    noDelay: true,
  });
  // No silent truncation: with a count limit Node drops fields past it from `rawHeaders` while the
  // parser still frames by them. The byte limit already bounds the count.
  server.maxHeadersCount = 0;
  // Socket inactivity while a response is written (a client that stops reading) ends the
  // connection. Before the response's head is out, the wait is the server's own — a program or an
  // origin working within their own time limits, which may be longer — so the socket stays; the
  // timer starts again with the first byte written.
  server.timeout = requestTimeout;
  server.on('timeout', (socket: HttpSocket) => {
    const inflight = socket._httpMessage;
    if (inflight && inflight.req.complete && !inflight.headersSent) return;
    socket.destroy();
  });

  function fail(err: unknown, req: IncomingMessage, res: ServerResponse): void {
    const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
    console.error(`tinyedge front: handler failed on ${req.method} ${req.url}: ${detail}`);
    // A handler that failed may still write later; that must not become an unhandled 'error'.
    res.on('error', () => {});
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(500, ERROR_HEADERS);
    res.end(ERROR_BODY);
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (refused.has(req.socket)) return; // pipelined behind a refusal: never a request
    const status = vetRequest(req, limits);
    if (status === ACCEPT_THEN_CLOSE) {
      // Answered, then the connection ends (`Connection: close`); nothing after it is a request.
      refused.add(req.socket);
      res.shouldKeepAlive = false;
    } else if (status !== 0) {
      refused.add(req.socket);
      // Through `res`, so it is queued behind earlier pipelined responses; `Connection: close`
      // makes Node end the socket once it is written.
      res.writeHead(status, CLOSE_HEADERS);
      res.end();
      return;
    }
    // `OPTIONS *` asks about this server: answered here, the same for every handler.
    if (isServerOptions(req)) {
      answerServerOptions(req, res);
      return;
    }
    let result: void | Promise<void>;
    try {
      result = handler(req, res);
    } catch (err) {
      fail(err, req, res);
      return;
    }
    if (result !== undefined && result !== null && typeof result.then === 'function') {
      result.then(undefined, (err: unknown) => fail(err, req, res));
    }
  }

  /** Ends a refused connection: waits for earlier responses, writes `status` (if any), lingers. */
  function closeRefused(socket: HttpSocket, status: number): void {
    const inflight = socket._httpMessage;
    if (inflight) {
      if (inflight.req.complete) {
        // An earlier, well-formed request is still being answered; our status must come after it.
        inflight.once('close', () => closeRefused(socket, status));
        return;
      }
      // The broken request is the one being answered (bad chunked body): answer it if we still can.
      if (inflight.headersSent) status = 0;
    }
    if (status === 0 || !socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(rawResponse(status));
    linger(socket);
  }

  /**
   * Keeps reading (and discarding) for a moment after our final write: closing a socket with
   * unread input makes the kernel send RST, which can destroy the error response in flight.
   */
  function linger(socket: Duplex): void {
    lingering.add(socket);
    const timer = setTimeout(() => socket.destroy(), lingerMs);
    timer.unref();
    socket.once('close', () => {
      clearTimeout(timer);
      lingering.delete(socket);
    });
    socket.once('end', () => socket.destroy());
    socket.resume();
  }

  server.on('request', onRequest);

  // `Expect: 100-continue`. Node's own handling writes the interim answer into a response still
  // queued behind an earlier one on the connection, and a Buffer written to that response later
  // goes out before it: the 100 then lands between the final answer's head and body. A queued
  // response sends it once it has the connection, unless its final head is ready by then (RFC
  // 9110 §10.1.1 lets a server skip it; Node then closes the connection after the answer).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if ((req.socket as HttpSocket)._httpMessage === res) res.writeContinue();
    else res.once('socket', () => {
      if (!res.headersSent) res.writeContinue();
    });
    onRequest(req, res);
  });

  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    // After a parse error llhttp repeats it on every later read; answer only the first.
    if (refused.has(socket)) return;
    refused.add(socket);
    const status = statusForClientError(err.code);
    const httpSocket = socket as HttpSocket;
    if (status === 408 && httpSocket._httpMessage) {
      // The deadline passed while a response is still owed: just cut, never answer out of order.
      socket.destroy();
      return;
    }
    closeRefused(httpSocket, status);
  });

  // CONNECT: Node hands us the raw socket (the parser is gone). We are not a forward proxy.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => {});
    refused.add(socket);
    socket.end(rawResponse(501));
    linger(socket);
  });

  server.on('error', (err) => console.error(`tinyedge front: server error: ${err.message}`));

  // With a fast path, connections arrive raw and reach Node's HTTP server only when handed off.
  const fastPath = options.fastPath;
  const raw: RawConnections = { all: new Map<Socket, () => boolean>(), closing: false };
  // Half-open, as Node's HTTP server's sockets are: a client that finishes sending still gets the
  // answer being made for it.
  // One object for every connection: made per connection, each had a map of its own, and the
  // raw path's reads of it (two a request) went megamorphic.
  const fastLimits: FastLimits = { ...limits, headersTimeoutMs: headersTimeout, keepAliveTimeoutMs: keepAliveTimeout, requestTimeoutMs: requestTimeout };
  const listener: Server | NetServer = fastPath === undefined ? server : createNetServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    serveFast(socket, server, fastPath, fastLimits, raw);
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    listener.once('error', onError);
    const listening = (): void => {
      listener.off('error', onError);
      resolve();
    };
    // Node listens again on a descriptor it is handed, with the backlog of its positional argument
    // (it ignores `backlog` among the options there).
    if (options.fd !== undefined) listener.listen({ fd: options.fd }, LISTEN_BACKLOG, listening);
    else listener.listen({ host, port, backlog: LISTEN_BACKLOG }, listening);
  });

  const address = listener.address();
  if (address === null || typeof address === 'string') throw new Error('tinyedge front: listening on an unexpected address');
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;

  return {
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        // Idle keep-alive connections go now; active ones get a grace period, then are cut.
        const cut = setTimeout(() => {
          server.closeAllConnections();
          for (const socket of lingering) socket.destroy();
          // Those answering, and those ended after a held answer whose client has not closed.
          for (const socket of raw.all.keys()) socket.destroy();
        }, CLOSE_GRACE_MS);
        cut.unref();
        // Raw connections are idle between requests; one whose answer is being made ends after it,
        // and one whose answer is held to leave at the turn's end (turn-writes.ts) ends once sent.
        raw.closing = true;
        for (const [socket, answering] of raw.all) {
          if (answering()) continue;
          if (socket.writableLength > 0) socket.end();
          else socket.destroy();
        }
        if (listener === server) {
          server.close(() => {
            clearTimeout(cut);
            resolve();
          });
        } else {
          listener.close(() => {
            clearTimeout(cut);
            resolve();
          });
        }
        server.closeIdleConnections();
        for (const socket of lingering) socket.destroy();
      });
      return closing;
    },
  };
}
