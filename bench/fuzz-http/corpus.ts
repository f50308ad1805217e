// The HTTP fuzzer's corpus: valid and hostile HTTP/1.1 requests, the seeds that mutate.ts
// changes. Each seed is built for one case: its paths carry the case's marker, so a response that
// echoes one can be traced to the request that asked for it, and a smuggled request asks for a
// path under /x/smuggled, which no legitimate request of the corpus names.
//
// Paths: `cache` (an origin route of serve, proxy's origin; a miss), `hot` (cached at warm-up, so
// a plain GET is a fast-path hit), `program` (serve's program route; dev serves every path with
// its program).

/** What a seed needs to know about the case it is built for. */
export interface SeedContext {
  /** Host header value the targets serve. */
  readonly host: string;
  /** An origin-route path unique to the case, e.g. /c/k12. */
  readonly cache: string;
  /** A program-route path unique to the case, e.g. /p/k12. */
  readonly program: string;
  /** A path cached at warm-up, e.g. /hot/1. */
  readonly hot: string;
}

export interface Seed {
  readonly name: string;
  /**
   * For a valid request, what the server must do with a follow-up sent behind it when the seed
   * runs unmutated: answer it, or close the connection after saying so. Hostile seeds have none.
   */
  readonly valid?: 'answer' | 'close';
  /**
   * The request bytes, as latin1 strings (one character per byte). Several parts are written
   * separately (a slow client); the mutator sees them joined.
   */
  readonly build: (c: SeedContext) => string[];
}

/** The target of every smuggled request in the corpus. */
export const SMUGGLED_PATH = '/x/smuggled';
const SMUGGLED = (c: SeedContext): string => `GET ${SMUGGLED_PATH} HTTP/1.1\r\nHost: ${c.host}\r\n\r\n`;
/** UTF-8 bytes as latin1 characters: what the wire carries for a non-ASCII path. */
const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
const head = (c: SeedContext, line: string, fields = ''): string => `${line}\r\nHost: ${c.host}\r\n${fields}\r\n`;
const post = (c: SeedContext, fields: string, body: string): string => head(c, `POST ${c.cache} HTTP/1.1`, fields) + body;
const one = (f: (c: SeedContext) => string) => (c: SeedContext): string[] => [f(c)];

