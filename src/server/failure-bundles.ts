// Replayable failures: when a tenant program faults or times out, the shard that ran it makes a
// bundle — the request as the program saw it, the program version, its file's SHA-256 and
// settings, the error, and what the host answered it (sandbox/replay.ts) — and the main thread
// keeps the newest of each tenant in a ring bounded in count and bytes, for the admin API and
// `tinyedge replay`. Format: docs/observability.md, "Replayable failures".
import { type ProgramOptions, type RecordedAnswers, recordedAnswers, REPLAYABLE_FAILURES, SandboxError, type SandboxRequest } from '../sandbox/index.ts';

/** The bundle format's name and version (a reader refuses another). */
export const BUNDLE_FORMAT = 'tinyedge-failure-bundle';
export const BUNDLE_VERSION = 1;
/** Request body bytes a bundle keeps; a longer body is cut (`bodyTruncated`) and its replay may differ. */
export const MAX_BUNDLE_BODY_BYTES = 64 * 1024;
/** Bundles one tenant's runtime makes per second on one shard; more failures are only counted. */
const BUNDLES_PER_SECOND = 5;

/** A failed call, ready to replay: one JSON document. */
export interface FailureBundle {
  format: typeof BUNDLE_FORMAT;
  version: typeof BUNDLE_VERSION;
  /** Given by the main thread's store as it keeps the bundle. */
  id: string;
  /** When the call failed (ISO 8601). */
  time: string;
  shard: number;
  tenant: string;
  program: string;
  /** The program version that ran, as the admin API names it (`tenant/program@N`). */
  programVersion: string;
  /** SHA-256 of the program file (hex): `tinyedge replay` refuses another file. */
  programSha256: string;
  /** How the program was loaded: the settings a replay loads it with. */
  settings: ProgramOptions;
  /** Persistent lifecycle: state from earlier requests was in the VM and is not in the bundle. */
  persistent: boolean;
  request: {
    phase: 'generate' | 'recv' | 'deliver';
    method: string;
    url: string;
    headers: Array<[string, string]>;
    /** Base64, at most MAX_BUNDLE_BODY_BYTES. */
    body: string;
    bodyBytes: number;
    bodyTruncated: boolean;
    /** deliver phase: the response the program was shown. */
    response?: { status: number; headers: Array<[string, string]> };
  };
  error: { kind: string; message: string };
  /** What the host answered (null: not recorded, as for a call run in a batch). */
  answers: RecordedAnswers | null;
  /** Failures of this tenant on this shard that got no bundle since the last one (the rate bound). */
  skippedBefore: number;
}

/** Where a shard's bundles go: the main thread's store (directly on shard 0, by message on others). */
export interface FailureSink {
  shard: number;
  keep(bundle: FailureBundle): void;
}

/** A program version as a bundle names it. */
export interface BundleProgram {
  name: string;
  key: string;
  sha256: string;
  /** How it was loaded (asked only when a bundle is made). */
  settings(): ProgramOptions;
}

/** The call a bundle is for: the request, and the deliver phase's response. */
export interface BundleCall {
  phase?: 'generate' | 'recv' | 'deliver';
  response?: { status: number; headers: ReadonlyArray<readonly [string, string]> };
}

/** Settings as JSON keeps them: no Infinity (a bound left out), no live-update state. */
function jsonSettings(settings: ProgramOptions): ProgramOptions {
  const { liveRestore: _state, ...rest } = settings;
  const out: ProgramOptions = { ...rest };
  if (out.resetAfterRequests === Infinity) delete out.resetAfterRequests;
  if (out.resetAboveDirtyBytes === Infinity) delete out.resetAboveDirtyBytes;
  return out;
}

/**
 * One tenant runtime's bundle maker: a bundle for each replayable failure, at most
 * BUNDLES_PER_SECOND a second (a program failing every request costs a count, not a bundle each).
 */
export class FailureRecorder {
  private windowStart = 0;
  private inWindow = 0;
  private skipped = 0;

  constructor(private readonly tenant: string, private readonly sink: FailureSink | undefined) {}

