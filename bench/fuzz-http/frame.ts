// A deliberately strict reference framer for the HTTP fuzzer: where do the requests in some bytes
// end? It accepts only the plainest HTTP/1.1 (CRLF line ends, token names, one Content-Length of
// digits or one `Transfer-Encoding: chunked`, strict chunks, no obs-fold), so whatever it frames,
// every conforming parser frames the same way. When it says the bytes end exactly after a request
// and the connection stays open, a follow-up written next must be read as a request of its own —
// answered, or refused by closing — never merged into another request, never left waiting.
// Anything it does not accept it calls 'unknown', and the fuzzer then claims nothing.

/**
 * boundary: complete requests, ending exactly at the last byte, the connection staying open;
 * ends: a complete request after which the connection is over (`Connection: close`, HTTP/1.0
 * without keep-alive, an Upgrade field, CONNECT), whatever follows; unknown: anything else.
 */
export type Framing = 'boundary' | 'ends' | 'unknown';

const REQUEST_LINE = /^([A-Z]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
const FIELD = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\x21-\x7e\x80-\xff](?:[\x20-\x7e\x80-\xff\t]*[\x21-\x7e\x80-\xff])?)?[ \t]*$/;
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,12})(?:;[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:=[!#$%&'*+\-.^_`|~0-9A-Za-z]+)?)*$/;
const CRLF = Buffer.from('\r\n');

/** Lower-cases A-Z only: a field value may hold obs-text, which no parser folds. */
const asciiLower = (s: string): string => s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) | 0x20));

/** The line starting at `pos` (without its CRLF) and where the next begins, or null if none is complete or it holds a bare CR or LF. */
function line(bytes: Buffer, pos: number): { text: string; next: number } | null {
  const end = bytes.indexOf(CRLF, pos);
  if (end === -1) return null;
  const text = bytes.subarray(pos, end).toString('latin1');
  return /[\r\n]/.test(text) ? null : { text, next: end + 2 };
}

/** Frames one request at `pos`: where the next starts and whether the connection ends after it, or null. */
function request(bytes: Buffer, pos: number): { next: number; ends: boolean } | null {
  const first = line(bytes, pos);
  const m = first === null ? null : REQUEST_LINE.exec(first.text);
  if (first === null || m === null) return null;
  const [, method, , minor] = m;
  let at = first.next;
  let length: number | null = null;
  let chunked = false;
  let close = false;
  let keepAlive = false;
  let upgrade = false;
  for (;;) {
    const l = line(bytes, at);
    if (l === null) return null;
    at = l.next;
    if (l.text === '') break;
    const f = FIELD.exec(l.text);
    if (f === null) return null;
    const name = asciiLower(f[1] as string);
    const value = asciiLower(f[2] ?? '');
    if (name === 'content-length') {
      if (length !== null || !/^[0-9]{1,15}$/.test(value)) return null;
      length = Number(value);
    } else if (name === 'transfer-encoding') {
      if (chunked || value !== 'chunked') return null;
      chunked = true;
    } else if (name === 'connection') {
      // Only SP and HTAB are whitespace here (a JavaScript trim would also take NBSP away).
      const tokens = value.split(',').map((t) => t.replace(/^[ \t]+|[ \t]+$/g, ''));
      close ||= tokens.includes('close');
      keepAlive ||= tokens.includes('keep-alive');
    } else if (name === 'upgrade') {
      upgrade = true;
    } else if (name === 'expect' && value !== '100-continue') {
      return null; // Node answers 417 itself, before the front sees the request
    } else if (name.includes('_')) {
      return null; // Content_Length and friends: some servers read them as framing
    }
  }
  if (chunked && (length !== null || minor === '0')) return null;
  const ends = close || upgrade || method === 'CONNECT' || (minor === '0' && !keepAlive);
  if (method === 'CONNECT') return { next: at, ends };
  if (length !== null) return at + length <= bytes.length ? { next: at + length, ends } : null;
  if (!chunked) return { next: at, ends };
  for (;;) {
    const sizeLine = line(bytes, at);
    const size = sizeLine === null ? null : CHUNK_SIZE.exec(sizeLine.text);
    if (sizeLine === null || size === null) return null;
    const n = parseInt(size[1] as string, 16);
    at = sizeLine.next;
    if (n === 0) break;
    if (at + n + 2 > bytes.length || bytes[at + n] !== 0x0d || bytes[at + n + 1] !== 0x0a) return null;
    at += n + 2;
  }
  for (;;) {
    const trailer = line(bytes, at);
    if (trailer === null) return null;
    at = trailer.next;
    if (trailer.text === '') return { next: at, ends };
    if (!FIELD.test(trailer.text)) return null;
  }
}

/** Frames all of `bytes` as requests (see `Framing`). */
export function strictFraming(bytes: Buffer): Framing {
  if (bytes.length === 0) return 'boundary';
  let pos = 0;
  while (pos < bytes.length) {
    const r = request(bytes, pos);
    if (r === null) return 'unknown';
    if (r.ends) return 'ends';
    pos = r.next;
  }
  return 'boundary';
}
