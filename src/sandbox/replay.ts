// Replayable failures, the sandbox's part: what the host answered a call that failed (the
// journal's steps as JSON, with the request's te_request.random), kept with the error, and the
// host services of a replay, which answer from those steps instead of the live host. The bundle
// around them (request, settings, tenant) is the server's (server/failure-bundles.ts).
import { Journal, type HostStep, type HostStepCodec, type JournalStep, ReplayDiverged } from '../vmm/linux/journal.ts';
import { SandboxError, type SandboxFailureKind } from '../vmm/errors.ts';
import { CALL_FETCH, type FetchCall } from './abi.ts';
import { CALL_KV_CAS, CALL_KV_DELETE, CALL_KV_GET, CALL_KV_INCR, CALL_KV_SET } from './abi-kv.ts';
import type { HostCalls } from './host-call.ts';
import type { KvIncrementResult, KvSwapResult } from './types.ts';

export { Journal, ReplayDiverged, type JournalStep };

/** What the host answered one failed call, as a bundle keeps it (JSON). */
export interface RecordedAnswers {
  /** te_request.random of the request (base64; SDK programs). */
  random?: string;
  steps: JournalStep[];
  /** Some steps were not kept (the journal's bounds): a replay diverges where they begin. */
  truncated: boolean;
  /** Steps the call took, kept or not. */
  stepsSeen: number;
}

/** The failures a bundle is kept for: the program's own doing. */
export const REPLAYABLE_FAILURES: ReadonlySet<SandboxFailureKind> = new Set(['fault', 'timeout', 'out-of-memory', 'bad-response']);

const NAMES: Record<number, string> = { [CALL_FETCH]: 'fetch', [CALL_KV_GET]: 'kv-get', [CALL_KV_SET]: 'kv-set', [CALL_KV_DELETE]: 'kv-delete', [CALL_KV_INCR]: 'kv-increment', [CALL_KV_CAS]: 'kv-compare-and-set' };

/** A sub-request as a step names it. */
function fetchWhat(call: Omit<FetchCall, 'result'>): string {
  return `${call.method} ${call.url}${call.origin === '' ? '' : ` (origin ${call.origin})`}`;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

/** An answer as JSON: an Error's message, else the call's result. */
function encodeAnswer(call: number, answer: unknown): unknown {
  if (answer instanceof Error) return { error: answer.message };
  switch (call) {
    case CALL_FETCH: {
      const r = answer as Awaited<ReturnType<NonNullable<HostCalls['fetch']>>>;
      return { status: r.status, headers: r.headers, body: b64(r.body) };
    }
    case CALL_KV_GET:
      return answer === undefined ? { absent: true } : { value: b64(answer as Uint8Array) };
    case CALL_KV_INCR: {
      const r = answer as KvIncrementResult;
      return 'refused' in r ? { refused: r.refused } : { value: r.value.toString() };
    }
    case CALL_KV_CAS:
      return { result: answer as KvSwapResult };
    default:
      return { ok: answer === true };
  }
}

/** Bytes of an answer the journal keeps a reference to (bodies and values), for its bound. */
export function answerBytes(answer: unknown): number {
  if (answer instanceof Uint8Array) return answer.length;
  if (typeof answer === 'object' && answer !== null && 'body' in answer && answer.body instanceof Uint8Array) {
    const r = answer as { body: Uint8Array; headers: Array<[string, string]> };
    let n = r.body.length;
    for (const [k, v] of r.headers) n += k.length + v.length;
    return n;
  }
  return 16;
}

export const hostStepCodec: HostStepCodec = {
  encode(step: HostStep) {
    const what = step.call === CALL_FETCH ? fetchWhat(step.what as Omit<FetchCall, 'result'>) : String(step.what);
    const name = NAMES[step.call] ?? `call ${step.call}`;
    return step.answered ? { call: name, what, answer: encodeAnswer(step.call, step.answer) } : { call: name, what };
  },
};

const kept = new WeakMap<object, RecordedAnswers>();

/** Keeps `answers` with the failure `err` (the instance that failed is reset at once). */
export function keepAnswers(err: SandboxError, answers: RecordedAnswers): void {
  kept.set(err, answers);
}

/** What the host answered the call that failed with `err`, when it was recorded. */
export function recordedAnswers(err: unknown): RecordedAnswers | undefined {
  return typeof err === 'object' && err !== null ? kept.get(err) : undefined;
}

/** A recorded answer field, or a clear error for a bundle that does not hold one. */
function field<T>(answer: unknown, name: string, check: (v: unknown) => v is T): T {
  const v = typeof answer === 'object' && answer !== null ? (answer as Record<string, unknown>)[name] : undefined;
  if (!check(v)) throw new SandboxError('program', `the bundle's answer ${JSON.stringify(answer)?.slice(0, 200)} has no valid "${name}"`);
  return v;
}
const isString = (v: unknown): v is string => typeof v === 'string';
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isHeaders = (v: unknown): v is Array<[string, string]> => Array.isArray(v) && v.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string');
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const hasError = (a: unknown): string | undefined => (typeof a === 'object' && a !== null && typeof (a as { error?: unknown }).error === 'string' ? (a as { error: string }).error : undefined);

/** A promise that never settles: the recorded call was still waiting when the program failed. */
const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

/**
 * Host services answering from `journal` (a replay's): each call must be the one recorded at
 * that step (else ReplayDiverged, thrown as the call is made), and gets the recorded answer;
 * one the recorded run was still waiting on never answers. No live service is asked anything.
 */
export function replayHostCalls(journal: Journal): HostCalls {
  const take = (call: number, what: string): { answered: boolean; answer?: unknown } => journal.replayHost(NAMES[call]!, what);
  /** The recorded answer, a rejection for a recorded error, or a promise that never settles. */
  const answer = <T>(call: number, what: string, decode: (a: unknown) => T): Promise<T> => {
    const r = take(call, what);
    if (!r.answered) return never<T>();
    const error = hasError(r.answer);
    return error === undefined ? Promise.resolve(decode(r.answer)) : Promise.reject(new Error(error));
  };
  return {
    fetch: (call) => answer(CALL_FETCH, fetchWhat(call), (a) => ({ status: field(a, 'status', isNumber), headers: field(a, 'headers', isHeaders), body: Buffer.from(field(a, 'body', isString), 'base64') })),
    kvGet: (key) => answer(CALL_KV_GET, key, (a) => ((a as { absent?: unknown }).absent === true ? undefined : new Uint8Array(Buffer.from(field(a, 'value', isString), 'base64')))),
    kvSet: (key) => answer(CALL_KV_SET, key, (a) => field(a, 'ok', isBool)),
    kvDelete: (key) => answer(CALL_KV_DELETE, key, (a) => field(a, 'ok', isBool)),
    kvIncrement: (key) => answer(CALL_KV_INCR, key, (a): KvIncrementResult => {
      const refused = (a as { refused?: unknown }).refused;
      if (refused === 'not-integer' || refused === 'overflow' || refused === 'quota') return { refused };
      const value = field(a, 'value', isString);
      if (!/^-?\d{1,20}$/.test(value)) throw new SandboxError('program', `the bundle's increment result ${JSON.stringify(value.slice(0, 40))} is not an integer`);
      return { value: BigInt(value) };
    }),
    kvCompareAndSet: (key) => answer(CALL_KV_CAS, key, (a) => {
      const r = field(a, 'result', isString);
      if (r !== 'swapped' && r !== 'differs' && r !== 'quota') throw new SandboxError('program', `the bundle's compare-and-set result ${JSON.stringify(r.slice(0, 40))} is not one`);
      return r;
    }),
  };
}
