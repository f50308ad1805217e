// `tinyedge dev`: serves one tenant program over HTTP on 127.0.0.1, every request to its handler,
// for developing a program locally. Requests run one at a time on one instance (a development
// server: the multi-tenant server runs guests on worker threads with instance pools).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Instance, Kvm, KvmError, type Program, ProgramError, SandboxError, type SandboxRequest } from '../sandbox/index.ts';
import { readLimited } from '../http/body.ts';
import { isFixedHopByHop, isFraming } from '../cache/hop-by-hop.ts';
import { clientFailure } from '../http/failure.ts';
import { startFront, stripHopByHop } from '../http/front.ts';
import type { ProgramCliOptions } from './options.ts';
import { loadProgram, programOptions } from './program-options.ts';

export interface DevOptions extends ProgramCliOptions {
  port: number;
  host: string;
}

function toSandboxRequest(req: IncomingMessage, body: Buffer): SandboxRequest {
  const headers: Array<[string, string]> = [];
  // The front leaves a chunked request's Transfer-Encoding (its framing); the program gets the whole body.
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (!isFixedHopByHop(req.rawHeaders[i]!)) headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
  return { method: req.method ?? 'GET', url: req.url ?? '/', headers, body, remoteAddress: req.socket.remoteAddress, serverName: 'localhost', serverPort: req.socket.localPort };
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** The request handler of the dev server: one program, one instance, requests in turn. */
function devHandler(program: Program, instance: Instance, log: (line: string) => void) {
  /** The client gets the failure's class (failure.ts), as under `serve`; the details go to the terminal. */
  const fail = (req: IncomingMessage, res: ServerResponse, err: unknown): void => {
    const f = clientFailure(err);
    sendText(res, f.status, f.body);
    log(`${req.method} ${req.url} ${f.status} ${f.class}: ${err instanceof Error ? err.message : String(err)}`);
  };
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let body: Buffer;
    try {
      body = await readLimited(req, program.limits.maxRequestBytes, (n) => new SandboxError('program', `request body larger than ${n} bytes`), { discardExcess: true });
    } catch (err) {
      fail(req, res, err);
      return;
    }
    try {
      const r = instance.handle(toSandboxRequest(req, body));
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of r.headers) {
        if (isFraming(name)) continue;
        const lower = name.toLowerCase();
        const prev = headers[lower];
        headers[lower] = prev === undefined ? value : [...(Array.isArray(prev) ? prev : [prev]), value];
      }
      stripHopByHop(headers);
      headers['content-length'] = String(r.body.length);
      headers['server-timing'] = `call;dur=${r.timing.callUs / 1000}, reset;dur=${r.timing.resetUs / 1000}`;
      res.writeHead(r.status, headers);
      res.end(req.method === 'HEAD' ? undefined : r.body);
      for (const line of r.logs) log(`  | ${line}`);
      log(`${req.method} ${req.url} ${r.status} ${r.body.length}B call ${r.timing.callUs}µs reset ${r.timing.resetUs}µs (${r.timing.dirtyPages} pages)`);
    } catch (err) {
      fail(req, res, err);
    }
  };
}

/** Runs `tinyedge dev` until SIGINT/SIGTERM; a failure to start sets the exit status. */
export async function dev(path: string, opts: DevOptions): Promise<void> {
  try {
    const kvm = new Kvm();
    const loaded = loadProgram(kvm, path, programOptions(path, opts));
    const instance = loaded.instance();
    const log = (line: string): void => void process.stderr.write(`${line}\n`);
    const front = await startFront(devHandler(loaded, instance, log), { host: opts.host, port: opts.port });
    const t = loaded.timing;
    log(`tinyedge dev: ${path} (${loaded.limits.mode}) booted in ${t.bootUs}µs, initialised in ${t.initUs}µs, snapshot in ${t.snapshotUs}µs`);
    log(`listening on ${front.url}`);
    const stop = (): void => {
      void front.close().then(() => {
        instance.close();
        loaded.close();
        kvm.close();
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  } catch (err) {
    if (err instanceof SandboxError || err instanceof ProgramError || err instanceof KvmError || err instanceof RangeError) {
      process.stderr.write(`tinyedge: ${err.message}\n`);
      process.exitCode = 125;
      return;
    }
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      process.stderr.write(`tinyedge: ${opts.host}:${opts.port} is already in use\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
}
