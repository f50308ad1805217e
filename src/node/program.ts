// One tenant program mounted in someone else's Node web server: loaded through a program pool the
// way `serve` loads a program (a loader thread boots it and answers a warm-up request, then the
// pool adopts its snapshot), called the way `serve` calls it (an instance per request, reset
// after each, the program's time limit, a bounded wait for a free slot), and turned into an HTTP
// answer. A failure reaches the client as its class only (src/http/failure.ts); the details go
// to the embedder's logger. The node:http handler and the Fastify plugin are thin shells over this.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { type CallResult, PROGRAM_DEFAULTS, type ProgramOptions, SandboxError, type SandboxRequest, ProgramPool, type Warmup } from '../sandbox/index.ts';
import { endToEndList, endToEndPairs } from '../cache/hop-by-hop.ts';
import { readLimited } from '../http/body.ts';
import { clientFailure } from '../http/failure.ts';

/**
 * Where the adapter reports what clients are not told: why a call failed (with the guest's own
 * message) and the lines a program logged. Pino's and Fastify's loggers fit as they are.
 */
export interface AdapterLogger {
  info(details: Record<string, unknown>, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
}

/** A tenant program and the limits it runs under, as `serve`'s config gives them per program. */
export interface MountOptions extends Omit<ProgramOptions, 'mode'> {
  /** The static x86-64 executable: a file path, or its bytes. */
  program: string | Uint8Array;
  /** `sdk` (default): a program built with the tinyedge SDK; `cgi`: any program speaking CGI/1.1. */
  mode?: ProgramOptions['mode'];
  /** Requests the program runs at once (one VM each); more wait for a free one. Default 4. */
  concurrency?: number;
  /** How long a request waits for a free instance before a 503. Default 100 ms. */
  queueTimeoutMs?: number;
  /** A persistent program's largest batch of waiting requests per VM entry (1 to MAX_BATCH). */
  maxBatch?: number;
  /**
   * The program pool to run on, shared with other mounts and left open by `close()`. Without
   * one, the mount starts its own and closes it with itself. Calls run on the thread that owns
   * the pool, a slice at a time.
   */
  pool?: ProgramPool;
  /** The slice of the mount's own pool, in ms (ignored with `pool`). Default DEFAULT_SLICE_MS (2). */
  sliceMs?: number;
  /** Failures and program log lines; without one they are not reported. */
  logger?: AdapterLogger;
}

/** What to send back: always a complete response, whether the program answered or failed. */
export interface Answer {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer;
}

/** serve's defaults for the pool settings of a program (docs/config.md, `programs[]`). */
const DEFAULT_CONCURRENCY = 4;
const DEFAULT_QUEUE_TIMEOUT_MS = 100;

let mounts = 0;

/** The request-target as a program expects it: origin-form, even if the client sent an absolute URL. */
function originForm(url: string): string {
  if (url.startsWith('/')) return url;
  const u = new URL(url, 'http://invalid');
  return u.pathname + u.search;
}

/** A flat [name, value, …] list as the pairs a program gets or gives. */
function pairs(list: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < list.length; i += 2) out.push([list[i]!, list[i + 1]!]);
  return out;
}

/**
 * The program's response headers as Node writes them: the end-to-end fields only (names
 * lower-case, repeated fields as lists), and the framing ours: the Content-Length of the body we
 * send. A field Node would refuse to write is the program's bad response.
 */
function responseHeaders(result: CallResult): OutgoingHttpHeaders {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of pairs(endToEndPairs(result.headers, true))) {
    const prev = headers[name];
    headers[name] = prev === undefined ? value : [...(Array.isArray(prev) ? prev : [prev]), value];
  }
  return { ...headers, 'content-length': String(result.body.length) };
}

/** The parts of an incoming request the mount reads, from node:http or from Fastify. */
export interface IncomingCall {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: readonly string[];
  remoteAddress?: string;
  serverPort?: number;
}

/** A program loaded in a program pool for one mount, and the requests it is running. */
export class MountedProgram {
  private closed = false;
  /** Calls from their arrival to their answer: `close()` waits for them. */
  private inflight = 0;
  private drained: (() => void) | undefined;

  private constructor(
    private readonly pool: ProgramPool,
    private readonly ownsPool: boolean,
    private readonly key: string,
    private readonly name: string,
    /** Largest request body read into memory for the program. */
    readonly bodyLimit: number,
    private readonly logger: AdapterLogger | undefined,
  ) {}

