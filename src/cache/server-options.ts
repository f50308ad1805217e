// `OPTIONS *` (the asterisk-form request target, RFC 9112 §3.2.4): a question about the server
// itself, not about any resource (RFC 9110 §9.3.7), so whoever receives it answers it: the HTTP
// front does for `serve`, `proxy` and `dev` (and the shards), and the cache engine does for an
// embedder's own server. It is never forwarded: a reverse proxy is the origin server its clients
// talk to, and the origin's own answer would describe a different server (nginx refuses the form
// with a 400; we answer, as RFC 9110 lets any server). Nor could it be: undici sends no `*`
// target, and a forwarded one came back as a 502 (docs/server.md, "OPTIONS *").
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The methods the server takes for a resource: the ones a route of the config may name
 * (config's HTTP_METHODS, which test/http/server-options.test.ts keeps equal to this list).
 * Others reach an origin too, but these are what `Allow` promises.
 */
export const SERVER_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const ALLOW = SERVER_METHODS.join(', ');
/**
 * 200 with an empty body: RFC 9110 §9.3.7 asks for `Content-Length: 0` when an OPTIONS answer
 * has no content, which a 204 may not carry (§8.6). Never stored by anyone (no-store), and not
 * the origin's answer, so no `Via`.
 */
const HEADERS = ['Allow', ALLOW, 'Content-Length', '0', 'Cache-Control', 'no-store'];

/** True for `OPTIONS *`: the front's vetting lets the asterisk-form through only for OPTIONS. */
export function isServerOptions(req: IncomingMessage): boolean {
  return req.url === '*' && req.method === 'OPTIONS';
}

/** Answers `OPTIONS *` here: 200, `Allow`, no body. A request body is read and dropped. */
export function answerServerOptions(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  res.writeHead(200, HEADERS);
  res.end();
}
