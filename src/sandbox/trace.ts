// The SDK's hypercalls as the trace prints them (`tinyedge run --trace`, `dev --trace`):
//   te_log("echo GET /", 10) = 0
//   te_fetch({origin="default", method="GET", url="/api"}) <unfinished ...>
// Every structure is read through GuestMemory's checks, bounded; what does not check out prints as
// its address. Nothing here runs unless a trace is on.
import type { GuestMemory } from '../vmm/memory/guest-memory.ts';
import { guestBytes, quote } from '../vmm/linux/syscalls/decode.ts';
import { errnoName } from '../vmm/linux/syscalls/errno-names.ts';
import { type HypercallDecoder, Tracer } from '../vmm/run/trace.ts';
import { CALL_FETCH, CALL_LOG, CALL_WAIT } from './abi.ts';
import { CALL_KV_CAS, CALL_KV_DELETE, CALL_KV_GET, CALL_KV_INCR, CALL_KV_SET } from './abi-kv.ts';
import { TE_FETCH, TE_KV, TE_KV_CAS, TE_KV_CAS_ABSENT, TE_STR } from './abi-layout.ts';

const NAMES: Record<number, string> = {
  [CALL_WAIT]: 'te_wait', [CALL_LOG]: 'te_log', [CALL_FETCH]: 'te_fetch',
  [CALL_KV_GET]: 'te_kv_get', [CALL_KV_SET]: 'te_kv_set', [CALL_KV_DELETE]: 'te_kv_delete',
  [CALL_KV_INCR]: 'te_kv_increment', [CALL_KV_CAS]: 'te_kv_compare_and_set',
};

/** Strings print at most this many bytes, then `...`. */
const MAX_SHOWN = 64;
const MAX_ERRNO = 4095;

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/** `len` bytes at `ptr` as a quoted string, or the pointer when they are not readable. */
function bytes(mem: GuestMemory, ptr: bigint, len: bigint): string {
  if (len === 0n) return '""';
  const shown = guestBytes(mem, ptr, len > BigInt(MAX_SHOWN) ? MAX_SHOWN : Number(len), false);
  return shown ? quote(shown, BigInt(shown.length) < len) : hex(ptr);
}

/** The 64-bit field at `at`, or undefined when it is not readable. */
function u64(mem: GuestMemory, at: bigint): bigint | undefined {
  const b = guestBytes(mem, at, 8, false);
  return b && b.length === 8 ? Buffer.from(b).readBigUInt64LE(0) : undefined;
}

/** The te_str at `at` as a quoted string. */
function teStr(mem: GuestMemory, at: bigint): string {
  const ptr = u64(mem, at + BigInt(TE_STR.ptr));
  const len = u64(mem, at + BigInt(TE_STR.len));
  return ptr === undefined || len === undefined ? hex(at) : bytes(mem, ptr, len);
}

function fetchArgs(mem: GuestMemory, at: bigint): string {
  if (u64(mem, at) === undefined) return hex(at);
  const field = (name: keyof typeof TE_FETCH): bigint => at + BigInt(TE_FETCH[name]);
  const bodyLen = u64(mem, field('body') + BigInt(TE_STR.len)) ?? 0n;
  return `{origin=${teStr(mem, field('origin'))}, method=${teStr(mem, field('method'))}, url=${teStr(mem, field('url'))}, ` +
    `headers=${u64(mem, field('header_count')) ?? '?'}, body=${bodyLen} bytes}`;
}

function kvArgs(mem: GuestMemory, call: number, at: bigint): string {
  if (u64(mem, at) === undefined) return hex(at);
  const key = `key=${teStr(mem, at + BigInt(TE_KV.key))}`;
  if (call === CALL_KV_INCR) {
    const delta = guestBytes(mem, u64(mem, at + BigInt(TE_KV.value)) ?? 0n, 8, false);
    return `{${key}, delta=${delta && delta.length === 8 ? Buffer.from(delta).readBigInt64LE(0) : '?'}}`;
  }
  if (call === CALL_KV_CAS) {
    const flags = u64(mem, at + BigInt(TE_KV_CAS.flags)) ?? 0n;
    const expected = flags === 0n ? `expected=${teStr(mem, at + BigInt(TE_KV_CAS.expected))}` : flags === BigInt(TE_KV_CAS_ABSENT) ? 'expected=absent' : `flags=${hex(flags)}`;
    return `{${key}, ${expected}, value=${teStr(mem, at + BigInt(TE_KV_CAS.value))}}`;
  }
  if (call !== CALL_KV_SET) return `{${key}}`;
  const value = u64(mem, at + BigInt(TE_KV.value)) ?? 0n;
  const length = u64(mem, at + BigInt(TE_KV.value_cap)) ?? 0n;
  return `{${key}, value=${bytes(mem, value, length)}}`;
}

const decoder: HypercallDecoder = {
  name: (call) => NAMES[call] ?? `hypercall_${call}`,
  args(mem, call, rdi, rsi) {
    switch (call) {
      case CALL_WAIT: return rdi === 0n ? `NULL, abi_version=${rsi}` : hex(rdi);
      case CALL_LOG: return `${bytes(mem, rdi, rsi)}, ${rsi}`;
      case CALL_FETCH: return fetchArgs(mem, rdi);
      case CALL_KV_GET: case CALL_KV_SET: case CALL_KV_DELETE: case CALL_KV_INCR: case CALL_KV_CAS: return kvArgs(mem, call, rdi);
      default: return `${hex(rdi)}, ${hex(rsi)}`;
    }
  },
  result(call, value) {
    if (value < 0 && value >= -MAX_ERRNO) {
      const [name, message] = errnoName(-value) ?? [`E${-value}`, 'Unknown error'];
      return `-1 ${name} (${message})`;
    }
    // WAIT answers with the next request's address.
    return call === CALL_WAIT ? hex(value) : String(value);
  },
};

/** A trace that writes each line to `write`, hypercalls decoded as the SDK defines them. */
export function sdkTracer(write: (line: string) => void): Tracer {
  return new Tracer({ write, hypercalls: decoder });
}
