// The node:http side of the embedding adapter: a request handler that answers every request with a
// tenant program running in tiny VMs, for `http.createServer` or any framework that hands out
// Node's request and response objects.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Answer, type IncomingCall, MountedProgram, type MountOptions } from './program.ts';

/** A `node:http` request listener backed by a tenant program, and the way to stop it. */
export interface ProgramHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /**
   * Lets requests under way finish, then unloads the program (and closes the program pool the
   * handler started). Requests that arrive later are answered as an internal failure.
   */
  close(): Promise<void>;
}

/** The parts of a node:http request the program sees. */
export function incomingCall(req: IncomingMessage): IncomingCall {
  return { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, rawHeaders: req.rawHeaders, remoteAddress: req.socket.remoteAddress, serverPort: req.socket.localPort };
}

function send(res: ServerResponse, method: string | undefined, answer: Answer): void {
  res.writeHead(answer.status, answer.headers);
  res.end(method === 'HEAD' ? undefined : answer.body);
}

/**
 * Loads `options.program` and returns a request handler that runs each request on one of its
 * instances (reset after every request), the way `tinyedge serve` runs a tenant's program.
 * Rejects when the program cannot be loaded or fails its warm-up request (`GET /`).
 *
 * @example
 * const handler = await createHandler({ program: 'build/examples/hello', timeoutMs: 500 });
 * http.createServer(handler).listen(8080);
 */
export async function createHandler(options: MountOptions): Promise<ProgramHandler> {
  const mount = await MountedProgram.mount(options, '/');
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    // `answer` never rejects; should writing fail all the same, the connection ends rather than hang.
    mount.answer(incomingCall(req), req).then((answer) => send(res, req.method, answer)).catch((err: unknown) => res.destroy(err instanceof Error ? err : undefined));
  };
  return Object.assign(handler, { close: () => mount.close() });
}
