// Runs a program natively and under `tinyedge run` with the same arguments, the same stdin and
// an empty environment, for tests that compare the two runs.
import { spawn, type StdioOptions } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './guests.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');

export interface Run {
  status: number | null;
  /** The signal that killed the process (natively), if one did. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `command` with `args`, the environment `env` (nothing else), stdin from `stdin` (a string,
 * or 'ignore' for /dev/null) and stdout and stderr to pipes.
 */
export function runCommand(command: string, args: string[], stdin: string | 'ignore' = '', env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const stdio: StdioOptions = [stdin === 'ignore' ? 'ignore' : 'pipe', 'pipe', 'pipe'];
    const child = spawn(command, args, { stdio, env, timeout: 60_000, killSignal: 'SIGKILL' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    if (child.stdin) child.stdin.end(stdin);
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

/** `tinyedge run [flags] program args`, the program's environment `env` (passed with --env). */
export function runInVm(program: string, args: string[], stdin: string | 'ignore' = '', flags: string[] = [], env: Record<string, string> = {}): Promise<Run> {
  const envFlags = Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
  return runCommand(process.execPath, [BIN, 'run', ...flags, ...envFlags, program, ...args], stdin);
}

/** The program natively and under `tinyedge run [flags]`, with the environment `env`: both runs. */
export async function nativeAndVm(program: string, args: string[], stdin: string | 'ignore' = '', flags: string[] = [], env: Record<string, string> = {}): Promise<{ native: Run; vm: Run }> {
  const native = await runCommand(program, args, stdin, env);
  const vm = await runInVm(program, args, stdin, flags, env);
  return { native, vm };
}
