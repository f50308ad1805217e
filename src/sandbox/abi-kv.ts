// The key-value hypercalls seen from the host (docs/guest-abi.md): each te_kv or te_kv_cas is
// checked and bounded before the store is asked anything, and the store's answer becomes the
// guest's RAX. The store is the embedder's (HostCalls); increments and compare-and-sets are single
// operations of the store, so concurrent requests (on any thread) cannot lose an update.
import type { GuestMemory } from '../vmm/memory/guest-memory.ts';
import { E2BIG, EINVAL, EIO, ENOENT, ENOSPC, ERANGE } from '../vmm/linux/syscalls/errno.ts';
import { HostCallError, strView } from './abi.ts';
import { TE_KV, TE_KV_CAS, TE_KV_CAS_ABSENT, TE_STR } from './abi-layout.ts';
import type { HostCalls } from './host-call.ts';
import type { KvIncrementResult, KvSwapResult } from './types.ts';

export const CALL_KV_GET = 4;
export const CALL_KV_SET = 5;
export const CALL_KV_DELETE = 6;
export const CALL_KV_INCR = 7;
export const CALL_KV_CAS = 8;

const MAX_KV_KEY_BYTES = 1024;
/** One value KV_SET (or either value of KV_CAS) copies out of the guest; the tenant's quota bounds them all. */
export const MAX_KV_VALUE_BYTES = 1024 * 1024;
/** KV_INCR's te_kv.value_cap: the size of the int64_t it points to. */
const INCR_VALUE_BYTES = 8;

const dec = new TextDecoder('utf-8', { fatal: false });

/** What a key-value call uses of its te_kv: the key only, a buffer to fill, or a value to copy. */
type KvUse = 'key' | 'get' | 'set';

/** The key of the te_kv or te_kv_cas at `at` (both start with it): 1 to MAX_KV_KEY_BYTES bytes. */
function readKey(mem: GuestMemory, at: number): string {
  const keyLen = mem.u64(at + TE_KV.key + TE_STR.len);
  if (keyLen === 0) throw new HostCallError(EINVAL, 'empty key-value key');
  return dec.decode(strView(mem, at + TE_KV.key, MAX_KV_KEY_BYTES, (n) => new HostCallError(E2BIG, `key-value key of ${n} bytes (at most ${MAX_KV_KEY_BYTES})`)));
}

/** A value te_str at `at`, bounded, then checked, then copied (the store keeps it past the call). */
function readValue(mem: GuestMemory, at: number): Uint8Array {
  return Uint8Array.from(strView(mem, at, MAX_KV_VALUE_BYTES, (n) => new HostCallError(E2BIG, `key-value value of ${n} bytes (at most ${MAX_KV_VALUE_BYTES})`)));
}

/**
 * A te_kv (32 bytes): the key, and for `get` the value buffer (checked), for `set` the value
 * (bounded, then checked). Throws GuestFault for a bad pointer, HostCallError for a bad size.
 */
export function readKv(mem: GuestMemory, at: number, use: KvUse): { key: string; valueAt: number; valueLen: number } {
  mem.check(at, TE_KV.SIZE);
  const key = readKey(mem, at);
  if (use === 'key') return { key, valueAt: 0, valueLen: 0 };
  const valueAt = mem.u64(at + TE_KV.value);
  const valueLen = mem.u64(at + TE_KV.value_cap);
  if (use === 'set' && valueLen > MAX_KV_VALUE_BYTES) throw new HostCallError(E2BIG, `key-value value of ${valueLen} bytes (at most ${MAX_KV_VALUE_BYTES})`);
  if (valueLen > 0) mem.check(valueAt, valueLen);
  return { key, valueAt, valueLen };
}

/**
 * KV_INCR's te_kv: the key, and `value` pointing at an int64_t (value_cap 8, else EINVAL) that
 * holds the delta and receives the new value; it must be writable now, before the store changes.
 */
export function readKvIncrement(mem: GuestMemory, at: number): { key: string; delta: bigint; valueAt: number } {
  mem.check(at, TE_KV.SIZE);
  const key = readKey(mem, at);
  const valueLen = mem.u64(at + TE_KV.value_cap);
  if (valueLen !== INCR_VALUE_BYTES) throw new HostCallError(EINVAL, `key-value increment of a ${valueLen}-byte value (an int64_t is ${INCR_VALUE_BYTES})`);
  const valueAt = mem.u64(at + TE_KV.value);
  mem.check(valueAt, INCR_VALUE_BYTES, true);
  return { key, delta: mem.i64(valueAt), valueAt };
}

