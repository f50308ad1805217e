// `tinyedge serve`: the multi-tenant edge server. With --config it serves that file; without, the
// embedded default: a demo tenant on localhost:8080 with a demo origin and a demo program.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { buildExample } from '../../guest/build.ts';
import { KvmError, SandboxError } from '../sandbox/index.ts';
import { type Config, ConfigError, defaultConfig, loadConfig } from '../server/config.ts';
import { type DemoOrigin, startDemoOrigin } from '../server/demo-origin.ts';
import { EdgeServer } from '../server/server.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface ServeOptions {
  config?: string;
}

const say = (line: string): void => void process.stderr.write(`${line}\n`);

function printUrls(server: EdgeServer, demo: DemoOrigin | undefined): void {
  say(`tinyedge: serving ${server.tenants.size} tenant(s) on ${server.front.url} (admin API on ${server.admin.url})`);
  if (!demo) return;
  const port = server.front.port;
  say(`  demo origin on ${demo.url}; try:`);
  say(`    curl -i http://localhost:${port}/                  # the demo origin's page, cached (see Age, X-Cache)`);
  say(`    curl -i http://localhost:${port}/hello             # answered by the demo program in a tiny VM`);
  say(`    curl -s -H 'Authorization: Bearer ${server.config.tenants[0]?.token ?? ''}' ${server.admin.url}/v1/tenants/demo/stats`);
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the multi-tenant edge server (default: a demo tenant on localhost:8080)')
    .option('--config <file>', 'YAML config file (docs/config.md); without it, the embedded demo config')
    .action(async (opts: ServeOptions) => {
      let demo: DemoOrigin | undefined;
      try {
        let config: Config;
        let source: () => Config;
        if (opts.config !== undefined) {
          const file = resolve(opts.config);
          config = loadConfig(file);
          source = () => loadConfig(file);
        } else {
          buildExample('hello');
          config = defaultConfig(REPO);
          source = () => defaultConfig(REPO);
          demo = await startDemoOrigin('127.0.0.1', 9080);
        }
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
    });
}


