// Why a guest run ended other than by exiting: the typed failures the sandbox reports.

/**
 * Why a program failed: `program` it cannot be loaded or a request does not fit it, `fault` it
 * crashed or exited mid-request, `timeout` it ran past its time limit, `out-of-memory` its guest
 * memory ran out, `bad-response` its answer broke the ABI's rules, `internal` the host failed.
 */
export type SandboxFailureKind = 'program' | 'fault' | 'timeout' | 'out-of-memory' | 'bad-response' | 'internal';

/** A program failed to load or to answer: `kind` says how, the message the details (logs, not clients). */
export class SandboxError extends Error {
  constructor(readonly kind: SandboxFailureKind, message: string) {
    super(message);
    this.name = 'SandboxError';
  }
}
