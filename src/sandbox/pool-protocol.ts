// Messages between the HTTP thread and the VM worker threads (serving workers and loaders run the
// same code). Bodies travel as transferred ArrayBuffers (no copy); everything else is
// structured-cloned.
import type { CallResult, ExportedProgram } from './program.ts';
import type { Phase } from './abi.ts';
import type { ProgramOptions, SandboxRequest } from './types.ts';
import type { SandboxFailureKind } from '../vmm/errors.ts';

export type HostOp = 'fetch' | 'kvGet' | 'kvSet' | 'kvDelete';

/** A request as a worker runs it: the phase, and for `deliver` the response about to go out. */
interface CallMessage {
  req: SandboxRequest;
  phase?: Phase;
  response?: { status: number; headers: ReadonlyArray<readonly [string, string]> };
}

export type ToWorker =
  /** Loader: boot, init and snapshot `elf`, run the warm-up on it, answer `built` (or `failed`). */
  | { type: 'build'; id: number; elf: ArrayBuffer; options: ProgramOptions; warmup?: CallMessage }
  /** Loader: every worker has adopted (or refused) build `id`; close it. */
  | { type: 'release'; id: number }
  /** Loader: no more builds; free everything and end the thread. */
  | { type: 'exit' }
  /** Serving worker: take `program` (built by a loader) as `key`; answer `adopted` (or `failed`). */
  | { type: 'adopt'; id: number; key: string; program: ExportedProgram }
  | { type: 'unload'; key: string }
  | ({ type: 'call'; id: number; key: string; slot: number } & CallMessage)
  | { type: 'hostResult'; callId: number; ok: true; value: unknown }
  | { type: 'hostResult'; callId: number; ok: false; message: string };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'built'; id: number; program: ExportedProgram }
  | { type: 'adopted'; id: number }
  | { type: 'result'; id: number; result: CallResult }
  | { type: 'failed'; id: number; kind: SandboxFailureKind; message: string }
  | { type: 'host'; id: number; callId: number; op: HostOp; args: unknown[] };
