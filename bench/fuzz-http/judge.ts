// The HTTP fuzzer's verdicts: parses what a server sent back on one connection into responses
// (strictly: a malformed status line, header line or chunked body is a finding) and checks that
// the follow-up request written after the fuzzed bytes was answered as itself — never by a
// response that belongs to other bytes (a desync), never with anything after a response that said
// `Connection: close`, never merged into a request the bytes before it had completed (frame.ts
// says which). Also the patterns of a server's output that mean an unhandled exception.
import type { Framing } from './frame.ts';

export interface ParsedResponse {
  readonly status: number;
  /** Header fields by lowercase name, values in order. */
  readonly headers: ReadonlyMap<string, string[]>;
  readonly body: Buffer;
  /** False when the stream ended inside this response's head or body. */
  readonly complete: boolean;
}

export interface ParsedStream {
  /** Final responses, in order (1xx interim responses are counted, not listed). */
  readonly responses: ParsedResponse[];
  readonly interim: number;
  /** Why the stream is not well-formed HTTP/1.1, or null. */
  readonly malformed: string | null;
}

const STATUS_LINE = /^HTTP\/1\.[01] ([1-5][0-9]{2}) [\t\x20-\x7e]*$/;
const FIELD_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[\t ]*([\t\x20-\x7e\x80-\xff]*?)[\t ]*$/;
const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const RESPONSE_START = Buffer.from('HTTP/1.');

/** Splits everything a server sent on one connection into responses. */
export function parseResponses(data: Buffer): ParsedStream {
  const responses: ParsedResponse[] = [];
  let interim = 0;
  let pos = 0;
  const fail = (why: string): ParsedStream => ({ responses, interim, malformed: `${why} at byte ${pos}: ${JSON.stringify(data.subarray(pos, pos + 80).toString('latin1'))}` });
  while (pos < data.length) {
    const headEnd = data.indexOf(CRLFCRLF, pos);
    if (headEnd === -1) {
      // The stream ended inside a head: it must at least start like one.
      if (!'HTTP/1.'.startsWith(data.subarray(pos, pos + RESPONSE_START.length).toString('latin1'))) return fail('not a status line');
      responses.push({ status: 0, headers: new Map(), body: Buffer.alloc(0), complete: false });
      return { responses, interim, malformed: null };
    }
    const lines = data.subarray(pos, headEnd).toString('latin1').split('\r\n');
    const statusMatch = STATUS_LINE.exec(lines[0] as string);
    if (statusMatch === null) return fail('bad status line');
    const status = Number(statusMatch[1]);
    const headers = new Map<string, string[]>();
    for (const line of lines.slice(1)) {
      const m = FIELD_LINE.exec(line);
      if (m === null) return fail(`bad header line ${JSON.stringify(line)}`);
      const name = (m[1] as string).toLowerCase();
      headers.set(name, [...(headers.get(name) ?? []), m[2] as string]);
    }
    pos = headEnd + 4;
    if (status < 200) {
      interim++;
      continue;
    }
    const te = headers.get('transfer-encoding');
    const cl = headers.get('content-length');
    if (te !== undefined && cl !== undefined) return fail('Transfer-Encoding and Content-Length together');
    if (status === 204 || status === 304) {
      responses.push({ status, headers, body: Buffer.alloc(0), complete: true });
    } else if (te !== undefined) {
      if (te.join(',').toLowerCase().replace(/\s/g, '') !== 'chunked') return fail(`transfer coding ${te.join(',')}`);
      const chunks: Buffer[] = [];
      for (;;) {
        const lineEnd = data.indexOf(CRLF, pos);
        if (lineEnd === -1) {
          responses.push({ status, headers, body: Buffer.concat(chunks), complete: false });
          return { responses, interim, malformed: null };
        }
        const sizeText = data.subarray(pos, lineEnd).toString('latin1').split(';')[0] as string;
        if (!/^[0-9A-Fa-f]{1,8}$/.test(sizeText)) return fail('bad chunk size');
        const size = parseInt(sizeText, 16);
        pos = lineEnd + 2;
        if (size === 0) {
          const trailersEnd = data.indexOf(CRLF, pos) === pos ? pos : data.indexOf(CRLFCRLF, pos);
          if (trailersEnd === -1) {
            responses.push({ status, headers, body: Buffer.concat(chunks), complete: false });
            return { responses, interim, malformed: null };
          }
          pos = trailersEnd + (trailersEnd === pos ? 2 : 4);
          break;
        }
        if (pos + size + 2 > data.length) {
          chunks.push(data.subarray(pos, Math.min(data.length, pos + size)));
          responses.push({ status, headers, body: Buffer.concat(chunks), complete: false });
          return { responses, interim, malformed: null };
        }
        if (data[pos + size] !== 0x0d || data[pos + size + 1] !== 0x0a) return fail('chunk data longer than its size');
        chunks.push(data.subarray(pos, pos + size));
        pos += size + 2;
      }
      responses.push({ status, headers, body: Buffer.concat(chunks), complete: true });
    } else if (cl !== undefined) {
      if (cl.length !== 1 || !/^[0-9]{1,15}$/.test(cl[0] as string)) return fail(`bad Content-Length ${cl.join(', ')}`);
      const length = Number(cl[0]);
      // The answer to HEAD has the GET's Content-Length and no body. The bodies these targets
      // send never start like a response, so a response right after the head means no body.
      if (length > 0 && (pos === data.length || data.subarray(pos, pos + RESPONSE_START.length).equals(RESPONSE_START))) {
        responses.push({ status, headers, body: Buffer.alloc(0), complete: true });
        continue;
      }
      const complete = pos + length <= data.length;
      responses.push({ status, headers, body: data.subarray(pos, Math.min(data.length, pos + length)), complete });
      pos = Math.min(data.length, pos + length);
    } else {
      // Delimited by the close: everything left.
      responses.push({ status, headers, body: data.subarray(pos), complete: true });
      pos = data.length;
    }
  }
  return { responses, interim, malformed: null };
}

