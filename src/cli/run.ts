// `tinyedge run`: executes a static Linux program in a tiny VM with the command's own stdin,
// stdout and stderr. Exit status: the program's, or 124 (timeout) / 125 (any sandbox failure).
import { readFileSync, readSync, writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import { Kvm, KvmError } from '../kvm/kvm.ts';
import { ProgramError } from '../vmm/linux/elf.ts';
import { SandboxError } from '../vmm/errors.ts';
import { Machine } from '../vmm/machine.ts';
import type { Stdio } from '../vmm/linux/syscalls/context.ts';
import { EINTR, EPIPE } from '../vmm/linux/syscalls/errno.ts';
import { waitReadable, waitWritable } from '../vmm/run/poll.ts';

export const EXIT_TIMEOUT = 124;
export const EXIT_SANDBOX = 125;

interface RunOptions {
  memory: string;
  timeout: string;
  env: string[];
  allowRead: string[];
}

const wait = new Int32Array(new SharedArrayBuffer(4));

/** Largest write a pipe with room (POLLOUT) takes without blocking: PIPE_BUF. */
const PIPE_BUF = 4096;

/** The host process's own fds 0–2, written synchronously but never past the program's deadline. */
export const processStdio: Stdio = {
  write(fd, data, waitMs) {
    // A blocking write to a full pipe would outlive the deadline (libuv retries EINTR), and
    // O_NONBLOCK would change the description the parent shares: so wait for room with poll, then
    // write no more than room is sure to hold. EAGAIN (a description someone else made
    // non-blocking, filled by another writer) waits again.
    const until = performance.now() + waitMs;
    let done = 0;
    while (done < data.length) {
      if (!waitWritable(fd, until - performance.now())) return done > 0 ? done : -EINTR;
      try {
        done += writeSync(fd, data, done, Math.min(PIPE_BUF, data.length - done));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') return done > 0 ? done : -EPIPE;
        if (code !== 'EAGAIN') throw err;
      }
    }
    return done;
  },
  read(into, waitMs) {
    // readSync would block past the deadline (libuv retries EINTR), so wait for data first.
    if (!waitReadable(0, waitMs)) return -EINTR;
    for (;;) {
      try {
        return readSync(0, into, 0, into.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') Atomics.wait(wait, 0, 0, 1);
        else if (code === 'EOF') return 0;
        else throw err;
      }
    }
  },
};

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
  let machine: Machine | undefined;
  let kvm: Kvm | undefined;
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
    kvm = new Kvm();
    machine = Machine.boot(kvm, elf, { memoryMiB: memoryMiB + (memoryMiB % 2), argv: [program, ...args], env: opts.env, allowRead: opts.allowRead, stdio: processStdio });
    const result = machine.run(timeoutMs);
    if (result.kind !== 'exit') throw new SandboxError('fault', `program made tenant API call ${result.call} outside a request`);
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
  } finally {
    machine?.close();
    kvm?.close();
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
