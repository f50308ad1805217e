// Messages between a thread that loads programs (program-pool.ts, through loaders.ts) and its
// loader threads. The ELF travels as a transferred ArrayBuffer (no copy); everything else is
// structured-cloned.
import type { ExportedProgram } from './program.ts';
import type { Phase } from './abi.ts';
import type { ProgramOptions, SandboxRequest } from './types.ts';
import type { SandboxFailureKind } from '../vmm/errors.ts';

/**
 * Where a build failed: `load` reading the executable and booting it, `init` running its main()
 * up to the first WAIT (or the whole of it, for a CGI program's entry snapshot), `warm-up` the
 * warm-up request.
 */
export type LoadStage = 'load' | 'init' | 'warm-up';

export type HostOp = 'fetch' | 'kvGet' | 'kvSet' | 'kvDelete' | 'kvIncrement' | 'kvCompareAndSet';

/** The warm-up request a loader runs on a new program: the phase, and for `deliver` the response. */
interface WarmupMessage {
  req: SandboxRequest;
  phase?: Phase;
  response?: { status: number; headers: ReadonlyArray<readonly [string, string]> };
}

export type ToLoader =
  /** Boot, init and snapshot `elf`, run the warm-up on it, answer `built` (or `failed`). */
  | { type: 'build'; id: number; elf: ArrayBuffer; options: ProgramOptions; warmup?: WarmupMessage }
  /** Every adopter has its own descriptor of build `id`'s snapshot: close it. */
  | { type: 'release'; id: number }
  /** No more builds: free everything and end the thread. */
  | { type: 'exit' }
  | { type: 'hostResult'; callId: number; ok: true; value: unknown }
  | { type: 'hostResult'; callId: number; ok: false; message: string };

export type FromLoader =
  | { type: 'ready' }
  | { type: 'built'; id: number; program: ExportedProgram }
  | { type: 'failed'; id: number; kind: SandboxFailureKind; message: string; stage: LoadStage }
  /** Build `id`'s snapshot and VM shells are closed: the loader holds nothing of it. */
  | { type: 'released'; id: number }
  | { type: 'host'; id: number; callId: number; op: HostOp; args: unknown[] };
