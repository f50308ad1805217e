// The host calls an SDK program makes during a request (sub-requests, the key-value store, whose
// calls abi-kv.ts reads): how one is started from its hypercall, its arguments checked and
// bounded before anything is asked of the host, and finished into the guest's RAX; plus the
// per-request entropy.
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { SandboxError } from '../vmm/errors.ts';
import type { Machine } from '../vmm/machine.ts';
import { GuestFault } from '../vmm/memory/guest-memory.ts';
import { EFAULT, EIO, ENOSYS } from '../vmm/linux/syscalls/errno.ts';
import { CALL_FETCH, type FetchCall, HostCallError, readFetch, writeFetchResult } from './abi.ts';
import { startKvCall } from './abi-kv.ts';
import type { KvIncrementResult, KvSwapResult } from './types.ts';

/** Host services a program may call during a request (SDK hypercalls); all optional. */
export interface HostCalls {
  fetch?(call: Omit<FetchCall, 'result'>): Promise<{ status: number; headers: Array<[string, string]>; body: Uint8Array }>;
  kvGet?(key: string): Promise<Uint8Array | undefined> | Uint8Array | undefined;
  /** Returns false when the tenant's quota would be exceeded. */
  kvSet?(key: string, value: Uint8Array): Promise<boolean> | boolean;
  kvDelete?(key: string): Promise<boolean> | boolean;
  /**
   * Adds `delta` to the signed 64-bit integer stored under `key` as decimal text (an absent key
   * counts as 0), in one step of the store.
   */
  kvIncrement?(key: string, delta: bigint): Promise<KvIncrementResult> | KvIncrementResult;
  /** Stores `value` only if `key` holds `expected` (null: only if `key` is absent), in one step of the store. */
  kvCompareAndSet?(key: string, expected: Uint8Array | null, value: Uint8Array): Promise<KvSwapResult> | KvSwapResult;
}

/** A host call the guest is waiting on: the promise, and how to turn its outcome into RAX. */
export interface PendingHostCall {
  promise: Promise<unknown>;
  complete(value: unknown): number;
  /** The hypercall, and what it asks (a key-value key, a sub-request), for the journal (replay.ts). */
  call: number;
  what: unknown;
}

/**
 * The guest's RAX for a finished host call. Its result buffers were checked when the call was made
 * and the guest cannot run while it waits; should writing the result fault all the same, that is
 * the guest's -EFAULT too, never a host exception.
 */
export function completeHostCall(pending: PendingHostCall, value: unknown): number {
  try {
    return pending.complete(value);
  } catch (err) {
    if (err instanceof GuestFault) return -EFAULT;
    throw err;
  }
}

/** Awaits `promise`, or fails with a timeout at `deadline` (a performance.now() time). */
export async function withDeadline<T>(promise: Promise<T>, deadline: number, limitMs: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SandboxError('timeout', `program ran past its ${limitMs} ms time limit (waiting on a host call)`)), Math.max(0, deadline - performance.now()));
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Per-request entropy comes from a pool refilled 4 KiB at a time: one CSPRNG call per 128 requests. */
const entropy = { pool: new Uint8Array(4096), used: 4096 };

/** 32 fresh random bytes for a request's te_request.random. */
export function freshRandom(): Uint8Array {
  if (entropy.used + 32 > entropy.pool.length) {
    randomFillSync(entropy.pool);
    entropy.used = 0;
  }
  const out = entropy.pool.subarray(entropy.used, entropy.used + 32);
  entropy.used += 32;
  return out;
}

/**
 * Starts host call `call` (argument `arg`) of the program on `m`: answers at once (RAX) when it
 * is impossible or refused, else yields with the call pending (`pending` is what to await).
 */
export function startHostCall(m: Machine, call: number, arg: number, host: HostCalls | undefined): { rax: number; pending?: PendingHostCall } {
  try {
    let pending: PendingHostCall | undefined;
    if (call === CALL_FETCH && host?.fetch) {
      const { result, ...request } = readFetch(m.mem, arg);
      pending = {
        call,
        what: request,
        promise: host.fetch(request),
        complete: (r) => {
          if (r instanceof Error) return -EIO;
          const res = r as Awaited<ReturnType<NonNullable<HostCalls['fetch']>>>;
          writeFetchResult(m.mem, result, res.body, res.headers);
          return res.status;
        },
      };
    } else {
      pending = startKvCall(m.mem, call, arg, host);
    }
    if (!pending) return { rax: -ENOSYS };
    // A rejected host call reaches the guest as -EIO, never as a host exception.
    pending.promise = pending.promise.catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    m.yield();
    return { rax: 0, pending };
  } catch (err) {
    if (err instanceof GuestFault) return { rax: -EFAULT };
    if (err instanceof HostCallError) return { rax: -err.errno };
    throw err;
  }
}
