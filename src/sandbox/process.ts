// A program run as a process (what `tinyedge run` does): booted in a tiny VM with the host
// process's own stdin, stdout and stderr, run to its exit, then torn down. No request ABI: a
// program that calls the SDK's wait here is told so.
import { readSync, writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Kvm } from '../kvm/kvm.ts';
import { SandboxError } from '../vmm/errors.ts';
import { Machine } from '../vmm/machine.ts';
import type { Stdio } from '../vmm/linux/syscalls/context.ts';
import { EINTR, ENOSYS, EPIPE } from '../vmm/linux/syscalls/errno.ts';
import { pollFds, waitReadable, waitWritable } from '../vmm/run/poll.ts';
import { CALL_WAIT } from './abi.ts';
import { sdkTracer } from './trace.ts';

const wait = new Int32Array(new SharedArrayBuffer(4));

/** Largest write a pipe with room (POLLOUT) takes without blocking: PIPE_BUF. */
const PIPE_BUF = 4096;

/**
 * The host process's own fds 0–2 as a program's stdio (`runProcess`'s default): written
 * synchronously, but never past the program's deadline.
 */
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
  // The host's own streams answer for themselves: a terminal, a pipe, a file, or closed (POLLNVAL).
  poll: (entries, waitMs) => pollFds(entries, waitMs),
};

/** How `runProcess` runs a program: its argv and environment, what it may read, its limits. */
export interface ProcessOptions {
  /** argv[0] first, as the program should see it. */
  argv: string[];
  env?: string[];
  /** Host directories whose files the program may read. */
  allowRead?: readonly string[];
  /** Guest memory in MiB; rounded up to an even number. */
  memoryMiB: number;
  /** Wall-clock limit; past it the run ends with a `timeout` SandboxError. */
  timeoutMs: number;
  /** Defaults to the host process's own fds 0–2. */
  stdio?: Stdio;
  /** Let the program map executable memory beyond its own code (JITs); see ProgramOptions. */
  executableMemory?: boolean;
  /** Receives a line for every system call and hypercall the program makes, and for a fault. */
  trace?: (line: string) => void;
}

/** How a process ended: its exit status, and the signal that killed it, if one did. */
export interface ProcessExit {
  status: number;
  signal?: string;
}

/**
 * Runs `elf` to its exit and returns how it ended. Failures of the program or the sandbox
 * (unloadable ELF, fault, timeout, no KVM) throw `ProgramError`, `SandboxError` or `KvmError`.
 */
export function runProcess(elf: Buffer, options: ProcessOptions): ProcessExit {
  const kvm = new Kvm();
  let machine: Machine | undefined;
  try {
    const memoryMiB = options.memoryMiB + (options.memoryMiB % 2);
    machine = Machine.boot(kvm, elf, { memoryMiB, argv: options.argv, env: options.env ?? [], allowRead: options.allowRead ?? [], stdio: options.stdio ?? processStdio, executableMemory: options.executableMemory ?? false });
    if (options.trace) machine.trace = sdkTracer(options.trace);
    // There are no requests here: the SDK's wait stops the run (other hypercalls answer -ENOSYS).
    machine.hypercall = (m, call) => {
      if (call === CALL_WAIT) m.yield();
      return -ENOSYS;
    };
    const result = machine.run(options.timeoutMs);
    if (result.kind !== 'exit') {
      throw new SandboxError('program', 'program waits for requests (te_wait_for_requests): it is an SDK program, which answers HTTP requests; serve it with `tinyedge dev`');
    }
    return result.signal ? { status: result.status, signal: result.signal } : { status: result.status };
  } finally {
    machine?.close();
    kvm.close();
  }
}
