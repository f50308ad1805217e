// The front's raw fast path: connections start here, not in Node's HTTP server. A request that is
// plainly well-formed and plainly simple (GET or HEAD, origin-form target, HTTP/1.1, one valid
// Host, no body, no conditionals, ranges, credentials or connection options) is offered to
// `fastPath`; when that answers — at once (a cache hit) or later (a program's answer) — the bytes
// go straight to the socket, answers in the order their requests came. The first byte
// of anything else — unusual, malformed, hostile, or just not a fast hit — hands the connection,
// with every unread byte, to Node's HTTP server for good, where the hardened path (front.ts,
// vet.ts) judges it. So the fast path never has to be right about hostile input: it only has to
// recognise the narrow shape it accepts and decline everything else.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { FastResponse, RawRequest } from '../cache/index.ts';
import { isFixedHopByHop } from '../cache/hop-by-hop.ts';
import { holdUntilTurnEnds } from './turn-writes.ts';

/** A request in the fast shape: what the cache's raw path reads, and whether the connection ends after it. */
export interface FastRequest extends RawRequest {
  /** `Connection: close`: the connection ends after this answer. */
  close: boolean;
}

/**
 * Answers a fast request: bytes now, bytes later (the answer is then committed: nothing of the
 * request goes the long way), or null to hand the connection to the hardened path.
 */
export type FastPath = (req: FastRequest) => FastResponse | Promise<FastResponse> | null;

export interface FastLimits {
  /** Longest target and largest header block (after the request line) accepted here; past either
   * the request is handed to the hardened path, which answers 414 or 431 as it would anyway. */
  maxUrlBytes: number;
  maxHeaderBytes: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** How long a client that stopped reading may keep an answer waiting. */
  requestTimeoutMs: number;
}

/**
 * End-to-end fields that change what a request means (a body, credentials, conditionals, ranges):
 * their presence sends it the long way, as does any hop-by-hop field but a plain `Connection:
 * close` or `keep-alive` (hop-by-hop.ts has the list). Cache-Control is passed on, once, for the
 * fast path to judge.
 */
const DECLINE = new Set([
  'content-length', 'expect', 'authorization', 'pragma', 'range', 'if-range', 'if-none-match',
  'if-modified-since', 'if-match', 'if-unmodified-since', 'http2-settings', 'max-forwards',
]);

const CRLFCRLF = Buffer.from('\r\n\r\n');
/** An answer whose body is at most this size goes out as one buffer, head and body copied together. */
const ONE_WRITE_BYTES = 16 * 1024;
const CONNECTION_CLOSE = Buffer.from('connection: close\r\n\r\n', 'latin1');
const TIMEOUT_408 = Buffer.from('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', 'latin1');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const TARGET = /^\/[\x21-\x7e]*$/;

/** A complete request head in `buf` (up to `end`) in the accepted shape, or null to decline it. */
export function parseSimpleHead(buf: Buffer, end: number, limits: Pick<FastLimits, 'maxUrlBytes' | 'maxHeaderBytes'>): FastRequest | null {
  const text = buf.toString('latin1', 0, end);
  // Line by line without splitting the head into an array of lines first.
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd < 0) lineEnd = text.length;
  const first = text.slice(0, lineEnd);
  if (end - first.length > limits.maxHeaderBytes) return null;
  let method: 'GET' | 'HEAD';
  let rest: string;
  if (first.startsWith('GET ')) {
    method = 'GET';
    rest = first.slice(4);
  } else if (first.startsWith('HEAD ')) {
    method = 'HEAD';
    rest = first.slice(5);
  } else return null;
  if (!rest.endsWith(' HTTP/1.1')) return null;
  const url = rest.slice(0, -9);
  if (url.length > limits.maxUrlBytes || !TARGET.test(url)) return null;
  let host: string | undefined;
  let cacheControl: string | undefined;
  let close = false;
  const fields: string[] = [];
  while (lineEnd < text.length) {
    const start = lineEnd + 2;
    lineEnd = text.indexOf('\r\n', start);
    if (lineEnd < 0) lineEnd = text.length;
    const line = text.slice(start, lineEnd);
    const colon = line.indexOf(':');
    // No bare CR or LF, no obs-fold, no empty or odd names.
    if (colon <= 0 || line.includes('\n') || line.includes('\r')) return null;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return null;
    const value = line.slice(colon + 1).trim();
    if (!FIELD_VALUE.test(value)) return null;
    const lower = name.toLowerCase();
    if (DECLINE.has(lower)) return null;
    if (lower === 'connection') {
      // Any other option names a field the hardened path must strip.
      const option = value.toLowerCase();
      if (option === 'close') close = true;
      else if (option !== 'keep-alive') return null;
    } else if (isFixedHopByHop(name)) return null;
    if (lower === 'host') {
      if (host !== undefined || !HOST.test(value)) return null;
      // A string of its own rather than a slice of the head: it is compared per request (the
      // tenant's lookup, the live log's record), and two slices compare through V8's runtime.
      let at = start + colon + 1;
      while (text.charCodeAt(at) === 0x20 || text.charCodeAt(at) === 0x09) at++;
      host = buf.toString('latin1', at, at + value.length);
    } else if (lower === 'cache-control') {
      if (cacheControl !== undefined) return null;
      cacheControl = value;
    }
    fields.push(lower, value);
  }
  return host === undefined ? null : { method, url, host, close, cacheControl, fields, clientIp: undefined };
}

