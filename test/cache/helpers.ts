// Test harness for the cache: a real origin (node:http on 127.0.0.1:0) that records each request,
// the cache behind the real HTTP front, a manual clock, and a small HTTP client over loopback.
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';
import { Cache, type CacheOptions } from '../../src/cache/index.ts';
import { startFront, type Front } from '../../src/http/front.ts';

/** Servers still open: closed after the file's tests even when an assertion ended a test early. */
const openResources = new Set<() => Promise<void>>();
after(async () => {
  for (const close of [...openResources]) await close().catch(() => undefined);
});

/** Wraps `close` so it runs once and is tracked until then. */
function tracked(close: () => Promise<void>): () => Promise<void> {
  const once = async (): Promise<void> => {
    if (!openResources.delete(once)) return;
    await close();
  };
  openResources.add(once);
  return once;
}

export interface OriginRequest { method: string; url: string; headers: IncomingHttpHeaders; body: string }
export type OriginHandler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

export interface TestOrigin {
  url: string;
  /** Requests seen so far (after their bodies were read). */
  requests: OriginRequest[];
  /** Number of requests received (counted on arrival). */
  hits: number;
  /** TCP connections accepted. */
  connections: number;
  /** When set (startProxy does), the origin's Date header follows the proxy's manual clock. */
  clock: Clock | null;
  handler: OriginHandler;
  close(): Promise<void>;
}

export async function startOrigin(handler: OriginHandler): Promise<TestOrigin> {
  const origin: TestOrigin = {
    url: '', requests: [], hits: 0, connections: 0, handler, clock: null,
    close: tracked(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); })),
  };
  const server: Server = createServer((req, res) => {
    const n = ++origin.hits;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (origin.clock !== null) res.setHeader('date', new Date(origin.clock.t).toUTCString());
      origin.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      origin.handler(req, res, n);
    });
  });
  server.on('connection', () => { origin.connections++; });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return origin;
}

/** A loopback URL nothing listens on (a port just released). */
export async function deadOrigin(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** A clock tests move by hand; starts at the real time so origin Date headers stay consistent. */
export class Clock {
  t = Date.now();
  readonly now = (): number => this.t;
  advance(seconds: number): void {
    this.t += seconds * 1000;
  }
}

export interface TestProxy {
  url: string;
  cache: Cache;
  clock: Clock;
  close(): Promise<void>;
}

export async function startProxy(origin: TestOrigin | string, options: Partial<CacheOptions> = {}): Promise<TestProxy> {
  const clock = new Clock();
  if (typeof origin !== 'string') origin.clock = clock;
  const cache = new Cache({
    origin: typeof origin === 'string' ? origin : origin.url,
    now: clock.now,
    lurkerIntervalMs: 0,
    ...options,
  });
  // As `tinyedge proxy` and `serve` run it: fresh plain hits take the raw fast path.
  const front: Front = await startFront(cache.handle, { host: '127.0.0.1', port: 0, fastPath: (r) => cache.fastAnswer(r) });
  return {
    url: front.url, cache, clock,
    close: tracked(async () => { await front.close(); await cache.close(); }),
  };
}

export interface Reply { status: number; headers: IncomingHttpHeaders; body: string; raw: Buffer }

/** One request on a fresh connection; resolves with the whole response. */
export function send(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // Node's client sends no body for DELETE unless the length is given.
    const headers = options.body === undefined ? options.headers : { 'content-length': String(Buffer.byteLength(options.body)), ...options.headers };
    const req = httpRequest(url, { method: options.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: raw.toString(), raw });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export const get = (base: string, path: string, headers?: Record<string, string>): Promise<Reply> => send(base + path, { headers });

/** A stale-free HTTP date for headers. */
export const httpDate = (ms: number): string => new Date(ms).toUTCString();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every few ms until it holds (or fails after `ms`). */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}
