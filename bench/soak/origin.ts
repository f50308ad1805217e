// The soak's origin (bench/soak.ts): a node:http server in the soak process that, phase by phase,
// answers normally, goes away and comes back on the same port, resets connections, is slow to its
// first byte, or answers 503. It records when it last sent each cacheable URL (so the soak knows
// which keys the cache holds within grace) and the windows its troubles lasted (so the soak knows
// which failures a client may see).
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type OriginPhase = 'ok' | 'restart' | 'reset' | 'slow' | '5xx';

/** The order the phases come in: trouble alternates with normal service. */
export const PHASE_CYCLE: readonly OriginPhase[] = ['ok', 'restart', 'ok', 'reset', 'ok', 'slow', 'ok', '5xx'];

/** A stretch of time during which the origin was in trouble. */
export interface FaultWindow {
  readonly phase: OriginPhase;
  readonly start: number;
  end: number;
}

/** Freshness the origin gives its objects: `max-age`; the tenants' `defaultGrace` adds the grace. */
export const OBJECT_TTL_S = 2;
const LAST_MODIFIED = 'Mon, 02 Nov 2026 10:00:00 GMT';

/** The body of a cacheable object (`/T/c/K`, and the program's sub-request `/T/sub/K`): 1–24 KiB, fixed per path. */
export function objectBody(path: string): Buffer {
  const seed = createHash('sha256').update(path).digest();
  const size = 1024 + (seed.readUInt16BE(0) % (23 * 1024));
  const line = `${path} ${seed.toString('hex')}\n`;
  return Buffer.from(line.repeat(Math.ceil(size / line.length)).slice(0, size));
}

export function objectEtag(path: string): string {
  return `"${createHash('sha256').update(path).digest('hex').slice(0, 16)}"`;
}

export { LAST_MODIFIED };

/** The body of an uncacheable-after-a-second miss object (`/T/m/N`). */
export function missBody(path: string): string {
  return `miss ${path}\n`;
}

export class SoakOrigin {
  phase: OriginPhase = 'ok';
  /** Per URL: when a response for it last went out whole (200 or 304) in normal service. */
  readonly lastServed = new Map<string, number>();
  readonly windows: FaultWindow[] = [];
  /** Requests that broke a rule the origin checks (beta's recv hook must have marked them). */
  readonly problems: string[] = [];
  private server: Server | null = null;
  private readonly slowTimers = new Set<NodeJS.Timeout>();

  private constructor(readonly port: number, private readonly slowMs: number) {}

  /** Listens on a free loopback port; `slowMs` is how long the slow phase holds the first byte. */
  static async start(slowMs: number): Promise<SoakOrigin> {
    const probe = await listen(createServer(), 0);
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const origin = new SoakOrigin(port, slowMs);
    origin.server = await listen(origin.newServer(), port);
    return origin;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Enters `next`: going into `restart` closes the server, leaving it listens again on the same port. */
  async setPhase(next: OriginPhase, now = Date.now()): Promise<void> {
    if (next === this.phase) return;
    const open = this.windows.at(-1);
    if (this.phase !== 'ok' && open && open.end === Infinity) open.end = now;
    if (next !== 'ok') this.windows.push({ phase: next, start: now, end: Infinity });
    const leaving = this.phase;
    this.phase = next;
    if (next === 'restart' && this.server) {
      const s = this.server;
      this.server = null;
      const closed = new Promise<void>((r) => s.close(() => r()));
      s.closeAllConnections();
      await closed;
    }
    if (leaving === 'restart') this.server = await listen(this.newServer(), this.port);
  }

  /** Drops every connection the server holds (idle keep-alive ones too) and keeps listening. */
  dropConnections(): void {
    this.server?.closeAllConnections();
  }

  async close(): Promise<void> {
    for (const t of this.slowTimers) clearTimeout(t);
    const s = this.server;
    this.server = null;
    if (!s) return;
    const closed = new Promise<void>((r) => s.close(() => r()));
    s.closeAllConnections();
    await closed;
  }

  private newServer(): Server {
    const server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => this.handle(req, res));
    // A reset or a vanished cache leaves sockets with errors nobody waits for.
    server.on('clientError', (_err, socket) => socket.destroy());
    return server;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const phase = this.phase;
    req.resume();
    if (phase === 'reset') {
      req.socket.resetAndDestroy();
      return;
    }
    if (phase === '5xx') {
      res.writeHead(503, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end('origin trouble\n');
      return;
    }
    if (phase === 'slow') {
      // Held past the tenants' firstByteTimeout: the cache gives up first. What goes out late is
      // not recorded as served: the cache may have dropped it.
      const t = setTimeout(() => {
        this.slowTimers.delete(t);
        if (!res.destroyed) this.answer(req, res, false);
      }, this.slowMs);
      this.slowTimers.add(t);
      return;
    }
    this.answer(req, res, true);
  }

  private answer(req: IncomingMessage, res: ServerResponse, record: boolean): void {
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    if (path === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end('ok\n');
      return;
    }
    const kind = /^\/([abg])\/(c|m|sub)\/[^/]+$/.exec(path);
    if (!kind) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such soak path\n');
      return;
    }
    if (kind[1] === 'b' && kind[2] !== 'sub' && req.headers['x-soak-recv'] !== '1') {
      this.problems.push(`${url} reached the origin without beta's recv hook mark`);
    }
    if (kind[2] === 'm') {
      // stale-while-revalidate=0: no grace, gone a second after it is stored.
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=1, stale-while-revalidate=0' }).end(missBody(path));
      return;
    }
    // A sub-request path shares its object's body: the program checks the length it got.
    const objectPath = kind[2] === 'sub' ? path.replace('/sub/', '/c/') : path;
    const etag = objectEtag(objectPath);
    const head = { 'cache-control': `max-age=${OBJECT_TTL_S}`, etag, 'last-modified': LAST_MODIFIED, 'content-type': 'text/plain' };
    if (record && kind[2] === 'c') res.on('finish', () => this.lastServed.set(url, Date.now()));
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, head).end();
      return;
    }
    res.writeHead(200, head).end(objectBody(objectPath));
  }
}

function listen(server: Server, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
