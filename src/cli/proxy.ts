// `tinyedge proxy`: a single-origin caching reverse proxy — the cache engine (src/cache) behind the
// hardened HTTP front (src/http/front.ts), with RFC 9111 defaults: nothing is cached that a
// shared cache may not store. Runs until SIGINT/SIGTERM.
import { Cache } from '../cache/index.ts';
import { startFront, type Front } from '../http/front.ts';
import type { ListenAddress } from './options.ts';

/** The options of `tinyedge proxy`, parsed and checked by ./options.ts. */
export interface ProxyOptions {
  origin: string;
  listen: ListenAddress;
  memory: number;
  hostHeader?: string;
  /** Grace and keep when the response says none, in ms (the config's `defaultGrace` / `defaultKeep`). */
  defaultGrace: number;
  defaultKeep: number;
  /**
   * A path to probe on the origin, and how often (ms, default 5 s); without it there is no probe
   * and the origin counts as healthy: a guessed path (an origin may well answer 404 on `/`) would
   * mark a working origin sick, and a sick origin's stale objects are served without asking it.
   */
  healthCheck?: string;
  healthInterval?: number;
}

/** Starts the proxy and resolves with the exit status once it has been stopped by a signal. */
export async function proxy(opts: ProxyOptions): Promise<number> {
  const healthCheck = opts.healthCheck === undefined ? undefined : { path: opts.healthCheck, intervalMs: opts.healthInterval ?? 5000 };
  const cache = new Cache({ origin: { url: opts.origin, healthCheck }, memoryBytes: opts.memory, hostHeader: opts.hostHeader,
    defaultGraceSec: opts.defaultGrace / 1000, defaultKeepSec: opts.defaultKeep / 1000,
  });
  let front: Front;
  try {
    front = await startFront(cache.handle, { host: opts.listen.host, port: opts.listen.port, fastPath: (r) => cache.fastAnswer(r) });
  } catch (err) {
    await cache.close();
    const { host, port } = opts.listen;
    process.stderr.write(`tinyedge proxy: cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${(err as Error).message}\n`);
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
