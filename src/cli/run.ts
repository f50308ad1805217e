// `tinyedge run`: executes a static Linux program in a tiny VM with the command's own stdin,
// stdout and stderr. Exit status: the program's, or 124 (timeout) / 125 (any sandbox failure).
import { KvmError, ProgramError, processStdio, runProcess, SandboxError } from '../sandbox/index.ts';
import { readProgramFile } from './program-options.ts';

const EXIT_TIMEOUT = 124;
const EXIT_SANDBOX = 125;

export interface RunOptions {
  /** Guest memory in bytes (a whole number of MiB: options.ts guestMemory). */
  memory: number;
  timeout: number;
  env: string[];
  allowRead: string[];
  executableMemory?: boolean;
  trace?: boolean;
}

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
    const elf = readProgramFile(program);
    const trace = opts.trace === true ? (line: string): void => say(`${line}\n`) : undefined;
    const result = runProcess(elf, { memoryMiB: opts.memory / (1024 * 1024), timeoutMs: opts.timeout, argv: [program, ...args], env: opts.env, allowRead: opts.allowRead, trace, executableMemory: opts.executableMemory ?? false });
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
