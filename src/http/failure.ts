// What an HTTP client sees when a program fails: one table from a sandbox failure to a status and
// a short fixed text, used by `serve`, `dev` and the embedding adapter alike. The client learns
// the class of the failure and nothing else: a guest's fault text carries its addresses (RIP,
// CR2) and its own messages, which describe the tenant's program to whoever sends requests to it.
// Details belong in the operator's log (or the developer's terminal under `dev`).
import { QueueFullError, SandboxError } from '../sandbox/index.ts';

/** The classes a client can tell apart. */
type FailureClass = 'timeout' | 'busy' | 'too-large' | 'fault' | 'out-of-memory' | 'bad-response' | 'internal';

export interface ClientFailure {
  readonly class: FailureClass;
  readonly status: number;
  /** The whole response body: a fixed text per class, ending in a newline. */
  readonly body: string;
}

/** The one table (docs/server.md, "Failures", shows it). */
const TABLE: Readonly<Record<FailureClass, ClientFailure>> = {
  timeout: { class: 'timeout', status: 504, body: 'program timed out\n' },
  busy: { class: 'busy', status: 503, body: 'program busy\n' },
  'too-large': { class: 'too-large', status: 413, body: 'request too large for the program\n' },
  fault: { class: 'fault', status: 502, body: 'program fault\n' },
  'out-of-memory': { class: 'out-of-memory', status: 502, body: 'program out of memory\n' },
  'bad-response': { class: 'bad-response', status: 502, body: 'program sent an invalid response\n' },
  // 502, not 500: the program's machine failed, not the request's handling here, and `serve`'s
  // cache treats it as any failed fetch (a stale object may cover it; nothing is marked).
  internal: { class: 'internal', status: 502, body: 'internal error\n' },
};

function classOf(err: unknown): FailureClass {
  if (err instanceof QueueFullError) return 'busy';
  if (!(err instanceof SandboxError)) return 'internal';
  switch (err.kind) {
    case 'timeout': return 'timeout';
    // During a request, the one `program` failure is a request that does not fit the program's
    // request limit (its other uses are at load time): the client's request, not the program, is at fault.
    case 'program': return 'too-large';
    case 'fault': return 'fault';
    case 'out-of-memory': return 'out-of-memory';
    case 'bad-response': return 'bad-response';
    case 'internal': return 'internal';
  }
}

/** Status and body for a failed program call; anything not from the sandbox is an internal error. */
export function clientFailure(err: unknown): ClientFailure {
  return TABLE[classOf(err)];
}

/** The HTTP status for a failed program call (the `status` of `clientFailure`). */
export function failureStatus(err: unknown): number {
  return TABLE[classOf(err)].status;
}
