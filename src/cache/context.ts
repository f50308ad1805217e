// Types shared by the request states: the engine parts a request uses, the per-request context,
// the tenant hook interface, and the statistics counters.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { CacheControl } from './cache-control.ts';
import type { Coalescer } from './coalesce.ts';
import type { HeaderList } from './headers.ts';
import type { BanList } from './invalidation.ts';
import type { Backend } from './origin.ts';
import type { PolicyConfig } from './policy.ts';
import type { ObjectStore } from './object-store.ts';

/** The request as a hook sees it (read-only view; headers are Node's parsed headers). */
export interface HookRequest {
  readonly method: string;
  readonly url: string;
  readonly host: string;
  readonly headers: IncomingHttpHeaders;
}

/**
 * What `recv` decides: look the request up, pass it to the origin, or answer it directly. A
 * lookup or pass may first rewrite the URL (path and query) and set request headers (an empty
 * value removes one).
 */
export type RecvDecision =
  | { action: 'lookup' | 'pass'; url?: string; setHeaders?: ReadonlyArray<readonly [string, string]> }
  | { action: 'synth'; status: number; headers?: Record<string, string>; body?: string | Buffer };

/** The response about to be delivered; a deliver hook may change status and headers (not the body). */
export interface HookResponse {
  status: number;
  /** Flat [name, value, …] list, lower-case names; a private copy the hook may edit. */
  headers: HeaderList;
  /** How the cache produced it: HIT, MISS, PASS, STALE, REVALIDATED or SYNTH. */
  readonly cache: string;
}

/**
 * Tenant hooks between named states (Varnish's vcl_recv / vcl_deliver). Both may be async (a
 * tenant VM answers on another thread); without hooks the engine runs without any await on hits.
 */
export interface CacheHooks {
  recv?(req: HookRequest): RecvDecision | undefined | Promise<RecvDecision | undefined>;
  deliver?(req: HookRequest, resp: HookResponse): void | Promise<void>;
}

/** A cache's counters since it started (`Cache.stats`). */
export interface CacheStats {
  hits: number;
  /** Hits answered by the front's raw fast path (a subset of `hits`). */
  fastHits: number;
  /** Misses and passes a program answered on the front's raw path (a subset of `misses` + `passes`). */
  fastFetches: number;
  misses: number;
  passes: number;
  staleHits: number;
  /** Requests that waited on another request's fetch instead of fetching. */
  coalesced: number;
  /** Origin 304s that refreshed a stored object. */
  revalidations: number;
  /** Requests sent to the origin because the key was marked hit-for-miss. */
  hitForMiss: number;
  /** Origin fetches and background refreshes that failed. */
  fetchErrors: number;
  /** Background (grace) refreshes started. */
  backgroundFetches: number;
  /** Storable responses not stored because they carried too many surrogate keys. */
  tagRefusals: number;
  objects: number;
  /** Bytes charged to the quota: objects, their index entries, hit-for-miss markers, bans. */
  bytes: number;
  evictions: number;
  bans: number;
  /** Distinct surrogate keys in the index. */
  tags: number;
}

/** Counters the states increment (objects/bytes/evictions/bans/tags come from storage). */
export type Counters = Omit<CacheStats, 'objects' | 'bytes' | 'evictions' | 'bans' | 'tags'>;

/** What the request states need from the engine. */
export interface EngineParts {
  readonly ns: ObjectStore;
  readonly coalescer: Coalescer;
  readonly bans: BanList;
  readonly backend: Backend;
  readonly policy: PolicyConfig;
  readonly now: () => number;
  readonly hooks: CacheHooks | null;
  readonly counters: Counters;
  readonly hitForMissMs: number;
  readonly maxObjectBytes: number;
  /** Via token ("1.1 tinyedge") or null to add none. */
  readonly via: string | null;
  /** Host header sent to the origin instead of the client's, or null. */
  readonly hostHeader: string | null;
  /** Drops stored objects and in-flight fetches for these request-URIs of `host`. */
  invalidate(host: string, urls: readonly string[]): void;
  /** Reports something the operator should know (rate-limited: tenants can trigger it at will). */
  warn(message: string): void;
}

/** One request's journey through the states. */
export interface RequestContext {
  readonly e: EngineParts;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  /** HEAD: delivered without a body (looked up and fetched as GET). */
  readonly isHead: boolean;
  host: string;
  /** Origin-form request target (`/path?query`). */
  url: string;
  /** Primary cache key: host + url. */
  key: string;
  /** Request Cache-Control (or `Pragma: no-cache`), null when the request has none. */
  cc: CacheControl | null;
  /** The request carries Authorization (RFC 9111 §3.5). */
  auth: boolean;
  /** It waited once for another thread's fetch of its key (shared storage). */
  waited: boolean;
}
