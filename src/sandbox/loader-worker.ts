// A loader thread: boots, initialises and snapshots one program at a time and runs its warm-up
// request on it, so that a slow start-up (up to the program's init timeout) never holds a thread
// that serves requests. The threads that serve then adopt the snapshot, which runs no guest code.
// Host calls the warm-up makes (sub-requests, key-value store) are forwarded to the thread that
// asked for the build.
import { parentPort } from 'node:worker_threads';
import { Kvm } from '../kvm/kvm.ts';
import type { HostCalls } from './instance.ts';
import { Program } from './program.ts';
import { SandboxError } from '../vmm/errors.ts';
import { ProgramError } from '../vmm/linux/elf.ts';
import { drainShellPool } from '../vmm/memory/shell.ts';
import type { FromLoader, HostOp, LoadStage, ToLoader } from './loader-protocol.ts';
import type { KvIncrementResult, KvSwapResult } from './types.ts';

const port = parentPort;
if (!port) throw new Error('loader-worker.ts must run as a worker thread');

const kvm = new Kvm();
/** Programs built and exported, kept open until every adopter has its own descriptor of them. */
const built = new Map<number, Program>();
const hostWaiters = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
let nextCallId = 1;

const send = (msg: FromLoader): void => port.postMessage(msg);

function failure(id: number, err: unknown, stage: LoadStage): void {
  if (err instanceof SandboxError) send({ type: 'failed', id, kind: err.kind, message: err.message, stage });
  // An unloadable program is the tenant's problem, not the host's: it must not read as internal.
  else if (err instanceof ProgramError) send({ type: 'failed', id, kind: 'program', message: err.message, stage });
  else send({ type: 'failed', id, kind: 'internal', message: err instanceof Error ? err.message : String(err), stage });
}

/** Host calls for one warm-up: each becomes a message to the asking thread and back. */
function hostCalls(id: number): HostCalls {
  const ask = (op: HostOp, args: unknown[]): Promise<unknown> => new Promise((resolve, reject) => {
    const callId = nextCallId++;
    hostWaiters.set(callId, { resolve, reject });
    send({ type: 'host', id, callId, op, args });
  });
  return {
    fetch: async (call) => (await ask('fetch', [call])) as Awaited<ReturnType<NonNullable<HostCalls['fetch']>>>,
    kvGet: async (key) => (await ask('kvGet', [key])) as Uint8Array | undefined,
    kvSet: async (key, value) => (await ask('kvSet', [key, value])) as boolean,
    kvDelete: async (key) => (await ask('kvDelete', [key])) as boolean,
    kvIncrement: async (key, delta) => (await ask('kvIncrement', [key, delta])) as KvIncrementResult,
    kvCompareAndSet: async (key, expected, value) => (await ask('kvCompareAndSet', [key, expected, value])) as KvSwapResult,
  };
}

/**
 * Boots the program, runs its warm-up request on the machine that booted it (with host calls,
 * like any request), and exports it. The program stays open (its memfd must outlive every
 * adoption) until `release`.
 */
async function build(msg: Extract<ToLoader, { type: 'build' }>): Promise<void> {
  let program: Program | undefined;
  let stage: LoadStage = 'init';
  try {
    program = new Program(kvm, Buffer.from(msg.elf), msg.options);
    stage = 'warm-up';
    if (msg.warmup) {
      const instance = program.instance();
      try {
        await instance.call(msg.warmup.req, { phase: msg.warmup.phase, response: msg.warmup.response, warmup: true, host: hostCalls(msg.id) });
      } finally {
        instance.close();
      }
    }
    built.set(msg.id, program);
    send({ type: 'built', id: msg.id, program: program.export() });
  } catch (err) {
    program?.close();
    drainShellPool();
    // The constructor reads the executable (a ProgramError when it cannot be loaded), then runs it.
    failure(msg.id, err, stage === 'init' && err instanceof ProgramError ? 'load' : stage);
  }
}

/** One build's snapshot is no longer needed; this thread keeps no VM between loads. */
function release(id: number): void {
  built.get(id)?.close();
  built.delete(id);
  drainShellPool();
}

port.on('message', (msg: ToLoader) => {
  switch (msg.type) {
    case 'build':
      void build(msg);
      break;
    case 'release':
      release(msg.id);
      send({ type: 'released', id: msg.id });
      break;
    case 'exit':
      for (const id of [...built.keys()]) release(id);
      kvm.close();
      process.exit(0);
      break;
    case 'hostResult': {
      const waiter = hostWaiters.get(msg.callId);
      hostWaiters.delete(msg.callId);
      if (!waiter) break;
      if (msg.ok) waiter.resolve(msg.value);
      else waiter.reject(new Error(msg.message));
      break;
    }
  }
});

send({ type: 'ready' });