export const SEEDS: readonly Seed[] = [
  // Valid requests, in the shapes clients send.
  { name: 'get', valid: 'answer', build: one((c) => head(c, `GET ${c.cache} HTTP/1.1`, 'User-Agent: fuzz\r\nAccept: */*\r\n')) },
  { name: 'get-hot', valid: 'answer', build: one((c) => head(c, `GET ${c.hot} HTTP/1.1`)) },
  { name: 'get-program', valid: 'answer', build: one((c) => head(c, `GET ${c.program}?a=1&b=%20 HTTP/1.1`, 'X-Test: t\r\n')) },
  { name: 'head', valid: 'answer', build: one((c) => head(c, `HEAD ${c.cache} HTTP/1.1`)) },
  { name: 'head-hot', valid: 'answer', build: one((c) => head(c, `HEAD ${c.hot} HTTP/1.1`)) },
  { name: 'get-close', valid: 'close', build: one((c) => head(c, `GET ${c.hot} HTTP/1.1`, 'Connection: close\r\n')) },
  { name: 'post-length', valid: 'answer', build: one((c) => post(c, 'Content-Type: text/plain\r\nContent-Length: 11\r\n', 'hello world')) },
  { name: 'post-program', valid: 'answer', build: one((c) => head(c, `POST ${c.program} HTTP/1.1`, 'Content-Length: 4\r\n') + 'abcd') },
  { name: 'post-chunked', valid: 'answer', build: one((c) => post(c, 'Transfer-Encoding: chunked\r\n', '5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n')) },
  { name: 'put-delete', valid: 'answer', build: one((c) => head(c, `PUT ${c.cache} HTTP/1.1`, 'Content-Length: 2\r\n') + 'ok' + head(c, `DELETE ${c.cache} HTTP/1.1`)) },
  { name: 'pipelined', valid: 'answer', build: one((c) => head(c, `GET ${c.hot} HTTP/1.1`) + head(c, `GET ${c.cache} HTTP/1.1`) + head(c, `HEAD ${c.program} HTTP/1.1`)) },
  { name: 'http10-keep-alive', valid: 'answer', build: one((c) => head(c, `GET ${c.cache} HTTP/1.0`, 'Connection: keep-alive\r\n')) },
  { name: 'http10', valid: 'close', build: one((c) => head(c, `GET ${c.hot} HTTP/1.0`)) },
  { name: 'expect-continue', valid: 'answer', build: (c) => [head(c, `POST ${c.program} HTTP/1.1`, 'Expect: 100-continue\r\nContent-Length: 5\r\n'), 'hello'] },
  { name: 'upgrade', valid: 'close', build: one((c) => head(c, `GET ${c.cache} HTTP/1.1`, 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n')) },
  { name: 'h2c-upgrade', valid: 'close', build: one((c) => head(c, `GET ${c.hot} HTTP/1.1`, 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n')) },
  { name: 'absolute-form', valid: 'answer', build: one((c) => head(c, `GET http://${c.host}${c.cache} HTTP/1.1`)) },
  { name: 'options-star', valid: 'answer', build: one((c) => head(c, 'OPTIONS * HTTP/1.1')) },
  { name: 'utf8-percent-path', valid: 'answer', build: one((c) => head(c, `GET ${c.cache}/${encodeURIComponent('café')}/%E6%97%A5 HTTP/1.1`)) },
  { name: 'conditional', valid: 'answer', build: one((c) => head(c, `GET ${c.hot} HTTP/1.1`, 'If-None-Match: "x", *\r\nRange: bytes=0-3\r\nCache-Control: max-age=0\r\n')) },
  { name: 'many-headers', valid: 'answer', build: one((c) => head(c, `GET ${c.cache} HTTP/1.1`, Array.from({ length: 120 }, (_, i) => `X-H${i}: ${i}\r\n`).join(''))) },
  { name: 'leading-crlf', valid: 'answer', build: one((c) => `\r\n${head(c, `GET ${c.hot} HTTP/1.1`)}`) },
  { name: 'slow-head', valid: 'answer', build: (c) => head(c, `GET ${c.program} HTTP/1.1`, 'Accept: */*\r\n').match(/[^]{1,7}/g) ?? [] },
  { name: 'unknown-method', valid: 'answer', build: one((c) => head(c, `M-SEARCH ${c.cache} HTTP/1.1`)) },
  // Smuggling: two framings, or one that two parsers may read differently.
  { name: 'cl-te', build: one((c) => post(c, 'Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', `0\r\n\r\n${SMUGGLED(c)}`)) },
  { name: 'te-cl', build: one((c) => { const s = SMUGGLED(c); return post(c, 'Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', `${s.length.toString(16)}\r\n${s}\r\n0\r\n\r\n`); }) },
  { name: 'te-te', build: one((c) => post(c, 'Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n', `0\r\n\r\n${SMUGGLED(c)}`)) },
  { name: 'te-space-colon', build: one((c) => post(c, 'Transfer-Encoding : chunked\r\n', `0\r\n\r\n${SMUGGLED(c)}`)) },
  { name: 'te-xchunked', build: one((c) => post(c, 'Transfer-Encoding: xchunked\r\nContent-Length: 3\r\n', `0\r\n\r\n${SMUGGLED(c)}`)) },
  { name: 'te-gzip-chunked', build: one((c) => post(c, 'Transfer-Encoding: gzip, chunked\r\n', '0\r\n\r\n')) },
  { name: 'te-http10', build: one((c) => `POST ${c.cache} HTTP/1.0\r\nHost: ${c.host}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED(c)}`) },
  { name: 'cl-duplicate', build: one((c) => post(c, 'Content-Length: 5\r\nContent-Length: 5\r\n', `hello${SMUGGLED(c)}`)) },
  { name: 'cl-differing', build: one((c) => post(c, 'Content-Length: 0\r\nContent-Length: 44\r\n', SMUGGLED(c))) },
  { name: 'cl-list', build: one((c) => post(c, 'Content-Length: 5, 5\r\n', 'hello')) },
  { name: 'cl-underscore', build: one((c) => post(c, 'Content_Length: 44\r\n', SMUGGLED(c))) },
  { name: 'cl-in-body', valid: 'answer', build: one((c) => post(c, `Content-Length: ${SMUGGLED(c).length}\r\n`, SMUGGLED(c))) },
  { name: 'get-with-body', valid: 'answer', build: one((c) => head(c, `GET ${c.hot} HTTP/1.1`, `Content-Length: ${SMUGGLED(c).length}\r\n`) + SMUGGLED(c)) },
  { name: 'obs-fold', build: one((c) => post(c, 'Transfer-Encoding:\r\n chunked\r\n', `0\r\n\r\n${SMUGGLED(c)}`)) },
  { name: 'bare-lf', build: one((c) => `GET ${c.hot} HTTP/1.1\nHost: ${c.host}\nX-A: b\n\n${SMUGGLED(c)}`) },
  { name: 'bare-cr', build: one((c) => `GET ${c.hot} HTTP/1.1\r\nHost: ${c.host}\rX-A: b\r\n\r\n`) },
  { name: 'chunk-overflow', build: one((c) => post(c, 'Transfer-Encoding: chunked\r\n', `FFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n${SMUGGLED(c)}`)) },
  { name: 'chunk-negative', build: one((c) => post(c, 'Transfer-Encoding: chunked\r\n', `-5\r\nhello\r\n0\r\n\r\n`)) },
  { name: 'chunk-lf', build: one((c) => post(c, 'Transfer-Encoding: chunked\r\n', `5\nhello\n0\n\n${SMUGGLED(c)}`)) },
  { name: 'chunk-extension-huge', build: one((c) => post(c, 'Transfer-Encoding: chunked\r\n', `5;a=${'x'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n`)) },
  // Oversized and odd heads.
  { name: 'huge-header', build: one((c) => head(c, `GET ${c.cache} HTTP/1.1`, `X-Big: ${'a'.repeat(20_000)}\r\n`)) },
  { name: 'huge-url', build: one((c) => head(c, `GET ${c.cache}/${'u'.repeat(10_000)} HTTP/1.1`)) },
  { name: 'lowercase-method', build: one((c) => head(c, `get ${c.hot} HTTP/1.1`)) },
  { name: 'invalid-method', build: one((c) => head(c, `G(T ${c.hot} HTTP/1.1`)) },
  { name: 'utf8-raw-path', build: one((c) => head(c, `GET ${c.cache}/${utf8('café/日本')} HTTP/1.1`)) },
  { name: 'nul-path', build: one((c) => head(c, `GET ${c.cache}\0x HTTP/1.1`)) },
  { name: 'nul-value', build: one((c) => head(c, `GET ${c.hot} HTTP/1.1`, 'X-A: a\0b\r\n')) },
  { name: 'no-host', build: one((c) => `GET ${c.hot} HTTP/1.1\r\n\r\n${SMUGGLED(c)}`) },
  { name: 'two-hosts', build: one((c) => head(c, `GET ${c.hot} HTTP/1.1`, 'Host: other.test\r\n')) },
  { name: 'absolute-userinfo', build: one((c) => head(c, `GET http://user@${c.host}${c.cache} HTTP/1.1`)) },
  { name: 'authority-form', build: one((c) => head(c, `GET ${c.host}:80 HTTP/1.1`)) },
  { name: 'connect', build: one((c) => head(c, `CONNECT ${c.host}:443 HTTP/1.1`) + SMUGGLED(c)) },
  { name: 'http09', build: one((c) => `GET ${c.hot}\r\n\r\n`) },
  { name: 'http2-line', build: one((c) => head(c, `GET ${c.hot} HTTP/2.0`)) },
  { name: 'h2-preface', build: one(() => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n') },
  { name: 'space-in-target', build: one((c) => head(c, `GET ${c.cache} x HTTP/1.1`)) },
  { name: 'dot-segments', valid: 'answer', build: one((c) => head(c, `GET ${c.cache}/../../x/./%2e%2e/y HTTP/1.1`)) },
];