  /**
   * Starts the pool (unless given one) and loads the program on it; the warm-up request is a GET
   * of `warmupUrl`, as `serve` warms a program up with its first route. Throws, leaving nothing
   * running, when the program cannot be loaded or fails its warm-up.
   */
  static async mount(options: MountOptions, warmupUrl: string): Promise<MountedProgram> {
    const elf = typeof options.program === 'string' ? await readFile(options.program) : Buffer.from(options.program.buffer, options.program.byteOffset, options.program.byteLength);
    const name = options.name ?? (typeof options.program === 'string' ? basename(options.program) : 'program');
    const pool = options.pool ?? (await ProgramPool.start({ sliceMs: options.sliceMs }));
    const key = `node/${name}@${++mounts}`;
    const warmup: Warmup = { req: { method: 'GET', url: warmupUrl, headers: [['Host', 'warmup.invalid'], ['X-Tinyedge-Warmup', '1']], body: new Uint8Array(0) } };
    try {
      await pool.load(key, elf, {
        mode: options.mode ?? 'sdk',
        name,
        memoryMiB: options.memoryMiB,
        timeoutMs: options.timeoutMs,
        initTimeoutMs: options.initTimeoutMs,
        maxRequestBytes: options.maxRequestBytes,
        maxResponseBytes: options.maxResponseBytes,
        env: options.env,
        allowRead: options.allowRead,
        executableMemory: options.executableMemory,
        lifecycle: options.lifecycle,
        resetAfterRequests: options.resetAfterRequests,
        resetAboveDirtyBytes: options.resetAboveDirtyBytes,
        warmup: options.warmup,
        maxBatch: options.maxBatch,
        concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
        queueTimeoutMs: options.queueTimeoutMs ?? DEFAULT_QUEUE_TIMEOUT_MS,
      }, warmup);
    } catch (err) {
      if (!options.pool) await pool.close();
      throw err;
    }
    return new MountedProgram(pool, !options.pool, key, name, options.maxRequestBytes ?? PROGRAM_DEFAULTS.maxRequestBytes, options.logger);
  }

  /**
   * Reads the body (up to `bodyLimit`: a larger one is a 413, its excess read and thrown away so
   * that the client gets that answer; the host server's request timeout bounds how long), runs
   * the request on a free instance and returns what to send. Never throws: any failure becomes its class's status and fixed text,
   * its details go to `logger`.
   */
  async answer(call: IncomingCall, body: Readable | null, logger: AdapterLogger | undefined = this.logger): Promise<Answer> {
    this.inflight++;
    try {
      if (this.closed) throw new SandboxError('internal', `program ${this.name} is closed`);
      const declared = Number(call.headers['content-length']);
      if (declared > this.bodyLimit) throw this.tooLarge(this.bodyLimit);
      const bytes = await readLimited(body, this.bodyLimit, (limit) => this.tooLarge(limit), { discardExcess: true });
      const req: SandboxRequest = {
        method: call.method,
        url: originForm(call.url),
        // As under `serve`: the end-to-end fields, names lower-case, in the client's order.
        headers: pairs(endToEndList(call.rawHeaders)),
        body: bytes,
        remoteAddress: call.remoteAddress,
        serverPort: call.serverPort,
      };
      const result = await this.pool.call(this.key, req);
      for (const line of result.logs) logger?.info({ program: this.name }, line);
      return { status: result.status, headers: responseHeaders(result), body: result.body };
    } catch (err) {
      const failure = clientFailure(err);
      logger?.warn({ program: this.name, method: call.method, url: call.url, status: failure.status, failure: failure.class, err }, err instanceof Error ? err.message : String(err));
      return { status: failure.status, headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(failure.body)), 'cache-control': 'no-store' }, body: Buffer.from(failure.body) };
    } finally {
      if (--this.inflight === 0) this.drained?.();
    }
  }

  /** A body over the limit is the request not fitting the program: the sandbox's own `program` failure. */
  private tooLarge(limit: number): SandboxError {
    return new SandboxError('program', `request body larger than ${limit} bytes`);
  }

  /**
   * Takes no new requests, lets those under way finish, then unloads the program and, when the
   * mount started its pool, closes it: nothing of the mount keeps the process alive after that.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.inflight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    this.pool.unload(this.key);
    if (this.ownsPool) await this.pool.close();
  }
}
