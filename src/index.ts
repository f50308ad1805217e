// tinyedge: start the multi-tenant edge server from your own code, as `tinyedge serve --config`
// does from the command line: a YAML config file or a validated config, the HTTP front, the VM
// worker pool, the admin API, and reloads without dropped requests. docs/library.md describes this
// entry point and the others (tinyedge/sandbox, tinyedge/cache, tinyedge/node).
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { type Config, type ConfigDiff, loadConfig } from './server/config.ts';
import { EdgeServer } from './server/server.ts';

export { ConfigError, parseConfig, type ParseOptions } from './server/config.ts';
export type * from './server/config/types.ts';
export type { ConfigDiff, Logger };

/** Where the server's config comes from. */
export type ServerSource =
  /** A YAML file (docs/config.md), as `tinyedge serve --config <file>`; `reload()` reads it again. */
  | { configFile: string }
  /** A config already validated, from `parseConfig` or `loadConfig`. */
  | { config: Config };

/** Settings of the process around the config; all optional. */
export interface StartOptions {
  /** The operational log (pino; JSON lines on stdout by default). */
  logger?: Logger;
  /** Listen here instead of the config's `server.listen` (port 0: a free port). */
  listen?: { host: string; port: number };
  /** The admin API here instead of the config's `server.admin` (port 0: a free port). */
  admin?: { host: string; port: number };
}

/** A running edge server. */
export interface RunningServer {
  /** The HTTP front, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** The admin API (docs/admin-api.md). */
  readonly admin: { readonly url: string };
  /** The config in force: the last one applied. */
  readonly config: Config;
  /**
   * Applies `next`, or without it reads the config's file again (`config.file`), as SIGHUP does
   * under `serve`: changed tenants are built first and swapped in without dropping requests; if
   * anything fails, nothing changes and this rejects (with a ConfigError for a file that does not
   * validate). Changes to `server` (addresses, workers) need a restart.
   */
  reload(next?: Config): Promise<ConfigDiff>;
  /** Closes the front and the admin API, lets requests finish, and stops the VM workers. */
  close(): Promise<void>;
}

/**
 * Starts the edge server: the VM worker threads, every tenant's programs (each loaded and warmed
 * up), the HTTP front and the admin API. Rejects with a ConfigError for a config that does not
 * validate (every problem listed, with file and line), and with the failure of any program that
 * cannot be loaded; nothing is left running then. Config warnings are logged.
 *
 * @example
 * const server = await startServer({ configFile: 'tinyedge.yaml' }, { listen: { host: '127.0.0.1', port: 0 } });
 * console.log(`serving on ${server.url}`);
 * process.on('SIGHUP', () => void server.reload().catch((err) => console.error(err.message)));
 */
export async function startServer(source: ServerSource, options: StartOptions = {}): Promise<RunningServer> {
  let config: Config;
  let read: (() => Config) | undefined;
  if ('configFile' in source) {
    // Resolved now: a reload reads the same file even if the working directory changes.
    const file = resolve(source.configFile);
    read = () => loadConfig(file);
    config = read();
  } else config = source.config;
  const server = await EdgeServer.start(config, { logger: options.logger, listen: options.listen, admin: options.admin, configSource: read });
  for (const warning of config.warnings) server.log.warn(warning);
  return {
    url: server.front.url,
    admin: { url: server.admin.url },
    get config() {
      return server.config;
    },
    reload: async (next) => server.reload(next ?? server.loadNextConfig()),
    close: () => server.close(),
  };
}
