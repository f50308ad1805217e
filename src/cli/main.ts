// The `tinyedge` command line: one subcommand per module in this folder, wired with commander.
import { Command, CommanderError } from 'commander';
import { register as registerRun } from './run.ts';
import { register as registerDev } from './dev.ts';
import { register as registerBench } from './bench.ts';
import { register as registerProxy } from './proxy.ts';
import { register as registerServe } from './serve.ts';

/** Each subcommand lives in its own module and adds itself to the program. */
type Register = (program: Command) => void;
const SUBCOMMANDS: Register[] = [registerRun, registerDev, registerBench, registerProxy, registerServe];

/** Exit status used when the command line itself is wrong (as `tinyedge run` uses 125 for sandbox failures). */
export const EXIT_USAGE = 2;

export function buildProgram(): Command {
  const program = new Command('tinyedge')
    .description('Multi-tenant HTTP cache and edge server; tenant programs run in tiny KVM virtual machines')
    .version('0.1.0')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  for (const register of SUBCOMMANDS) register(program);
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