/** The raw connections of a front, and whether the front is closing. */
export interface RawConnections {
  /**
   * Every raw connection, and how to ask whether its answer is being made (a program runs):
   * `close()` lets those finish. Asked of the connection, not kept beside it: a set of the
   * answering connections, added to and deleted from per request, made the collector copy its
   * tables (they live long).
   */
  readonly all: Map<Socket, () => boolean>;
  /** Set by the front's close: a connection ends after the answer it owes. */
  closing: boolean;
}

const failure = (err: unknown): Buffer => {
  console.error(`tinyedge front: fast answer failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return Buffer.from('HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\n\r\nInternal Server Error\n', 'latin1');
};

/**
 * Serves `socket` on the fast path until a request is declined, then gives the socket and its
 * unread bytes to `http` (Node's HTTP server, which must not be listening itself).
 */
export function serveFast(socket: Socket, http: Server, fastPath: FastPath, limits: FastLimits, conns: RawConnections): void {
  let pending: Buffer | null = null;
  let handedOff = false;
  /** The request whose answer is being made: requests pipelined behind it wait their turn in `pending`. */
  let answering: FastRequest | null = null;
  /** Reading stopped because too much arrived while answering. */
  let heldBack = false;
  /** The client finished sending (the front's sockets allow half-open connections). */
  let clientEnded = false;
  conns.all.set(socket, () => answering !== null);
  socket.setNoDelay(true);
  /**
   * The peer's address, read once: it cannot change, and Node's getter ran for every request
   * (0.8 % of a hit's server time in a perf profile of 100 B hits).
   */
  const clientIp = socket.remoteAddress;

  // A request's head must be complete within the headers deadline, counted from its first byte
  // (or from the connection for the first one); between requests the idle deadline applies.
  // While an answer is made, no deadline runs: the program's or origin's own time limit bounds it.
  // Each deadline is one timer per connection, restarted (`refresh`) rather than made anew per
  // request; a timer whose deadline no longer applies does nothing when it fires.
  let deadline: 'head' | 'idle' | 'none' = 'head';
  const headTimer = setTimeout(() => {
    if (deadline !== 'head') return;
    if (pending !== null && pending.length > 0) socket.end(TIMEOUT_408);
    socket.destroy();
  }, limits.headersTimeoutMs).unref();
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** A client that stopped reading: cut after the request deadline unless it drains. */
  let stallTimer: ReturnType<typeof setTimeout> | undefined;
  const waitForHead = (): void => {
    deadline = 'head';
    headTimer.refresh();
  };
  const waitIdle = (): void => {
    deadline = 'idle';
    if (idleTimer === undefined) {
      idleTimer = setTimeout(() => {
        if (deadline === 'idle') socket.destroy();
      }, limits.keepAliveTimeoutMs).unref();
    } else idleTimer.refresh();
  };
  const stopTimers = (): void => {
    deadline = 'none';
    clearTimeout(headTimer);
    clearTimeout(idleTimer);
    clearTimeout(stallTimer);
  };
  const maxHeadBytes = limits.maxUrlBytes + limits.maxHeaderBytes + 64;

  const handOff = (): void => {
    handedOff = true;
    stopTimers();
    conns.all.delete(socket);
    if (clientEnded) {
      // The client finished sending before an earlier answer was made: Node's server cannot take
      // a stream that has ended, so the connection ends here, its answers so far written.
      socket.end();
      return;
    }
    socket.removeListener('data', onData);
    socket.removeListener('end', onEnd);
    socket.pause();
    if (pending !== null && pending.length > 0) socket.unshift(pending);
    pending = null;
    http.emit('connection', socket);
    // Node's server reads unshifted bytes through the stream, which we paused: let them flow.
    socket.resume();
  };

  function onData(chunk: Buffer): void {
    pending = pending === null ? chunk : Buffer.concat([pending, chunk]);
    if (answering !== null) {
      // Pipelined behind an answer being made: kept for later, within bounds.
      if (pending.length > maxHeadBytes && !heldBack) {
        heldBack = true;
        socket.pause();
      }
      return;
    }
    answerPending();
  }

  /** Answers the complete requests buffered in `pending`, in order, until one is declined or must wait. */
  function answerPending(): void {
    while (pending !== null && !handedOff && answering === null) {
      const buf: Buffer = pending;
      const end: number = buf.indexOf(CRLFCRLF);
      if (end < 0) {
        if (buf.length > maxHeadBytes) handOff();
        // A head that came whole needed no deadline; one still arriving runs against it from now.
        else if (deadline !== 'head') waitForHead();
        return;
      }
      const req = parseSimpleHead(buf, end, limits);
      if (req !== null) req.clientIp = clientIp;
      const answer = req === null ? null : offer(req);
      if (req === null || answer === null) {
        handOff();
        return;
      }
      pending = buf.length > end + 4 ? buf.subarray(end + 4) : null;
      if (answer instanceof Promise) {
        answering = req;
        deadline = 'none';
        void answer.then(settle, settleFailed);
        return;
      }
      if (!write(req, answer)) return;
    }
  }

  /**
   * The answer being made (for `answering`) is ready: out it goes, then the requests behind it.
   * One pair of handlers per connection, not per request: one answer is made at a time.
   */
  function settle(a: FastResponse | Buffer): void {
    const req = answering!;
    answering = null;
    if (socket.destroyed) return;
    if (Buffer.isBuffer(a)) {
      socket.end(a);
      return;
    }
    if (!write(req, a)) return;
    if (heldBack) {
      heldBack = false;
      socket.resume();
    }
    answerPending();
    if (clientEnded && answering === null && !handedOff) socket.end();
  }

  function settleFailed(err: unknown): void {
    settle(failure(err));
  }

  /** The fast path's answer; one that throws declines (the hardened path then answers), and is logged. */
  function offer(req: FastRequest): FastResponse | Promise<FastResponse> | null {
    try {
      return fastPath(req);
    } catch (err) {
      console.error(`tinyedge front: fast path failed on ${req.method} ${req.url}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return null;
    }
  }

  /** Writes one answer; false when the connection ends or must wait for the client to read. */
  function write(req: FastRequest, answer: FastResponse): boolean {
    const close = req.close || conns.closing;
    const { head, body } = answer;
    // Leaves with the other answers of this turn (turn-writes.ts); `end()` lets it go at once.
    holdUntilTurnEnds(socket);
    let flowing: boolean;
    if (close) {
      // As Node does: say so, answer, end; whatever the client sent after is not read.
      socket.cork();
      socket.write(head.subarray(0, head.length - 2));
      socket.write(CONNECTION_CLOSE);
      flowing = body === null ? true : writeBody(socket, body, answer.lease);
      socket.uncork();
    } else if (body === null) flowing = socket.write(head);
    else if (body.length <= ONE_WRITE_BYTES) {
      // A small answer goes out in one write of one buffer (a body in shared storage is copied
      // out now, so it needs no hold): cheaper than a corked head and body, which Node sends as
      // a gathered write with its own bookkeeping.
      flowing = socket.write(Buffer.concat([head, body], head.length + body.length));
    } else {
      socket.cork();
      socket.write(head);
      flowing = writeBody(socket, body, answer.lease);
      socket.uncork();
    }
    if (close) {
      handedOff = true;
      stopTimers();
      socket.removeListener('data', onData);
      socket.end();
      return false;
    }
    if (pending === null) waitIdle();
    else waitForHead();
    if (!flowing) {
      // A client that sends but does not read: stop reading until it catches up, or cut it.
      socket.pause();
      deadline = 'none';
      stallTimer = setTimeout(() => void socket.destroy(), limits.requestTimeoutMs).unref();
      socket.once('drain', () => {
        clearTimeout(stallTimer);
        if (pending === null) waitIdle();
        else waitForHead();
        heldBack = false;
        socket.resume();
        answerPending();
      });
      return false;
    }
    return true;
  }

  function onEnd(): void {
    // The client is done sending; an answer being made still goes out, then the socket ends.
    clientEnded = true;
    if (answering === null) socket.end();
  }

  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', () => socket.destroy());
  socket.once('close', () => {
    stopTimers();
    conns.all.delete(socket);
  });
}

/** Writes a fast answer's body; a body in shared storage is held until the socket is done with it. */
function writeBody(socket: Socket, body: Buffer, lease: FastResponse['lease']): boolean {
  if (lease === undefined || lease === null) return socket.write(body);
  lease.hold();
  return socket.write(body, () => lease.release());
}
