// What `tinyedge dev` serves: one tenant's programs, each loaded on this thread with one instance,
// with its routes, hook programs, origins and key-value store — one program (its sub-requests to
// `--origin`), or a tenant of a config file. The host calls are the server's own (host-calls.ts).
// There is no cache: every request reaches its program, which is what developing one needs.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { isFixedHopByHop, isFraming } from '../cache/hop-by-hop.ts';
import { type Origin, OriginError } from '../cache/index.ts';
import { readLimited } from '../http/body.ts';
import { clientFailure } from '../http/failure.ts';
import { stripHopByHop } from '../http/front.ts';
import { type CallOptions, type CallResult, type HostCalls, type Instance, type Kvm, type LocalProgramOptions, Program, SandboxError, type SandboxRequest } from '../sandbox/index.ts';
import type { ProgramConfig, TenantConfig } from '../server/config.ts';
import { headerPairs, tenantHostCalls } from '../server/host-calls.ts';
import type { KvStore } from '../server/kv.ts';
import { buildRoutes, matchRoute, type Route } from '../server/routes.ts';
import { readProgramFile } from './program-options.ts';

/** A program of the site: its one instance answers one request at a time, in arrival order. */
class DevProgram {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly name: string, readonly program: Program, private readonly instance: Instance) {}

  /** Calls the instance once the calls before have finished. */
  call(req: SandboxRequest, options: CallOptions): Promise<CallResult> {
    const run = this.queue.then(() => this.instance.call(req, options));
    this.queue = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.instance.close();
    this.program.close();
  }
}

/** Loads `file` on this thread and makes its instance; throws like `new Program`. */
export function loadDevProgram(kvm: Kvm, name: string, file: string, options: LocalProgramOptions): DevProgram {
  const program = new Program(kvm, readProgramFile(file), options);
  try {
    return new DevProgram(name, program, program.instance());
  } catch (err) {
    program.close();
    throw err;
  }
}

/** A site's parts: its programs (with their roles and routes), origins (and routes to them) and store. */
export interface DevSiteParts {
  programs: ReadonlyArray<{ config: Pick<ProgramConfig, 'name' | 'roles' | 'routes'>; loaded: DevProgram }>;
  originRoutes: TenantConfig['routes'];
  origins: ReadonlyMap<string, Origin>;
  kv: KvStore;
}

function toSandboxRequest(req: IncomingMessage, url: string, body: Uint8Array): SandboxRequest {
  const headers: Array<[string, string]> = [];
  // The front leaves a chunked request's Transfer-Encoding (its framing); the program gets the whole body.
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (!isFixedHopByHop(req.rawHeaders[i]!)) headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
  return { method: req.method ?? 'GET', url, headers, body, remoteAddress: req.socket.remoteAddress, serverName: 'localhost', serverPort: req.socket.localPort };
}

/** Sets (or, for an empty value, removes) each of `changes` in `headers`. */
function applyHeaders(headers: Array<[string, string]>, changes: ReadonlyArray<readonly [string, string]>): Array<[string, string]> {
  let out = headers;
  for (const [name, value] of changes) {
    const lower = name.toLowerCase();
    out = out.filter(([n]) => n.toLowerCase() !== lower);
    if (value !== '') out.push([name, value]);
  }
  return out;
}

/** A response on its way to the client: a program's (buffered) or an origin's (streamed). */
interface Answer {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer | Readable;
  /** What the log line says about how it was made. */
  note: string;
}

export class DevSite {
  private readonly routes: Route[];
  private readonly recv: DevProgram | undefined;
  private readonly deliver: DevProgram | undefined;
  private readonly byName = new Map<string, DevProgram>();
  private readonly host: HostCalls;

  constructor(private readonly parts: DevSiteParts, private readonly log: (line: string) => void) {
    for (const p of parts.programs) this.byName.set(p.config.name, p.loaded);
    this.routes = buildRoutes({ routes: parts.originRoutes, programs: parts.programs.map((p) => p.config) });
    this.recv = parts.programs.find((p) => p.config.roles.includes('recv'))?.loaded;
    this.deliver = parts.programs.find((p) => p.config.roles.includes('deliver'))?.loaded;
    const host = tenantHostCalls(parts.origins, parts.kv);
    // A failed sub-request reaches the program as -EIO; the developer gets to see why.
    this.host = {
      ...host,
      fetch: async (call) => {
        try {
          return await host.fetch!(call);
        } catch (err) {
          log(`  ! sub-request ${call.method} ${call.url} to origin ${call.origin || 'default'}: ${(err as Error).message}`);
          throw err;
        }
      },
    };
  }

  /** Calls `program`, logging what it logged and what the call cost. */
  private async call(program: DevProgram, req: SandboxRequest, options: CallOptions): Promise<CallResult> {
    const r = await program.call(req, { ...options, host: this.host });
    for (const line of r.logs) this.log(`  | ${line}`);
    return r;
  }

