// The `tinyedge` command line: every subcommand's name, options and description, wired with
// commander. A subcommand's action imports the module that does its work only when it runs, so
// each command loads what it needs and no more: `--version` and `--help` load neither koffi nor
// the server. Keep the imports of this module cheap (node built-ins, commander, ./options.ts).
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import type { BenchOptions } from './bench.ts';
import type { DevOptions } from './dev.ts';
import type { LogOptions } from './log.ts';
import { addProgramOptions, collect, duration, EXIT_USAGE, guestMemory, header, hostHeader, keyValue, listenAddress, originUrl, port, positiveDuration, positiveInt, requestPath, size } from './options.ts';
import type { ProxyOptions } from './proxy.ts';
import type { ReplayOptions } from './replay.ts';
import type { RunOptions } from './run.ts';
import type { ServeOptions } from './serve.ts';
import type { StatOptions } from './stat.ts';

/** The version in package.json, two folders up from this module in src/ and in dist/ alike. */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function addRun(program: Command): void {
  program
    .command('run')
    .usage('[options] <program> [args...]')
    .description('run a static x86-64 Linux program in a tiny KVM virtual machine')
    .argument('<program>', 'static executable (gcc -static, musl, Rust, Zig, …)')
    .argument('[args...]', 'arguments passed to the program')
    .option('--memory <size>', 'guest memory, e.g. 64MiB (a bare number is bytes)', guestMemory, guestMemory('64MiB'))
    .option('--timeout <ms>', 'wall-clock time limit in milliseconds', positiveInt, 10000)
    .option('--env <KEY=VALUE>', 'environment variable for the program (repeatable)', keyValue, [])
    .option('--allow-read <dir>', 'directory whose files the program may read (repeatable)', collect, [])
    .option('--executable-memory', 'let the program map executable memory beyond its own code (JITs)')
    .option('--trace', 'print every system call and hypercall, decoded, and a backtrace on a fault, to stderr')
    // Everything after the program belongs to the program, as with env(1) or docker run.
    .passThroughOptions()
    .action(async (file: string, args: string[], opts: RunOptions) => {
      const { runProgram } = await import('./run.ts');
      process.exitCode = runProgram(file, args, opts);
    });
}

function addDev(program: Command): void {
  const cmd = program
    .command('dev')
    .description('serve one tenant program (or a tenant of a config file) over HTTP on 127.0.0.1, every request to its program')
    .argument('[program]', 'static executable using the SDK (or any program with --cgi)')
    .option('--port <port>', 'port to listen on', port, 8080)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--origin <url>', "where the program's sub-requests (te_fetch) go, http://HOST:PORT", originUrl)
    .option('--config <file>', "serve a tenant of this config file: its programs (with the file's limits), hooks, routes, origins and key-value store")
    .option('--tenant <name>', 'the tenant of --config to serve (needed when it has several)')
    .option('--trace', 'print every system call and hypercall, decoded, and a backtrace on a fault, to stderr');
  addProgramOptions(cmd).action(async (path: string | undefined, opts: DevOptions) => {
    const { dev } = await import('./dev.ts');
    await dev(path, opts);
  });
}

function addBench(program: Command): void {
  const cmd = program
    .command('bench')
    .description("call a program's handler in-process n times; print p50/p90/p99 of call and reset vs the KVM floor")
    .argument('<program>', 'static executable using the SDK (or any program with --cgi)')
    .option('-n <count>', 'number of requests', positiveInt, 10000)
    .option('--url <url>', 'request URL', '/')
    .option('--method <method>', 'request method', 'GET')
    .option('--header <name:value>', 'request header (repeatable)', header, [])
    .option('--body <file>', 'request body: the bytes of a file, or of stdin with @-')
    .option('--loads <count>', 'program loads to time (load → first response)', positiveInt, 5);
  addProgramOptions(cmd).action(async (path: string, opts: BenchOptions) => {
    const { bench } = await import('./bench.ts');
    bench(path, opts);
  });
}

