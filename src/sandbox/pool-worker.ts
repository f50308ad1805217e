// A VM worker thread, in one of two roles. A serving worker owns the KVM VMs of the programs it
// adopted (one snapshot per program, instances per slot) and runs requests on them. A loader
// boots, initialises and snapshots one program at a time and runs its warm-up request, so that a
// slow start-up holds only the loader; the serving workers then adopt the snapshot, which runs no
// guest code. KVM_RUN blocks this thread, never the HTTP thread; host calls (sub-requests,
// key-value store) are forwarded to the HTTP thread.
import { parentPort } from 'node:worker_threads';
import { Kvm } from '../kvm/kvm.ts';
import { type HostCalls, type Instance, Program } from './program.ts';
import { SandboxError } from '../vmm/errors.ts';
import { ProgramError } from '../vmm/linux/elf.ts';
import { drainShellPool } from '../vmm/memory/shell.ts';
import type { FromWorker, HostOp, ToWorker } from './pool-protocol.ts';

const port = parentPort;
if (!port) throw new Error('vm-worker.ts must run as a worker thread');

const kvm = new Kvm();
interface Entry {
  program: Program;
  slots: Map<number, Instance>;
  inflight: number;
  /** Unloaded while requests were running: closed when the last one ends. */
  retired: boolean;
}
const programs = new Map<string, Entry>();
/** Loader: programs built and exported, kept open until every serving worker has adopted them. */
const built = new Map<number, Program>();
const hostWaiters = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
let nextCallId = 1;

const send = (msg: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);

function failure(id: number, err: unknown): void {
  if (err instanceof SandboxError) send({ type: 'failed', id, kind: err.kind, message: err.message });
  // An unloadable program is the tenant's problem, not the host's: it must not read as internal.
  else if (err instanceof ProgramError) send({ type: 'failed', id, kind: 'program', message: err.message });
  else send({ type: 'failed', id, kind: 'internal', message: err instanceof Error ? err.message : String(err) });
}

/** Host calls for one request: each becomes a message to the HTTP thread and back. */
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
  };
}

async function call(msg: Extract<ToWorker, { type: 'call' }>): Promise<void> {
  const entry = programs.get(msg.key);
  if (!entry) {
    send({ type: 'failed', id: msg.id, kind: 'internal', message: `program ${msg.key} is not loaded on this worker` });
    return;
  }
  let instance = entry.slots.get(msg.slot);
  entry.inflight++;
  try {
    if (!instance) {
      instance = entry.program.instance();
      entry.slots.set(msg.slot, instance);
    }
    const result = await instance.call(msg.req, { phase: msg.phase, response: msg.response, host: hostCalls(msg.id) });
    const body = result.body.buffer.slice(result.body.byteOffset, result.body.byteOffset + result.body.length);
    send({ type: 'result', id: msg.id, result: { ...result, body: Buffer.from(body) } }, [body as ArrayBuffer]);
  } catch (err) {
    failure(msg.id, err);
  } finally {
    entry.inflight--;
    if (entry.retired && entry.inflight === 0) closeEntry(entry);
  }
}

/**
 * Loader: boots the program, runs its warm-up request on the machine that booted it (with host
 * calls, like any request), and exports it. The program stays open (its memfd must outlive
 * every adoption) until `release`.
 */
async function build(msg: Extract<ToWorker, { type: 'build' }>): Promise<void> {
  let program: Program | undefined;
  try {
    program = new Program(kvm, Buffer.from(msg.elf), msg.options);
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
    failure(msg.id, err);
  }
}

/** Loader: one build's snapshot is no longer needed; this thread keeps no VM between loads. */
function release(id: number): void {
  built.get(id)?.close();
  built.delete(id);
  drainShellPool();
}

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'build':
      void build(msg);
      break;
    case 'release':
      release(msg.id);
      break;
    case 'exit':
      for (const id of [...built.keys()]) release(id);
      kvm.close();
      process.exit(0);
      break;
    case 'adopt':
      try {
        if (programs.has(msg.key)) throw new Error(`program ${msg.key} is already loaded`);
        programs.set(msg.key, { program: new Program(kvm, msg.program), slots: new Map(), inflight: 0, retired: false });
        send({ type: 'adopted', id: msg.id });
      } catch (err) {
        failure(msg.id, err);
      }
      break;
    case 'unload': {
      const entry = programs.get(msg.key);
      programs.delete(msg.key);
      if (!entry) break;
      entry.retired = true;
      if (entry.inflight === 0) closeEntry(entry);
      break;
    }
    case 'call':
      void call(msg);
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

function closeEntry(entry: Entry): void {
  for (const inst of entry.slots.values()) inst.close();
  entry.program.close();
}

send({ type: 'ready' });
