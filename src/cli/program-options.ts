// Options shared by the subcommands that load one tenant program (`dev`, `bench`).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { type Kvm, Program, ProgramError, type ProgramOptions } from '../sandbox/index.ts';

export interface ProgramCliOptions {
  cgi?: boolean;
  memory: string;
  timeout: string;
  env: string[];
  allowRead: string[];
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function addProgramOptions(cmd: Command): Command {
  return cmd
    .option('--cgi', 'CGI mode: the program knows nothing of the SDK (RFC 3875)')
    .option('--memory <MiB>', 'guest memory in MiB', '64')
    .option('--timeout <ms>', 'time limit per request in milliseconds', '1000')
    .option('--env <KEY=VALUE>', 'environment variable for the program (repeatable)', collect, [])
    .option('--allow-read <dir>', 'directory whose files the program may read (repeatable)', collect, []);
}

export function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new ProgramError(`--${name} must be a positive integer (got '${value}')`);
  return n;
}

/** A TCP port; 0 asks the system for a free one. */
export function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ProgramError(`--port must be 0–65535 (got '${value}')`);
  return n;
}

export function programOptions(path: string, opts: ProgramCliOptions): ProgramOptions {
  for (const kv of opts.env) if (!kv.includes('=')) throw new ProgramError(`--env wants KEY=VALUE (got '${kv}')`);
  const memoryMiB = positiveInt('memory', opts.memory);
  return {
    mode: opts.cgi ? 'cgi' : 'sdk',
    memoryMiB: memoryMiB + (memoryMiB % 2),
    timeoutMs: positiveInt('timeout', opts.timeout),
    env: opts.env,
    allowRead: opts.allowRead,
    name: basename(path),
  };
}

export function loadProgram(kvm: Kvm, path: string, options: ProgramOptions): Program {
  let elf: Buffer;
  try {
    elf = readFileSync(path);
  } catch (err) {
    throw new ProgramError(`cannot read ${path}: ${(err as Error).message}`);
  }
  return new Program(kvm, elf, options);
}
