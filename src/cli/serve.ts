// `tinyedge serve`: the multi-tenant edge server. With --config it serves that file; without, the
// embedded default: a demo tenant on localhost:8080 with a demo origin and the demo program that
// `npm run build` compiled into the package.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ReserveError } from '../cache/index.ts';
import { KvmError, SandboxError } from '../sandbox/index.ts';
import { type Config, ConfigError, defaultConfig, loadConfig } from '../server/config.ts';
import { DEMO_PROGRAM, PACKAGE_ROOT } from '../server/config/default.ts';
import { type DemoOrigin, startDemoOrigin } from '../server/demo-origin.ts';
import { EdgeServer } from '../server/server.ts';
import { port } from './options.ts';

export interface ServeOptions {
  config?: string;
}

const say = (line: string): void => void process.stderr.write(`${line}\n`);

/** A problem with the command's setup, said in one line; exit status 2. */
class SetupError extends Error {}

function printUrls(server: EdgeServer, demo: DemoOrigin | undefined): void {
  say(`tinyedge: serving ${server.tenants.size} tenant(s) on ${server.front.url} (admin API on ${server.admin.url})`);
  if (!demo) return;
  const frontPort = server.front.port;
  say(`  demo origin on ${demo.url}; try:`);
  say(`    curl -i http://localhost:${frontPort}/                  # the demo origin's page, cached (see Age, X-Cache)`);
  say(`    curl -i http://localhost:${frontPort}/hello             # answered by the demo program in a tiny VM`);
  say(`    curl -s -H 'Authorization: Bearer ${server.config.tenants[0]?.token ?? ''}' ${server.admin.url}/v1/tenants/demo/stats`);
  const op = server.config.server.operatorToken;
  if (op === null) return;
  say(`  operator token: ${op}  (change it with TINYEDGE_OPERATOR_TOKEN)`);
  say(`    TINYEDGE_TOKEN=${op} npx tinyedge log --admin ${server.admin.url}     # every request, live`);
  say(`    TINYEDGE_TOKEN=${op} npx tinyedge stat --admin ${server.admin.url}    # per-tenant rates`);
}

/**
 * Starts the demo origin on TINYEDGE_DEMO_ORIGIN_PORT (9080 unless set; 0 picks a free port), with
 * the embedded default as it reads with the port the origin really got.
 */
async function startDefault(): Promise<{ demo: DemoOrigin; source: () => Config }> {
  const program = join(PACKAGE_ROOT, DEMO_PROGRAM);
  if (!existsSync(program)) throw new SetupError(`the demo program ${program} is missing: run \`npm run build\` in ${PACKAGE_ROOT} first`);
  const asked = process.env.TINYEDGE_DEMO_ORIGIN_PORT || '9080';
  let demoPort: number;
  try {
    demoPort = port(asked);
  } catch (err) {
    throw new SetupError(`TINYEDGE_DEMO_ORIGIN_PORT '${asked}': ${(err as Error).message}`);
  }
  const demo = await startDemoOrigin('127.0.0.1', demoPort);
  // URL leaves out port 80, the scheme's default.
  const env = { ...process.env, TINYEDGE_DEMO_ORIGIN_PORT: new URL(demo.url).port || '80' };
  return { demo, source: () => defaultConfig(PACKAGE_ROOT, env) };
}

/** Runs `tinyedge serve` until SIGINT/SIGTERM; a failure to start sets the exit status. */
export async function serve(opts: ServeOptions): Promise<void> {
  let demo: DemoOrigin | undefined;
  try {
    let source: () => Config;
    if (opts.config !== undefined) {
      const file = resolve(opts.config);
      source = () => loadConfig(file);
    } else {
      ({ demo, source } = await startDefault());
    }
    const config = source();
    for (const w of config.warnings) say(`tinyedge: warning: ${w}`);
    const server = await EdgeServer.start(config, { configSource: source });
    printUrls(server, demo);
    process.on('SIGHUP', () => {
      let next: Config;
      try {
        next = server.loadNextConfig();
      } catch (err) {
        server.log.error({ problems: (err as Error).message.split('\n') }, 'config reload refused; nothing changed');
        return;
      }
      // The server logs what changed; a failure to build the new tenants changes nothing.
      server.reload(next).catch((err: Error) => server.log.error({ err }, 'config reload failed; nothing changed'));
    });
    const stop = (): void => {
      server.log.info('shutting down');
      void server.close().then(() => demo?.close()).then(() => process.exit(0));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  } catch (err) {
    await demo?.close();
    if (err instanceof ConfigError) {
      say(`tinyedge: config refused:\n${err.message}`);
      process.exitCode = 2;
      return;
    }
    if (err instanceof SetupError) {
      say(`tinyedge: ${err.message}`);
      process.exitCode = 2;
      return;
    }
    if (err instanceof ReserveError) {
      say(`tinyedge: the cache's memory (server.cacheMaxMemory, or the tenants' cache.memory added up) cannot be reserved: ${err.message}`);
      process.exitCode = 2;
      return;
    }
    if (err instanceof SandboxError || err instanceof KvmError) {
      say(`tinyedge: ${err.message}`);
      process.exitCode = 125;
      return;
    }
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      say(`tinyedge: address in use: ${(err as Error).message}`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
}
