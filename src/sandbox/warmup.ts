// Warm-up before the snapshot: after an SDK program's main() reaches its first WAIT, the host
// sends it a few synthetic requests on the machine that booted it, so that whatever they warm —
// caches, lookup tables, a JIT's code — is in the snapshot and so in every instance. They run as
// main() does: synchronously on the loader, host calls answering -ENOSYS, within what is left of
// the init time limit and each within the program's request time limit; a warm-up request that
// fails fails the load.
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { SandboxError } from '../vmm/errors.ts';
import type { Machine } from '../vmm/machine.ts';
import { ENOSYS } from '../vmm/linux/syscalls/errno.ts';
import { CALL_LOG, CALL_WAIT, readResponse } from './abi.ts';
import { oneResponseAt, writeOne } from './batch-abi.ts';
import type { CaptureStdio } from './stdio.ts';
import { MAX_WARMUP_REQUESTS, type WarmupOptions } from './types.ts';

/** What a warm-up needs of the program being loaded. */
export interface WarmupTarget {
  machine: Machine;
  /** The request region and its size. */
  region: number;
  regionSize: number;
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

/**
 * Sends `warmup.requests` requests to the program standing at its WAIT and leaves it at the WAIT
 * after the last one, ready for its snapshot. Throws SandboxError when one fails.
 */
export function warmUp(target: WarmupTarget, warmup: WarmupOptions): void {
  const { machine: m } = target;
  const req = { method: 'GET', url: warmup.path ?? '/', headers: [['Host', 'warmup.invalid'], ['X-Tinyedge-Warmup', '1']] as Array<[string, string]>, body: new Uint8Array(0) };
  const phase = warmup.phase ?? 'generate';
  const random = new Uint8Array(32);
  let responseAt = 0;
  m.hypercall = (mm, call) => {
    if (call === CALL_WAIT) {
      responseAt = mm.vcpu.reg('rdi');
      mm.yield();
      return 0;
    }
    return call === CALL_LOG ? 0 : -ENOSYS;
  };
  for (let i = 0; i < warmup.requests; i++) {
    const left = target.deadline - performance.now();
    if (left <= 0) throw new SandboxError('timeout', `warm-up request ${i + 1} of ${warmup.requests} not reached within the init time limit`);
    randomFillSync(random);
    const written = writeOne(m.mem, target.region, target.regionSize, { req, random, layout: { phase, response: { status: 200, headers: [] }, presnapshot: true, abiVersion: target.abiVersion } }, target.abiVersion);
    m.resume(written.at);
    try {
      const result = m.run(Math.min(target.timeoutMs, left));
      if (result.kind === 'exit') throw new SandboxError('fault', `program exited with status ${result.status}`);
      if (result.kind !== 'yield') throw new SandboxError('internal', `warm-up run ended with ${result.kind}`);
      const answer = readResponse(m.mem, oneResponseAt(m.mem, written, responseAt), target.maxResponseBytes, phase);
      if (phase === 'generate' && answer.status >= 500) throw new SandboxError('program', `answered ${answer.status}`);
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      const said = target.logs.text().trim().split('\n').slice(-3).join(' | ');
      throw new SandboxError(err.kind, `warm-up request ${i + 1} of ${warmup.requests} (GET ${req.url}) failed: ${err.message}${said ? `: ${said}` : ''}`);
    }
  }
}
