// Reading a failure bundle back (`tinyedge replay`): its size bounded before it is parsed, its
// JSON checked field by field against the format (failure-bundles.ts), so that a malformed,
// hostile or foreign file is refused with a message that says what is wrong, never half-used.
import { z } from 'zod';
import type { JournalStep } from '../sandbox/index.ts';
import { BUNDLE_FORMAT, BUNDLE_VERSION, type FailureBundle } from './failure-bundles.ts';

/** The largest bundle file a replay reads: bundles the server makes stay far below it. */
export const MAX_BUNDLE_FILE_BYTES = 8 * 1024 * 1024;

/** A bundle that cannot be replayed, and why. */
export class BundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BundleError';
  }
}

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64');
const header = z.tuple([z.string(), z.string()]);
const int = (min: number, max: number) => z.number().int().min(min).max(max);

const step: z.ZodType<JournalStep> = z.discriminatedUnion('step', [
  z.strictObject({ step: z.literal('clock'), clock: int(-(2 ** 31), 2 ** 31 - 1), sec: int(-(2 ** 52), 2 ** 52), nsec: int(0, 999_999_999) }),
  z.strictObject({ step: z.literal('random'), bytes: base64 }),
  z.strictObject({ step: z.literal('host'), call: z.string().max(64), what: z.string().max(16 * 1024), answer: z.unknown().optional() }),
]);

const settings = z.strictObject({
  mode: z.enum(['sdk', 'cgi']),
  name: z.string().max(255).optional(),
  memoryMiB: int(2, 64 * 1024).optional(),
  timeoutMs: z.number().positive().max(24 * 3600 * 1000).optional(),
  initTimeoutMs: z.number().positive().max(24 * 3600 * 1000).optional(),
  maxRequestBytes: int(1, 2 ** 32).optional(),
  maxResponseBytes: int(1, 2 ** 32).optional(),
  env: z.array(z.string().max(64 * 1024)).max(4096).optional(),
  allowRead: z.array(z.string().max(4096)).max(256).optional(),
  executableMemory: z.boolean().optional(),
  lifecycle: z.enum(['ephemeral', 'persistent']).optional(),
  resetAfterRequests: int(1, Number.MAX_SAFE_INTEGER).optional(),
  resetAboveDirtyBytes: z.number().positive().optional(),
  warmup: z.strictObject({ requests: int(1, 10_000), path: z.string().max(8192).optional(), phase: z.enum(['generate', 'recv', 'deliver']).optional() }).optional(),
});

const bundle = z.strictObject({
  format: z.literal(BUNDLE_FORMAT),
  version: z.literal(BUNDLE_VERSION),
  id: z.string().max(256),
  time: z.string().max(64),
  shard: int(0, 256),
  tenant: z.string().max(256),
  program: z.string().max(256),
  programVersion: z.string().max(512),
  programSha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 hex digits'),
  settings,
  persistent: z.boolean(),
  request: z.strictObject({
    phase: z.enum(['generate', 'recv', 'deliver']),
    method: z.string().min(1).max(64),
    url: z.string().max(64 * 1024),
    headers: z.array(header).max(1024),
    body: base64,
    bodyBytes: int(0, Number.MAX_SAFE_INTEGER),
    bodyTruncated: z.boolean(),
    response: z.strictObject({ status: int(100, 999), headers: z.array(header).max(1024) }).optional(),
  }),
  error: z.strictObject({ kind: z.string().max(64), message: z.string().max(64 * 1024) }),
  answers: z.strictObject({
    random: base64.optional(),
    steps: z.array(step).max(100_000),
    truncated: z.boolean(),
    stepsSeen: int(0, Number.MAX_SAFE_INTEGER),
  }).nullable(),
  skippedBefore: int(0, Number.MAX_SAFE_INTEGER),
});

/** The first problem zod found, as `at <path>: <message>`. */
function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const path = issue.path.length === 0 ? 'the top level' : issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
  return `at ${path}: ${issue.message}`;
}

/** Parses the text of a bundle file; throws BundleError saying what is wrong. */
export function parseBundle(text: string, source: string): FailureBundle {
  if (Buffer.byteLength(text) > MAX_BUNDLE_FILE_BYTES) throw new BundleError(`${source} is larger than ${MAX_BUNDLE_FILE_BYTES} bytes: not a failure bundle`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new BundleError(`${source} is not JSON (${(err as Error).message})`);
  }
  if (typeof json === 'object' && json !== null && 'format' in json && json.format === BUNDLE_FORMAT && 'version' in json && json.version !== BUNDLE_VERSION) {
    throw new BundleError(`${source} is a failure bundle of format version ${JSON.stringify(json.version)}; this tinyedge reads version ${BUNDLE_VERSION}`);
  }
  const r = bundle.safeParse(json);
  if (!r.success) throw new BundleError(`${source} is not a valid failure bundle, ${firstIssue(r.error)}`);
  const b = r.data as FailureBundle;
  const random = b.answers?.random;
  if (random !== undefined && Buffer.from(random, 'base64').length !== 32) throw new BundleError(`${source} is not a valid failure bundle, at answers.random: expected 32 bytes`);
  return b;
}
