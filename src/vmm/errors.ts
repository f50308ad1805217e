// Why a guest run ended other than by exiting: the typed failures the sandbox reports.

export type SandboxFailureKind = 'program' | 'fault' | 'timeout' | 'out-of-memory' | 'bad-response' | 'internal';

export class SandboxError extends Error {
  constructor(readonly kind: SandboxFailureKind, message: string) {
    super(message);
    this.name = 'SandboxError';
  }
}