function addProxy(program: Command): void {
  program
    .command('proxy')
    .description('caching reverse proxy for one HTTP origin (RFC 9111 shared cache)')
    .requiredOption('--origin <url>', 'origin server, http://HOST:PORT', originUrl)
    .option('--listen <addr>', 'address to listen on, HOST:PORT', listenAddress, listenAddress('127.0.0.1:8080'))
    .option('--memory <size>', 'cache size, e.g. 512MiB or 1GiB (a bare number is bytes)', size, size('256MiB'))
    .option('--host-header <name>', "Host header sent to the origin instead of the client's", hostHeader)
    .option('--default-grace <duration>', 'grace of responses without stale-while-revalidate, e.g. 10s or 0', duration, 10_000)
    .option('--default-keep <duration>', 'how long objects with a validator are kept past grace, e.g. 60s or 0', duration, 60_000)
    .option('--health-check <path>', 'probe this path of the origin (GET; 2xx or 3xx is healthy); while it fails, stale objects stand in for the origin (default: no probe)', requestPath)
    .option('--health-interval <duration>', 'time between probes (default 5s; with --health-check)', positiveDuration)
    .action(async (opts: ProxyOptions, cmd: Command) => {
      if (opts.healthInterval !== undefined && opts.healthCheck === undefined) cmd.error("error: option '--health-interval <duration>' needs --health-check <path>");
      const { proxy } = await import('./proxy.ts');
      process.exitCode = await proxy(opts);
    });
}

function addServe(program: Command): void {
  program
    .command('serve')
    .description('run the multi-tenant edge server (default: a demo tenant on localhost:8080)')
    .option('--config <file>', 'YAML config file (docs/config.md); without it, the embedded demo config')
    .action(async (opts: ServeOptions) => {
      const { serve } = await import('./serve.ts');
      await serve(opts);
    });
}

/** --admin and --token, shared by the commands that talk to a running server's admin API. */
function addAdminOptions(cmd: Command): Command {
  return cmd
    .option('--admin <url>', "the server's admin API", process.env.TINYEDGE_ADMIN ?? 'http://127.0.0.1:8081')
    .option('--token <token>', "a tenant's token or the operator's (default: $TINYEDGE_TOKEN; the environment keeps it out of ps)");
}

function addLog(program: Command): void {
  const cmd = program
    .command('log')
    .description("follow a running server's live request log: one line per request (like varnishlog)")
    .option('--tenant <name>', "only this tenant's requests (a tenant's token reads only its own)")
    .option('--status <classes>', 'only these status classes, e.g. 5xx or 4xx,5xx')
    .option('--prefix <path>', 'only URLs starting with this path')
    .option('--cache <results>', 'only these cache results: hit, fast-hit, miss, pass, stale, revalidated, synthetic')
    .option('--backend <name>', 'only requests this origin or program answered')
    .option('--sample <fraction>', 'of those, this fraction at random, e.g. 0.01 for one in a hundred (a busy server)')
    .option('--json', 'one JSON record per line instead (docs/observability.md)');
  addAdminOptions(cmd).action(async (opts: LogOptions) => {
    const { followLog } = await import('./log.ts');
    process.exitCode = await followLog(opts);
  });
}

function addStat(program: Command): void {
  const cmd = program
    .command('stat')
    .description("per-tenant rates of a running server, refreshed every second (like varnishstat)")
    .option('--once', 'print one snapshot of the totals since start, then exit')
    .option('--interval <ms>', 'refresh period in milliseconds', positiveInt, 1000);
  addAdminOptions(cmd).action(async (opts: StatOptions) => {
    const { stat } = await import('./stat.ts');
    process.exitCode = await stat(opts);
  });
}

function addReplay(program: Command): void {
  program
    .command('replay')
    .description("rerun a program's failed request from its failure bundle (the admin API's /failures), locally, with the host's recorded answers")
    .argument('[bundle]', 'failure bundle file (JSON, as GET /v1/tenants/{tenant}/failures/{id} answers)')
    .requiredOption('--program <file>', 'the program file that failed (its SHA-256 must match the bundle)')
    .option('--from <url>', "fetch the bundle from the admin API instead: http://ADMIN/v1/tenants/TENANT/failures/ID")
    .option('--token <token>', "with --from: a tenant's token or the operator's (default: $TINYEDGE_TOKEN)")
    .option('--trace', 'print every system call and hypercall, decoded, and a backtrace on a fault, to stderr')
    .action(async (bundle: string | undefined, opts: ReplayOptions) => {
      const { replay } = await import('./replay.ts');
      process.exitCode = await replay(bundle, opts);
    });
}

function buildProgram(): Command {
  const program = new Command('tinyedge')
    .description('Multi-tenant HTTP cache and edge server; tenant programs run in tiny KVM virtual machines')
    .version(packageVersion())
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  for (const add of [addRun, addDev, addBench, addProxy, addServe, addLog, addStat, addReplay]) add(program);
  return program;
}

/** Runs the CLI with `argv` (without node and script) and resolves to the process exit status. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  if (argv.length === 0) {
    program.outputHelp();
    return 0;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE;
    throw err;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}