/** What the client did on one connection. */
export interface Conversation {
  /** Everything the server sent. */
  readonly received: Buffer;
  /** The server closed the connection (FIN or reset) before the fuzzer gave up waiting. */
  readonly closed: boolean;
  /** The follow-up request was written after the fuzzed bytes (the connection was still open). */
  readonly followUpSent: boolean;
  /** The follow-up's target, its X-Follow field (echoed by origin and program), and the exact body of its answer. */
  readonly followUpPath: string;
  readonly followUpId: string;
  readonly followUpBody: string;
  /** How the reference framer reads the bytes sent before the follow-up (frame.ts). */
  readonly framing: Framing;
}

export type CaseOutcome = 'answered' | 'refused' | 'dropped' | 'merged' | 'unanswered';

export interface Verdict {
  /**
   * answered: the follow-up got its own answer; refused: the server closed, its last response
   * saying so (or it said nothing); dropped: it closed right after a keep-alive response (a body
   * that turned out malformed after the head was answered); merged: the follow-up's head was read
   * as part of an unfinished request before it; unanswered: still open at the deadline.
   */
  readonly outcome: CaseOutcome;
  readonly responses: number;
  readonly statuses: number[];
  /** The X-Echo-Url of each response ('' for one without): which request each answered. */
  readonly echoes: string[];
  /** What is wrong, or null. */
  readonly problem: string | null;
}

const hasClose = (r: ParsedResponse): boolean => (r.headers.get('connection') ?? []).some((v) => /(^|,)\s*close\s*(,|$)/i.test(v));

/** Judges one conversation: the invariants that hold whatever bytes were sent before the follow-up. */
export function judge(c: Conversation): Verdict {
  const parsed = parseResponses(c.received);
  const statuses = parsed.responses.map((r) => r.status);
  const echoes = parsed.responses.map((r) => r.headers.get('x-echo-url')?.[0] ?? '');
  const verdict = (outcome: CaseOutcome, problem: string | null): Verdict => ({ outcome, responses: parsed.responses.length, statuses, echoes, problem });
  if (parsed.malformed !== null) return verdict('refused', `malformed response stream: ${parsed.malformed}`);
  const rs = parsed.responses;
  const closeAt = rs.findIndex(hasClose);
  if (closeAt !== -1 && closeAt < rs.length - 1) return verdict('refused', `a response after one that said Connection: close (statuses ${statuses.join(' ')})`);
  // The follow-up's head read as part of another request: right when the bytes before it left a
  // request unfinished, the classic desync when they were complete (a smuggled prefix left
  // waiting on the connection takes the next request's head as its own fields).
  const merged = rs.find((r) => (r.headers.get('x-echo-follow') ?? []).includes(c.followUpId) && !(r.headers.get('x-echo-url') ?? []).includes(c.followUpPath));
  if (merged !== undefined) {
    return verdict('merged', c.framing === 'unknown' ? null : `the follow-up's fields reached the backend in a request for ${merged.headers.get('x-echo-url')?.[0] ?? '?'} (statuses ${statuses.join(' ')})`);
  }
  const followAt = rs.findIndex((r) => (r.headers.get('x-echo-url') ?? []).includes(c.followUpPath));
  if (followAt !== -1) {
    const r = rs[followAt] as ParsedResponse;
    if (!c.followUpSent) return verdict('answered', 'the follow-up was answered though it was never sent');
    if (c.framing === 'ends') return verdict('answered', 'the follow-up was answered after a request that ends the connection');
    if (followAt !== rs.length - 1) return verdict('answered', `the follow-up's answer is not the last (statuses ${statuses.join(' ')})`);
    // Still arriving when the fuzzer stopped waiting: a slow server, not a wrong one.
    if (!r.complete && !c.closed) return verdict('unanswered', null);
    if (r.status !== 200 || !r.complete || r.body.toString('latin1') !== c.followUpBody) {
      return verdict('answered', `the follow-up's answer is wrong: ${r.status}, ${r.complete ? '' : 'incomplete, '}body ${JSON.stringify(r.body.toString('latin1').slice(0, 200))}`);
    }
    return verdict('answered', null);
  }
  // Complete requests before it: a server still waiting has framed them differently.
  if (!c.closed) return verdict('unanswered', c.framing === 'boundary' && c.followUpSent ? 'the follow-up behind complete requests was left waiting' : null);
  // Closed without answering the follow-up. A server may do that at any time; it is not a desync.
  const last = rs[rs.length - 1];
  return verdict(c.followUpSent && last !== undefined && last.complete && !hasClose(last) ? 'dropped' : 'refused', null);
}

/**
 * Lines of a server's stdout or stderr that mean an exception escaped where it should have been
 * handled: a stack frame, Node's uncaught-exception and unhandled-rejection reports, the front's
 * report of a handler that threw, and pino error records with a stack.
 */
const EXCEPTION_LINE = /^\s+at \S|\bUncaught\b|\bunhandled\b|tinyedge front: handler failed|"stack":"|^[A-Za-z]*Error(?: \[[A-Z_]+\])?: |^node:internal/i;

export function exceptionLines(output: string): string[] {
  return output.split('\n').filter((line) => EXCEPTION_LINE.test(line));
}
