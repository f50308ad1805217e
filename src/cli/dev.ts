// `tinyedge dev`: serves one tenant program over HTTP on 127.0.0.1, every request to its handler,
// for developing a program locally. Requests run one at a time on one instance (a development
// server: the multi-tenant server runs guests on worker threads with instance pools).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Command } from 'commander';
import { type Instance, Kvm, KvmError, type Program, ProgramError, SandboxError, type SandboxRequest } from '../sandbox/index.ts';
import { readLimited } from '../http/body.ts';
import { startFront, stripHopByHop } from '../http/front.ts';
import { addProgramOptions, loadProgram, port, type ProgramCliOptions, programOptions } from './program-options.ts';

interface DevOptions extends ProgramCliOptions {
  port: string;
  host: string;
}

/** HTTP status for a request that failed inside the sandbox. */
export function statusForFailure(err: SandboxError): number {
  switch (err.kind) {
    case 'timeout': return 504;
    case 'program': return 413;
    case 'internal': return 500;
    default: return 502;
  }
}

function toSandboxRequest(req: IncomingMessage, body: Buffer): SandboxRequest {
  const headers: Array<[string, string]> = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
  return { method: req.method ?? 'GET', url: req.url ?? '/', headers, body, remoteAddress: req.socket.remoteAddress, serverName: 'localhost', serverPort: req.socket.localPort };
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** The request handler of the dev server: one program, one instance, requests in turn. */
export function devHandler(program: Program, instance: Instance, log: (line: string) => void) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let body: Buffer;
    try {
      body = await readLimited(req, program.limits.maxRequestBytes, (n) => new SandboxError('program', `request body larger than ${n} bytes`));
    } catch (err) {
      if (err instanceof SandboxError) sendText(res, 413, `${err.message}\n`);
      return;
    }
    try {
      const r = instance.handle(toSandboxRequest(req, body));
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of r.headers) {
        const lower = name.toLowerCase();
        if (lower === 'content-length' || lower === 'transfer-encoding') continue;
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
      if (!(err instanceof SandboxError)) throw err;
      const status = statusForFailure(err);
      sendText(res, status, `${err.message}\n`);
      log(`${req.method} ${req.url} ${status} ${err.kind}: ${err.message}`);
    }
  };
}

export function register(program: Command): void {
  const cmd = program
    .command('dev')
    .description('serve one tenant program over HTTP on 127.0.0.1 (every request to its handler)')
    .argument('<program>', 'static executable using the SDK (or any program with --cgi)')
    .option('--port <port>', 'port to listen on', '8080')
    .option('--host <addr>', 'address to listen on', '127.0.0.1');
  addProgramOptions(cmd).action(async (path: string, opts: DevOptions) => {
    try {
      const kvm = new Kvm();
      const loaded = loadProgram(kvm, path, programOptions(path, opts));
      const instance = loaded.instance();
      const log = (line: string): void => void process.stderr.write(`${line}\n`);
      const front = await startFront(devHandler(loaded, instance, log), { host: opts.host, port: port(opts.port) });
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
  });
}
