// A VM worker thread: owns the KVM VMs of the programs it was asked to load (one snapshot per
// program, instances per slot) and runs requests on them. KVM_RUN blocks this thread, never the
// HTTP thread; host calls (sub-requests, key-value store) are forwarded to the HTTP thread.
import { parentPort } from 'node:worker_threads';
import { Kvm } from '../kvm/kvm.ts';
import { type HostCalls, type Instance, Program } from '../sandbox/program.ts';
import { SandboxError } from '../vmm/errors.ts';
import type { FromWorker, HostOp, ToWorker } from './vm-protocol.ts';

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
const hostWaiters = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
let nextCallId = 1;

const send = (msg: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);

function failure(id: number, err: unknown): void {
  if (err instanceof SandboxError) send({ type: 'failed', id, kind: err.kind, message: err.message });
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

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'load':
      try {
        if (programs.has(msg.key)) throw new Error(`program ${msg.key} is already loaded`);
        const program = new Program(kvm, Buffer.from(msg.elf), msg.options);
        programs.set(msg.key, { program, slots: new Map(), inflight: 0, retired: false });
        send({ type: 'loaded', id: msg.id, timing: program.timing, snapshotPages: program.snapshot.pageCount });
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
