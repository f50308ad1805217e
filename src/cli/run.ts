// `tinyedge run`: executes a static Linux program in a tiny VM with the command's own stdin,
// stdout and stderr. Exit status: the program's, or 124 (timeout) / 125 (any sandbox failure).
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { KvmError, ProgramError, processStdio, runProcess, SandboxError } from '../sandbox/index.ts';

export const EXIT_TIMEOUT = 124;
export const EXIT_SANDBOX = 125;

interface RunOptions {
  memory: string;
  timeout: string;
  env: string[];
  allowRead: string[];
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new ProgramError(`--${name} must be a positive integer (got '${value}')`);
  return n;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** How long tinyedge's own last words may wait for a stderr that the program left full. */
const SAY_GRACE_MS = 1000;

/**
 * Writes tinyedge's own message to stderr without ever blocking for long: a program that flooded
 * a stderr nobody reads must not hang the command after its time limit.
 */
function say(message: string): void {
  processStdio.write(2, Buffer.from(message), SAY_GRACE_MS);
}

/** Runs the program and returns the exit status the command should have. */
export function runProgram(program: string, args: string[], opts: RunOptions): number {
  try {
    const memoryMiB = positiveInt('memory', opts.memory);
    const timeoutMs = positiveInt('timeout', opts.timeout);
    for (const kv of opts.env) if (!kv.includes('=')) throw new ProgramError(`--env wants KEY=VALUE (got '${kv}')`);
    let elf: Buffer;
    try {
      elf = readFileSync(program);
    } catch (err) {
      throw new ProgramError(`cannot read ${program}: ${(err as Error).message}`);
    }
    const result = runProcess(elf, { memoryMiB, timeoutMs, argv: [program, ...args], env: opts.env, allowRead: opts.allowRead });
    if (result.signal) say(`tinyedge: program killed by ${result.signal}\n`);
    return result.status;
  } catch (err) {
    if (err instanceof SandboxError && err.kind === 'timeout') {
      say(`tinyedge: ${err.message}\n`);
      return EXIT_TIMEOUT;
    }
    if (err instanceof SandboxError || err instanceof ProgramError || err instanceof KvmError) {
      say(`tinyedge: ${err.message}\n`);
      return EXIT_SANDBOX;
    }
    say(`tinyedge: internal error: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT_SANDBOX;
  }
}

export function register(program: Command): void {
  program
    .command('run')
    .usage('[options] <program> [args...]')
    .description('run a static x86-64 Linux program in a tiny KVM virtual machine')
    .argument('<program>', 'static executable (gcc -static, musl, Rust, Zig, …)')
    .argument('[args...]', 'arguments passed to the program')
    .option('--memory <MiB>', 'guest memory in MiB', '64')
    .option('--timeout <ms>', 'wall-clock time limit in milliseconds', '10000')
    .option('--env <KEY=VALUE>', 'environment variable for the program (repeatable)', collect, [])
    .option('--allow-read <dir>', 'directory whose files the program may read (repeatable)', collect, [])
    // Everything after the program belongs to the program, as with env(1) or docker run.
    .passThroughOptions()
    .action((file: string, args: string[], opts: RunOptions) => {
      process.exitCode = runProgram(file, args, opts);
    });
}
