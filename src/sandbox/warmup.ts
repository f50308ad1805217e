// Requests before the snapshot: after an SDK program's main() reaches its first WAIT, the host
// may hand it the state its previous version gave up (a live update) and send it a few synthetic
// warm-up requests, on the machine that booted it, so that what they leave — restored state,
// caches, lookup tables, a JIT's code — is in the snapshot and so in every instance. They run as
// main() does: synchronously on the loader, host calls answering -ENOSYS, within what is left of
// the init time limit and each within the program's request time limit; a request that fails
// fails the load.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { SandboxError } from '../vmm/errors.ts';
import type { Machine } from '../vmm/machine.ts';
import { ENOSYS } from '../vmm/linux/syscalls/errno.ts';
import { CALL_LOG, CALL_WAIT, type DecodedResponse, readResponse, type RequestLayout } from './abi.ts';
import { BATCH_ABI_VERSION } from './abi-layout.ts';
import { oneResponseAt, type RequestRoom, writeOne } from './batch-abi.ts';
import type { CaptureStdio } from './stdio.ts';
import { MAX_WARMUP_REQUESTS, type SandboxRequest, type WarmupOptions } from './types.ts';

/** What a warm-up needs of the program being loaded. */
export interface WarmupTarget {
  machine: Machine;
  /** Where requests go. */
  room: RequestRoom;
  /** The version the program declared: how its requests are laid out. */
  abiVersion: number;
  timeoutMs: number;
  maxResponseBytes: number;
  /** performance.now() by which main() and the warm-up must be done (the init time limit). */
  deadline: number;
  /** The program's log so far, quoted in a failure. */
  logs: CaptureStdio;
}

/** A warm-up the host cannot make: refused before the program boots. */
export function checkWarmup(warmup: WarmupOptions | undefined): void {
  if (warmup === undefined) return;
  const { requests, path = '/' } = warmup;
  if (!Number.isSafeInteger(requests) || requests < 1 || requests > MAX_WARMUP_REQUESTS) {
    throw new SandboxError('program', `warmup.requests must be an integer from 1 to ${MAX_WARMUP_REQUESTS}, got ${requests}`);
  }
  if (!/^\/[^\s]*$/.test(path) || path.length > 8192) throw new SandboxError('program', `warmup.path must be a path (and query) starting with /, got ${JSON.stringify(path.slice(0, 100))}`);
}

/** A request the host makes before the snapshot: how to lay it out, and what it is called in an error. */
interface Synthetic {
  req: SandboxRequest;
  layout: RequestLayout;
  what: string;
}

/**
 * Runs one synthetic request on the program standing at its WAIT and leaves it at its next WAIT;
 * returns the answer. Throws SandboxError, naming `what`, when it fails.
 */
function runBeforeSnapshot(target: WarmupTarget, request: Synthetic): DecodedResponse {
  const { machine: m } = target;
  let responseAt = 0;
  m.hypercall = (mm, call) => {
    if (call === CALL_WAIT) {
      responseAt = mm.vcpu.reg('rdi');
      mm.yield();
      return 0;
    }
    return call === CALL_LOG ? 0 : -ENOSYS;
  };
  const phase = request.layout.phase ?? 'generate';
  try {
    const left = target.deadline - performance.now();
    if (left <= 0) throw new SandboxError('timeout', 'not reached within the init time limit');
    const written = writeOne(m.mem, target.room, { req: request.req, random: randomBytes(32), layout: { ...request.layout, abiVersion: target.abiVersion } }, target.abiVersion);
    m.resume(written.at);
    const result = m.run(Math.min(target.timeoutMs, left));
    if (result.kind === 'exit') throw new SandboxError('fault', `program exited with status ${result.status}`);
    if (result.kind !== 'yield') throw new SandboxError('internal', `run ended with ${result.kind}`);
    const answer = readResponse(m.mem, oneResponseAt(m.mem, written, responseAt), target.maxResponseBytes, phase);
    if (phase === 'generate' && answer.status >= 500) throw new SandboxError('program', `answered ${answer.status}`);
    return answer;
  } catch (err) {
    if (!(err instanceof SandboxError)) throw err;
    const said = target.logs.text().trim().split('\n').slice(-3).join(' | ');
    throw new SandboxError(err.kind, `${request.what} failed: ${err.message}${said ? `: ${said}` : ''}`);
  }
}

const SYNTHETIC_HEADERS: Array<[string, string]> = [['Host', 'warmup.invalid'], ['X-Tinyedge-Warmup', '1']];

/**
 * Sends `warmup.requests` requests to the program standing at its WAIT and leaves it at the WAIT
 * after the last one, ready for its snapshot. Throws SandboxError when one fails.
 */
export function warmUp(target: WarmupTarget, warmup: WarmupOptions): void {
  const req = { method: 'GET', url: warmup.path ?? '/', headers: SYNTHETIC_HEADERS, body: new Uint8Array(0) };
  const layout: RequestLayout = { phase: warmup.phase ?? 'generate', response: { status: 200, headers: [] }, presnapshot: true };
  for (let i = 0; i < warmup.requests; i++) runBeforeSnapshot(target, { req, layout, what: `warm-up request ${i + 1} of ${warmup.requests} (GET ${req.url})` });
}

/**
 * Hands a persistent program the state its previous version gave up (`blob`, from
 * te_on_live_update) before its snapshot, so every instance starts with it: one request flagged
 * TE_REQUEST_LIVE_RESTORE whose body is the blob (te_on_live_restore). Version 2 programs only.
 */
export function liveRestore(target: WarmupTarget, blob: Uint8Array): void {
  if (target.abiVersion < BATCH_ABI_VERSION) return;
  if (blob.length > target.room.perRequest - 4096) throw new SandboxError('program', `the previous version's live-update state of ${blob.length} bytes exceeds this version's maxRequestSize`);
  const req = { method: 'POST', url: '/', headers: SYNTHETIC_HEADERS, body: blob };
  runBeforeSnapshot(target, { req, layout: { liveRestore: true, presnapshot: true }, what: `live restore of ${blob.length} bytes` });
}
