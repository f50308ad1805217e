// Per-tenant key-value store for programs: in memory, survives instance resets, requests and
// program upgrades, bounded by a byte quota (keys plus values). Lives on the main thread, so every
// shard sees one store: the main thread's own calls use it directly, other shards' reach it by
// message (KvAccess, KvRequest). Every operation, increment and compare-and-set included, is one
// synchronous step on that thread, so no two requests interleave inside one.
import type { KvIncrementResult, KvSwapResult } from '../sandbox/index.ts';

/** A tenant's store as its programs' host calls reach it, directly or from another thread. */
export interface KvAccess {
  get(key: string): Uint8Array | undefined | Promise<Uint8Array | undefined>;
  /** False when the quota would be exceeded. */
  set(key: string, value: Uint8Array): boolean | Promise<boolean>;
  delete(key: string): boolean | Promise<boolean>;
  increment(key: string, delta: bigint): KvIncrementResult | Promise<KvIncrementResult>;
  compareAndSet(key: string, expected: Uint8Array | null, value: Uint8Array): KvSwapResult | Promise<KvSwapResult>;
}

/** One operation as a message carries it to the store's thread (structured-cloneable). */
export type KvRequest =
  | { op: 'get'; key: string }
  | { op: 'set'; key: string; value: Uint8Array }
  | { op: 'delete'; key: string }
  | { op: 'increment'; key: string; delta: bigint }
  | { op: 'compareAndSet'; key: string; expected: Uint8Array | null; value: Uint8Array };

export interface KvStats {
  keys: number;
  bytes: number;
  quotaBytes: number;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** A counter's stored form: decimal ASCII, an optional minus sign, at most 19 digits. */
const DECIMAL = /^-?[0-9]{1,19}$/;
const enc = new TextEncoder();

export class KvStore implements KvAccess {
  private readonly map = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(private quotaBytes: number) {}

  get(key: string): Uint8Array | undefined {
    return this.map.get(key);
  }

  /** Stores `value` under `key`; false (and nothing changes) when the quota would be exceeded. */
  set(key: string, value: Uint8Array): boolean {
    const old = this.map.get(key);
    const keyBytes = Buffer.byteLength(key);
    const next = this.bytes - (old ? keyBytes + old.length : 0) + keyBytes + value.length;
    if (next > this.quotaBytes) return false;
    this.map.set(key, Uint8Array.from(value));
    this.bytes = next;
    return true;
  }

  delete(key: string): boolean {
    const old = this.map.get(key);
    if (!old) return false;
    this.map.delete(key);
    this.bytes -= Buffer.byteLength(key) + old.length;
    return true;
  }

  /**
   * Adds `delta` to the integer stored under `key` as decimal text (absent: 0) and stores the sum
   * the same way. Nothing changes when the value is not such an integer, the sum leaves the
   * signed 64-bit range, or the longer text would exceed the quota.
   */
  increment(key: string, delta: bigint): KvIncrementResult {
    const old = this.map.get(key);
    let current = 0n;
    if (old) {
      const text = Buffer.from(old.buffer, old.byteOffset, old.byteLength).toString('latin1');
      if (!DECIMAL.test(text)) return { refused: 'not-integer' };
      current = BigInt(text);
      if (current < INT64_MIN || current > INT64_MAX) return { refused: 'not-integer' };
    }
    const sum = current + delta;
    if (sum < INT64_MIN || sum > INT64_MAX) return { refused: 'overflow' };
    return this.set(key, enc.encode(sum.toString())) ? { value: sum } : { refused: 'quota' };
  }

  /** Stores `value` only if `key` holds exactly `expected` (null: only if it is absent). */
  compareAndSet(key: string, expected: Uint8Array | null, value: Uint8Array): KvSwapResult {
    const old = this.map.get(key);
    const matches = expected === null ? old === undefined : old !== undefined && Buffer.compare(old, expected) === 0;
    if (!matches) return 'differs';
    return this.set(key, value) ? 'swapped' : 'quota';
  }

  /** Runs one operation a message brought, in this one synchronous step. */
  apply(r: KvRequest): ReturnType<KvStore[KvRequest['op']]> {
    switch (r.op) {
      case 'get': return this.get(r.key);
      case 'set': return this.set(r.key, r.value);
      case 'delete': return this.delete(r.key);
      case 'increment': return this.increment(r.key, r.delta);
      case 'compareAndSet': return this.compareAndSet(r.key, r.expected, r.value);
    }
  }

  /** A new quota (config reload); existing entries stay even if they now exceed it. */
  resize(quotaBytes: number): void {
    this.quotaBytes = quotaBytes;
  }

  stats(): KvStats {
    return { keys: this.map.size, bytes: this.bytes, quotaBytes: this.quotaBytes };
  }
}

/** A store on another thread, each operation one message `call` sends and whose answer it awaits. */
export function remoteKv(call: (r: KvRequest) => Promise<unknown>): KvAccess {
  return {
    get: (key) => call({ op: 'get', key }) as Promise<Uint8Array | undefined>,
    set: (key, value) => call({ op: 'set', key, value }) as Promise<boolean>,
    delete: (key) => call({ op: 'delete', key }) as Promise<boolean>,
    increment: (key, delta) => call({ op: 'increment', key, delta }) as Promise<KvIncrementResult>,
    compareAndSet: (key, expected, value) => call({ op: 'compareAndSet', key, expected, value }) as Promise<KvSwapResult>,
  };
}
