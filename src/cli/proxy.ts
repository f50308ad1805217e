// `tinyedge proxy`: a single-origin caching reverse proxy — the cache engine (src/cache) behind the
// hardened HTTP front (src/server/front.ts), with RFC 9111 defaults: nothing is cached that a
// shared cache may not store. Runs until SIGINT/SIGTERM.
import type { Command } from 'commander';
import { Cache } from '../cache/index.ts';
import { startFront, type Front } from '../http/front.ts';

const EXIT_USAGE = 2;

/** A bad command-line value; reported as one line on stderr with exit status 2. */
export class UsageError extends Error {}

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4,
  kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3, tb: 1000 ** 4,
  k: 1024, m: 1024 ** 2, g: 1024 ** 3,
};

/** Parses a byte size: `512KiB`, `256MiB`, `1GiB`, `1.5GiB`, `10MB`, or a plain byte count. */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(text);
  const unit = m === null ? undefined : UNITS[(m[2] as string).toLowerCase()];
  if (m === null || unit === undefined) {
    throw new UsageError(`invalid ${what} '${text}': expected a number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB), e.g. 256MiB`);
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes <= 0) throw new UsageError(`invalid ${what} '${text}': must be more than 0 bytes`);
  return bytes;
}

/** Parses `HOST:PORT`, `:PORT` or `PORT` (host defaults to 127.0.0.1); IPv6 as `[::1]:8080`. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d+)$/.exec(text.trim());
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`invalid --listen '${text}': expected HOST:PORT, e.g. 127.0.0.1:8080`);
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/** Checks `--origin`: an http:// URL with a host and nothing but an optional port after it. */
export function parseOrigin(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new UsageError(`invalid --origin '${text}': expected http://HOST:PORT`);
  }
  if (u.protocol !== 'http:') throw new UsageError(`invalid --origin '${text}': only http:// origins are supported`);
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.username !== '') {
    throw new UsageError(`invalid --origin '${text}': expected http://HOST:PORT without a path`);
  }
  return u.origin;
}

function parseHostHeader(text: string): string {
  if (!/^[A-Za-z0-9.\-[\]:]+$/.test(text)) throw new UsageError(`invalid --host-header '${text}': expected a host name, optionally with :PORT`);
  return text;
}

interface ProxyOptions {
  origin: string;
  listen: string;
  memory: string;
  hostHeader?: string;
}

/** Starts the proxy and resolves once it has been stopped by a signal. */
async function runProxy(opts: ProxyOptions): Promise<number> {
  let cache: Cache;
  let listen: { host: string; port: number };
  try {
    const origin = parseOrigin(opts.origin);
    listen = parseListen(opts.listen);
    const memoryBytes = parseSize(opts.memory, '--memory');
    const hostHeader = opts.hostHeader === undefined ? undefined : parseHostHeader(opts.hostHeader);
    cache = new Cache({ origin: { url: origin, healthCheck: { path: '/', intervalMs: 5000 } }, memoryBytes, hostHeader });
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`tinyedge proxy: ${err.message}\n`);
    return EXIT_USAGE;
  }
  let front: Front;
  try {
    front = await startFront(cache.handle, { host: listen.host, port: listen.port, fastPath: (r) => cache.fastHit(r.host, r.url, r.method === 'HEAD') });
  } catch (err) {
    await cache.close();
    process.stderr.write(`tinyedge proxy: cannot listen on ${opts.listen}: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`tinyedge proxy: listening on ${front.url}, origin ${opts.origin}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await front.close();
  await cache.close();
  return 0;
}

export function register(program: Command): void {
  program
    .command('proxy')
    .description('caching reverse proxy for one HTTP origin (RFC 9111 shared cache)')
    .requiredOption('--origin <url>', 'origin server, http://HOST:PORT')
    .option('--listen <addr>', 'address to listen on, HOST:PORT', '127.0.0.1:8080')
    .option('--memory <size>', 'cache size, e.g. 512MiB or 1GiB', '256MiB')
    .option('--host-header <name>', "Host header sent to the origin instead of the client's")
    .action(async (opts: ProxyOptions) => {
      process.exitCode = await runProxy(opts);
    });
}
