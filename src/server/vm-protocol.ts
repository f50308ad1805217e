// Messages between the HTTP thread and the VM worker threads. Bodies travel as transferred
// ArrayBuffers (no copy); everything else is structured-cloned.
import type { CallResult, LoadTiming } from '../sandbox/program.ts';
import type { Phase } from '../sandbox/abi.ts';
import type { ProgramOptions, SandboxRequest } from '../sandbox/types.ts';
import type { SandboxFailureKind } from '../vmm/errors.ts';

export type HostOp = 'fetch' | 'kvGet' | 'kvSet' | 'kvDelete';

export type ToWorker =
  | { type: 'load'; id: number; key: string; elf: ArrayBuffer; options: ProgramOptions }
  | { type: 'unload'; key: string }
  | { type: 'call'; id: number; key: string; slot: number; req: SandboxRequest; phase?: Phase; response?: { status: number; headers: Array<[string, string]> } }
  | { type: 'hostResult'; callId: number; ok: true; value: unknown }
  | { type: 'hostResult'; callId: number; ok: false; message: string };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'loaded'; id: number; timing: LoadTiming; snapshotPages: number }
  | { type: 'result'; id: number; result: CallResult }
  | { type: 'failed'; id: number; kind: SandboxFailureKind; message: string }
  | { type: 'host'; id: number; callId: number; op: HostOp; args: unknown[] };