  /** The HTTP handler: recv hook, the route's program or origin, deliver hook, as `serve` runs them. */
  readonly handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let url = req.url ?? '/';
    try {
      let extra: ReadonlyArray<readonly [string, string]> = [];
      let answer: Answer | undefined;
      if (this.recv) {
        const r = await this.call(this.recv, toSandboxRequest(req, url, new Uint8Array(0)), { phase: 'recv' });
        if (r.recv?.action === 'synth') answer = { status: r.status, headers: r.headers, body: r.body, note: `synthesized by ${this.recv.name}` };
        url = r.recv?.url ?? url;
        extra = r.recv?.setHeaders ?? [];
      }
      // As under serve, the deliver hook sees what a program or origin answers, not recv's own answer.
      const synthesized = answer !== undefined;
      answer ??= await this.generate(req, url, extra);
      if (this.deliver && !synthesized) {
        const r = await this.call(this.deliver, toSandboxRequest(req, url, new Uint8Array(0)), { phase: 'deliver', response: { status: answer.status, headers: answer.headers } });
        answer.headers = applyHeaders(answer.headers, r.headers.filter(([n]) => !isFraming(n) && !isFixedHopByHop(n)));
      }
      this.send(req, res, answer);
      this.log(`${req.method} ${url} ${answer.status} ${answer.note}`);
    } catch (err) {
      // An origin's failure says what it is, as `serve` says it; a program's only its class.
      const f = err instanceof OriginError ? { status: err.status, body: `${err.message}\n`, class: 'origin' } : clientFailure(err);
      if (!res.headersSent) {
        res.writeHead(f.status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(f.body) });
        res.end(f.body);
      } else res.destroy();
      this.log(`${req.method} ${url} ${f.status} ${f.class}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  /** The answer of the program or origin that `url` routes to. */
  private async generate(req: IncomingMessage, url: string, extra: ReadonlyArray<readonly [string, string]>): Promise<Answer> {
    const method = req.method ?? 'GET';
    const target = matchRoute(this.routes, this.parts.origins.has('default'), method, url);
    if (target === undefined) {
      req.resume();
      return { status: 404, headers: [['content-type', 'text/plain; charset=utf-8']], body: Buffer.from(`no route for ${method} ${url.split('?')[0]}\n`), note: 'no route' };
    }
    if (target.kind === 'origin') {
      const headers: string[] = [];
      for (const [n, v] of applyHeaders(toSandboxRequest(req, url, new Uint8Array(0)).headers as Array<[string, string]>, extra)) headers.push(n.toLowerCase(), v);
      const resp = await this.parts.origins.get(target.name)!.fetch({ method, path: url, headers, body: method === 'GET' || method === 'HEAD' ? null : req });
      return { status: resp.status, headers: headerPairs(resp.headers), body: resp.body, note: `from origin ${target.name}` };
    }
    const program = this.byName.get(target.name)!;
    const body = await readLimited(req, program.program.limits.maxRequestBytes, (n) => new SandboxError('program', `request body larger than ${n} bytes`), { discardExcess: true });
    const sreq = toSandboxRequest(req, url, body);
    const r = await this.call(program, { ...sreq, headers: applyHeaders(sreq.headers as Array<[string, string]>, extra) }, {});
    const t = r.timing;
    return {
      status: r.status,
      headers: [...r.headers, ['server-timing', `call;dur=${t.callUs / 1000}, reset;dur=${(t.resetUs ?? 0) / 1000}`]],
      body: r.body,
      note: `${r.body.length}B call ${t.callUs}µs reset ${t.resetUs ?? 0}µs (${t.dirtyPages ?? 0} pages)`,
    };
  }

  /** Writes `answer`: its end-to-end fields, our own framing. */
  private send(req: IncomingMessage, res: ServerResponse, answer: Answer): void {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of answer.headers) {
      if (isFraming(name)) continue;
      const lower = name.toLowerCase();
      const prev = headers[lower];
      headers[lower] = prev === undefined ? value : [...(Array.isArray(prev) ? prev : [prev]), value];
    }
    stripHopByHop(headers);
    if (Buffer.isBuffer(answer.body)) {
      headers['content-length'] = String(answer.body.length);
      res.writeHead(answer.status, headers);
      res.end(req.method === 'HEAD' ? undefined : answer.body);
      return;
    }
    res.writeHead(answer.status, headers);
    answer.body.on('error', () => res.destroy());
    answer.body.pipe(res);
  }

  async close(): Promise<void> {
    for (const p of this.byName.values()) p.close();
    await Promise.all([...this.parts.origins.values()].map((o) => o.close()));
  }
}
