// The sandbox's public types: what a request handed to a tenant program looks like, what comes
// back, and the limits a program runs under.

/** An HTTP request as a program gets it. */
export interface SandboxRequest {
  method: string;
  /** Path and query as received, e.g. `/api/items?id=3`. */
  url: string;
  headers: ReadonlyArray<readonly [string, string]>;
  body: Uint8Array;
  /** For CGI's REMOTE_ADDR / SERVER_NAME / SERVER_PORT; optional. */
  remoteAddress?: string;
  serverName?: string;
  serverPort?: number;
}

/** How the program asked the cache to treat its response (SDK mode). */
export interface CachePolicy {
  /** Seconds; undefined leaves the decision to the cache's own policy. */
  ttl?: number;
  grace?: number;
  keep?: number;
  tags: string[];
  uncacheable: boolean;
}

/** A program's answer to a request, with what it logged and what the call cost. */
export interface SandboxResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
  cache: CachePolicy;
  /** Lines the program logged (te_log, or stderr) during the request. */
  logs: string[];
  /** The reset's cost is known only when the call reset the instance before returning. */
  timing: { callUs: number; resetUs?: number; dirtyPages?: number };
}

/**
 * `sdk`: built with the tinyedge SDK, initialised once and called per request; `cgi`: any program
 * speaking CGI/1.1, run from its entry point for each request.
 */
export type ProgramMode = 'sdk' | 'cgi';

/**
 * `ephemeral`: an instance goes back to the program's snapshot after every request (nothing a
 * request does reaches the next). `persistent`: an instance keeps its memory and state from one
 * request of this program to the next, and is reset only after a fault or a timeout, after
 * `resetAfterRequests` requests, above `resetAboveDirtyBytes` of dirtied memory, or when the
 * program asks (te_reset_after()). SDK programs only.
 */
export type Lifecycle = 'ephemeral' | 'persistent';

/** Most warm-up requests a program may ask for before its snapshot. */
export const MAX_WARMUP_REQUESTS = 10_000;

/**
 * Synthetic requests an SDK program answers after its main() reaches the wait and before its
 * snapshot is taken, so what they warm (caches, tables, a JIT) is in every instance. They carry
 * TE_REQUEST_WARMUP and TE_REQUEST_PRESNAPSHOT; host calls answer -ENOSYS, as during main().
 */
export interface WarmupOptions {
  /** How many, 1 to MAX_WARMUP_REQUESTS. */
  requests: number;
  /** Path and query of each GET; default `/`. */
  path?: string;
  /** The phase they are made in (a hook program's); default generate. */
  phase?: 'generate' | 'recv' | 'deliver';
}


/** How to load a program, and the limits each of its requests runs under. */
export interface ProgramOptions {
  mode: ProgramMode;
  /** Guest memory in MiB (even). Default 64. */
  memoryMiB?: number;
  /** Wall-clock limit per request, ms. Default 1000. */
  timeoutMs?: number;
  /** Wall-clock limit for initialisation (main() up to wait_for_requests()), ms. Default 10000. */
  initTimeoutMs?: number;
  /** Largest response (body plus header bytes). Default 8 MiB. */
  maxResponseBytes?: number;
  /** Largest request (URL, headers and body, as laid out for the guest). Default 1 MiB. */
  maxRequestBytes?: number;
  /** Name the program sees as argv[0] (and CGI's SCRIPT_NAME basis). */
  name?: string;
  /** Environment for initialisation (SDK) or added to every request's (CGI). */
  env?: string[];
  /** Host directories whose files the program may open, read-only. */
  allowRead?: readonly string[];
  /**
   * Let the program map executable memory beyond its own code, as JIT compilers do. Without it,
   * mmap or mprotect asking for PROT_EXEC on anything but the program's own segments is EACCES.
   */
  executableMemory?: boolean;
  /** Reset after every request (default) or keep state between requests (SDK only). */
  lifecycle?: Lifecycle;
  /** persistent: reset after this many requests since the last reset. Default: no bound. */
  resetAfterRequests?: number;
  /** persistent: reset once the memory dirtied since the last reset exceeds this. Default: no bound. */
  resetAboveDirtyBytes?: number;
  /** Requests answered before the snapshot (SDK only, both lifecycles). Default: none. */
  warmup?: WarmupOptions;
  /**
   * persistent, ABI version 2: the state the previous version of this program gave up
   * (te_on_live_update), handed to this one before its snapshot (te_on_live_restore).
   */
  liveRestore?: Uint8Array;
}

/** The limits a program gets for the ProgramOptions left out. */
export const PROGRAM_DEFAULTS = {
  memoryMiB: 64,
  timeoutMs: 1000,
  initTimeoutMs: 10_000,
  maxResponseBytes: 8 * 1024 * 1024,
  maxRequestBytes: 1024 * 1024,
  executableMemory: false,
  lifecycle: 'ephemeral',
  resetAfterRequests: Infinity,
  resetAboveDirtyBytes: Infinity,
} as const;

/** What a key-value increment did: the key's new value, or why the store left it as it was. */
export type KvIncrementResult = { value: bigint } | { refused: 'not-integer' | 'overflow' | 'quota' };

/** What a key-value compare-and-set did: stored, found another value (or presence), or over the quota. */
export type KvSwapResult = 'swapped' | 'differs' | 'quota';