/**
 * A te_kv_cas (56 bytes): the key, the value expected (null with TE_KV_CAS_ABSENT, whose
 * `expected` is not read) and the new value, each bounded and checked; unknown flags are EINVAL.
 */
export function readKvCas(mem: GuestMemory, at: number): { key: string; expected: Uint8Array | null; value: Uint8Array } {
  mem.check(at, TE_KV_CAS.SIZE);
  const key = readKey(mem, at);
  const flags = mem.u64(at + TE_KV_CAS.flags);
  if (flags !== 0 && flags !== TE_KV_CAS_ABSENT) throw new HostCallError(EINVAL, `key-value compare-and-set flags ${flags}`);
  const expected = flags === TE_KV_CAS_ABSENT ? null : readValue(mem, at + TE_KV_CAS.expected);
  return { key, expected, value: readValue(mem, at + TE_KV_CAS.value) };
}

/** A key-value call under way: the store's answer (an Error when it failed), how it becomes RAX, and its key. */
export interface KvCallStart {
  promise: Promise<unknown>;
  complete(value: unknown): number;
  call: number;
  what: string;
}

const INCREMENT_ERRNO: Record<Extract<KvIncrementResult, { refused: unknown }>['refused'], number> = { 'not-integer': EINVAL, overflow: ERANGE, quota: ENOSPC };

/**
 * Starts key-value call `call` with the te_kv (or te_kv_cas) at `arg`, or undefined when `call` is
 * not one the host offers. Throws GuestFault or HostCallError (the guest's errno) for bad arguments.
 */
export function startKvCall(mem: GuestMemory, call: number, arg: number, host: HostCalls | undefined): KvCallStart | undefined {
  if (call === CALL_KV_GET && host?.kvGet) {
    const kv = readKv(mem, arg, 'get');
    return {
      call, what: kv.key,
      promise: Promise.resolve(host.kvGet(kv.key)),
      complete: (v) => {
        if (v instanceof Error) return -EIO;
        if (v === undefined) return -ENOENT;
        const value = v as Uint8Array;
        const n = Math.min(value.length, kv.valueLen);
        if (n > 0) mem.writable(kv.valueAt, n).set(value.subarray(0, n));
        return value.length;
      },
    };
  }
  if (call === CALL_KV_SET && host?.kvSet) {
    const kv = readKv(mem, arg, 'set');
    const value = kv.valueLen === 0 ? new Uint8Array(0) : Uint8Array.from(mem.user(kv.valueAt, kv.valueLen));
    return { call, what: kv.key, promise: Promise.resolve(host.kvSet(kv.key, value)), complete: (ok) => (ok === true ? 0 : ok instanceof Error ? -EIO : -ENOSPC) };
  }
  if (call === CALL_KV_DELETE && host?.kvDelete) {
    const kv = readKv(mem, arg, 'key');
    return { call, what: kv.key, promise: Promise.resolve(host.kvDelete(kv.key)), complete: (ok) => (ok === true ? 0 : ok instanceof Error ? -EIO : -ENOENT) };
  }
  if (call === CALL_KV_INCR && host?.kvIncrement) {
    const { key, delta, valueAt } = readKvIncrement(mem, arg);
    return {
      call, what: key,
      promise: Promise.resolve(host.kvIncrement(key, delta)),
      complete: (r) => {
        if (r instanceof Error) return -EIO;
        const result = r as KvIncrementResult;
        if ('refused' in result) return -INCREMENT_ERRNO[result.refused];
        mem.setU64(valueAt, result.value);
        return 0;
      },
    };
  }
  if (call === CALL_KV_CAS && host?.kvCompareAndSet) {
    const { key, expected, value } = readKvCas(mem, arg);
    return {
      call, what: key,
      promise: Promise.resolve(host.kvCompareAndSet(key, expected, value)),
      complete: (r) => (r instanceof Error ? -EIO : (r as KvSwapResult) === 'swapped' ? 1 : r === 'differs' ? 0 : -ENOSPC),
    };
  }
  return undefined;
}
