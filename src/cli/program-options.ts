// From the parsed options of a subcommand that loads one tenant program (`dev`, `bench`) to the
// sandbox's ProgramOptions, and the program itself from its file.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ProgramError, type ProgramOptions } from '../sandbox/index.ts';
import type { ProgramCliOptions } from './options.ts';

const MiB = 1024 * 1024;

export function programOptions(path: string, opts: ProgramCliOptions): ProgramOptions {
  return {
    mode: opts.cgi ? 'cgi' : 'sdk',
    memoryMiB: opts.memory / MiB,
    timeoutMs: opts.timeout,
    env: opts.env,
    allowRead: opts.allowRead,
    executableMemory: opts.executableMemory ?? false,
    name: basename(path),
    lifecycle: opts.lifecycle,
    resetAfterRequests: opts.resetAfterRequests,
    resetAboveDirtyBytes: opts.resetAboveDirty,
    warmup: opts.warmup === undefined ? undefined : { requests: opts.warmup, path: opts.warmupPath },
  };
}

/** Reads the program's file; an unreadable file is a ProgramError like a malformed one. */
export function readProgramFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ProgramError(`cannot read ${path}: ${(err as Error).message}`);
  }
}