  /** Makes and sends the bundle of `err`, when it is a failure of the program's own and the rate allows. */
  failed(program: BundleProgram, req: SandboxRequest, call: BundleCall, err: unknown): void {
    if (this.sink === undefined || !(err instanceof SandboxError) || !REPLAYABLE_FAILURES.has(err.kind)) return;
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (this.inWindow >= BUNDLES_PER_SECOND) {
      this.skipped++;
      return;
    }
    this.inWindow++;
    const settings = program.settings();
    const body = req.body.length > MAX_BUNDLE_BODY_BYTES ? req.body.subarray(0, MAX_BUNDLE_BODY_BYTES) : req.body;
    const bundle: FailureBundle = {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION,
      id: '',
      time: new Date(now).toISOString(),
      shard: this.sink.shard,
      tenant: this.tenant,
      program: program.name,
      programVersion: program.key,
      programSha256: program.sha256,
      settings: jsonSettings(settings),
      persistent: settings.lifecycle === 'persistent',
      request: {
        phase: call.phase ?? 'generate',
        method: req.method,
        url: req.url,
        headers: req.headers.map(([n, v]) => [n, v]),
        body: Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64'),
        bodyBytes: req.body.length,
        bodyTruncated: body.length < req.body.length,
        ...(call.response ? { response: { status: call.response.status, headers: call.response.headers.map(([n, v]) => [n, v] as [string, string]) } } : {}),
      },
      error: { kind: err.kind, message: err.message },
      answers: recordedAnswers(err) ?? null,
      skippedBefore: this.skipped,
    };
    this.skipped = 0;
    this.sink.keep(bundle);
  }
}

/** A bundle as listed: enough to pick one. */
export type BundleSummary = Pick<FailureBundle, 'id' | 'time' | 'shard' | 'tenant' | 'program' | 'programVersion' | 'error'> & {
  method: string;
  url: string;
  bytes: number;
};

interface Kept {
  summary: BundleSummary;
  json: string;
}

/**
 * The newest bundles of each tenant (main thread): at most `count` per tenant and `maxBytes` of
 * JSON per tenant, the oldest dropped first; a bundle larger than `maxBytes` alone is not kept.
 */
export class FailureBundles {
  private readonly rings = new Map<string, Kept[]>();
  private nextId = 1;

  constructor(private readonly count: number, private readonly maxBytes: number) {}

  keep(bundle: FailureBundle): void {
    if (this.count === 0) return;
    const id = `${bundle.tenant}-${this.nextId++}`;
    const json = `${JSON.stringify({ ...bundle, id }, null, 1)}\n`;
    const bytes = Buffer.byteLength(json);
    if (bytes > this.maxBytes) return;
    const summary: BundleSummary = { id, time: bundle.time, shard: bundle.shard, tenant: bundle.tenant, program: bundle.program, programVersion: bundle.programVersion, error: bundle.error, method: bundle.request.method, url: bundle.request.url, bytes };
    let ring = this.rings.get(bundle.tenant);
    if (ring === undefined) this.rings.set(bundle.tenant, (ring = []));
    ring.push({ summary, json });
    this.trim(ring);
  }

  /** Summaries of `tenant`'s bundles (null: every tenant's), newest first. */
  list(tenant: string | null): BundleSummary[] {
    const rings = tenant === null ? [...this.rings.values()] : [this.rings.get(tenant) ?? []];
    return rings.flat().map((k) => k.summary).sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
  }

  /** The JSON of bundle `id` of `tenant`, or undefined. */
  get(tenant: string, id: string): string | undefined {
    return this.rings.get(tenant)?.find((k) => k.summary.id === id)?.json;
  }

  /** Drops a tenant's bundles (the tenant is gone). */
  drop(tenant: string): void {
    this.rings.delete(tenant);
  }

  private trim(ring: Kept[]): void {
    let bytes = ring.reduce((n, k) => n + k.summary.bytes, 0);
    while (ring.length > this.count || bytes > this.maxBytes) bytes -= ring.shift()!.summary.bytes;
  }
}
