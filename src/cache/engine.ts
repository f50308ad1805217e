// The cache engine's public face: builds storage, origin client and bans from options, exposes the
// request handler the HTTP front calls, and the invalidation and statistics API an admin uses.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Coalescer } from './coalesce.ts';
import type { CacheHooks, CacheStats, Counters, EngineParts } from './context.ts';
import { fastHit, type FastResponse } from './fast.ts';
import { fastFetch, type RawRequest } from './fast-fetch.ts';
import { handleRequest } from './fsm.ts';
import { BanList, MAX_BANS } from './invalidation.ts';
import { Origin, type Backend, type OriginOptions } from './origin.ts';
import type { ObjectStorage, ObjectStore } from './object-store.ts';
import type { PolicyConfig } from './policy.ts';
import { Storage } from './storage.ts';

/** What a Cache fetches from, where it stores, its policy defaults; a backend or origin is required. */
export interface CacheOptions {
  /** Where misses go: a ready Backend, or options for an HTTP origin (then owned and closed by the cache). */
  backend?: Backend;
  origin?: string | OriginOptions;
  /**
   * Storage shared with other caches (multi-tenant; Storage on this thread's heap, SharedStorage
   * across threads); by default the cache makes its own of `memoryBytes`.
   */
  storage?: ObjectStorage;
  /** Byte budget of the cache's own storage (default 256 MiB). */
  memoryBytes?: number;
  /** Namespace in the storage (one per tenant) and its quota. */
  namespace?: string;
  namespaceMaxBytes?: number;
  /** Largest body stored; larger ones stream through uncached (default 16 MiB, capped by the budget). */
  maxObjectBytes?: number;
  /** Grace when the response has no stale-while-revalidate (default 10 s). */
  defaultGraceSec?: number;
  /** Keep for objects with a validator (default 60 s). */
  defaultKeepSec?: number;
  /** Cap of heuristic freshness (default 1 day). */
  heuristicCapSec?: number;
  /** How long an uncacheable answer sends a key's requests to the origin in parallel (default 120 s). */
  hitForMissSec?: number;
  /** Host header sent to the origin instead of the client's. */
  hostHeader?: string;
  /** Via token added both ways; false for none (default "1.1 tinyedge"). */
  via?: string | false;
  hooks?: CacheHooks;
  /** Clock in epoch ms (tests inject one). */
  now?: () => number;
  /**
   * Where the cache reports what an operator should know (a response not stored for carrying too
   * many surrogate keys, a ban list that overflowed); at most one message per 10 s, with a count
   * of the ones left out. Default: `process.emitWarning`.
   */
  warn?: (message: string) => void;
  /** Period of the ban lurker / expiry sweep (default 1000 ms; 0 disables the timer). */
  lurkerIntervalMs?: number;
}

const MiB = 1024 * 1024;
/** Least time between two warnings of one cache: a tenant can trigger them at will. */
const WARN_INTERVAL_MS = 10_000;

/**
 * An HTTP cache in front of one backend (an origin, or anything implementing Backend): `handle`
 * answers requests, `purge`, `purgeTag` and `ban` invalidate, `stats` counts, `close` stops it.
 */
export class Cache {
  /** The request handler for `http.createServer` or the front: `(req, res) => Promise<void>`. */
  readonly handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  readonly storage: ObjectStorage;
  readonly namespace: ObjectStore;
  readonly backend: Backend;
  private readonly parts: EngineParts;
  private readonly counters: Counters = {
    hits: 0, fastHits: 0, fastFetches: 0, misses: 0, passes: 0, staleHits: 0, coalesced: 0, revalidations: 0, hitForMiss: 0, fetchErrors: 0, backgroundFetches: 0,
    tagRefusals: 0,
  };
  private readonly coalescer = new Coalescer();
  private readonly bans = new BanList();
  private readonly ownsBackend: boolean;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(options: CacheOptions) {
    if (options.backend !== undefined) {
      this.backend = options.backend;
      this.ownsBackend = false;
    } else if (options.origin !== undefined) {
      this.backend = new Origin(typeof options.origin === 'string' ? { url: options.origin } : options.origin);
      this.ownsBackend = true;
    } else {
      throw new Error('Cache needs a backend or an origin');
    }
    this.storage = options.storage ?? new Storage({ maxBytes: options.memoryBytes ?? 256 * MiB });
    this.namespace = this.storage.namespace(options.namespace ?? 'default', { maxBytes: options.namespaceMaxBytes });
    const policy: PolicyConfig = {
      defaultGraceMs: (options.defaultGraceSec ?? 10) * 1000,
      defaultKeepMs: (options.defaultKeepSec ?? 60) * 1000,
      heuristicCapMs: (options.heuristicCapSec ?? 86400) * 1000,
    };
    const ns = this.namespace;
    const coalescer = this.coalescer;
    const now = options.now ?? Date.now;
    const report = options.warn ?? ((message: string) => process.emitWarning(message, 'TinyedgeCacheWarning'));
    let lastWarning = -Infinity;
    let leftOut = 0;
    this.parts = {
      ns, coalescer, bans: this.bans, backend: this.backend, policy,
      now,
      hooks: options.hooks ?? null,
      counters: this.counters,
      hitForMissMs: (options.hitForMissSec ?? 120) * 1000,
      maxObjectBytes: Math.min(options.maxObjectBytes ?? 16 * MiB, ns.maxBytes),
      via: options.via === false ? null : options.via ?? '1.1 tinyedge',
      hostHeader: options.hostHeader ?? null,
      invalidate(host: string, urls: readonly string[]) {
        for (const url of urls) {
          ns.removeKey(host + url);
          coalescer.invalidate(host + url);
        }
      },
      warn(message: string) {
        const t = now();
        if (t - lastWarning < WARN_INTERVAL_MS) { leftOut++; return; }
        lastWarning = t;
        report(leftOut === 0 ? `cache ${ns.name}: ${message}` : `cache ${ns.name}: ${message} (and ${leftOut} more warnings)`);
        leftOut = 0;
      },
    };
    const parts = this.parts;
    this.handle = (req, res) => handleRequest(parts, req, res);
    const every = options.lurkerIntervalMs ?? 1000;
    if (every > 0) {
      this.timer = setInterval(() => this.lurk(), every);
      // Housekeeping must never keep the process alive.
      this.timer.unref();
    }
  }

  /**
   * The bytes of a fresh hit for a plain GET/HEAD of `host` + `url` (no conditionals, ranges,
   * directives or credentials: the front checks that), or null to take the full path.
   */
  fastHit(host: string, url: string, isHead: boolean): FastResponse | null {
    return fastHit(this.parts, host, url, isHead);
  }

  /**
   * The raw path's answer to a request no stored object answers, when the backend answers it
   * whole (a program): a pass (`Cache-Control: no-store`) or the miss of a hit-for-miss key, made
   * later; null to take the full path (fast-fetch.ts). `client` identifies the request to the backend.
   */
  fastFetch(r: RawRequest, client: object): { label: 'MISS' | 'PASS'; answer: Promise<FastResponse> } | null {
    return fastFetch(this.parts, r, client);
  }

  /**
   * Everything the raw path answers for `r`: a fresh hit at once, a program's pass or miss later,
   * or null for the full path (a front's `fastPath`).
   */
  fastAnswer(r: RawRequest): FastResponse | Promise<FastResponse> | null {
    const hit = r.cacheControl === undefined ? fastHit(this.parts, r.host, r.url, r.method === 'HEAD') : null;
    return hit ?? fastFetch(this.parts, r, r)?.answer ?? null;
  }

  /**
   * Removes every variant of a URL. `target` is absolute (`http://host/path?q`) or origin-form
   * (`/path?q`, then under every host). Returns how many objects went.
   */
  purge(target: string): number {
    let n = 0;
    if (target.startsWith('/')) {
      for (const key of this.namespace.keys()) {
        const slash = key.indexOf('/');
        if (slash >= 0 && key.slice(slash) === target) n += this.dropKey(key);
      }
      return n;
    }
    const u = new URL(target);
    return this.dropKey(u.host.toLowerCase() + u.pathname + u.search);
  }

  /**
   * Adds a ban (`req.url ~ ^/img/ && obj.http.content-type ~ png`, see invalidation.ts). Objects
   * fetched before it are tested lazily at lookup and by the background lurker. Throws
   * BanSyntaxError on a bad expression.
   */
  ban(expression: string): void {
    const before = this.bans.bytes;
    const ban = this.bans.add(expression);
    this.namespace.account(this.bans.bytes - before);
    if (ban.conditions.length === 0) this.parts.warn(`${MAX_BANS} bans pending: every object older than this ban is dropped instead`);
    // In-flight fetches began before the ban: their objects carry the older ban position, so
    // lookups test them; nothing else to do here.
  }

  /** Removes every object whose Surrogate-Key lists `tag`; in-flight fetches with it are not stored. */
  purgeTag(tag: string): number {
    this.coalescer.invalidateWhere((b) => b.tags === null || b.tags.includes(tag));
    return this.namespace.removeTag(tag);
  }

  stats(): CacheStats {
    return {
      ...this.counters,
      objects: this.namespace.objects,
      bytes: this.namespace.bytes,
      evictions: this.storage.evictions,
      bans: this.bans.size,
      tags: this.namespace.tags,
    };
  }

  /** In-flight fetch for a request-URI (tests use it to see how many clients follow one fetch). */
  inFlight(host: string, url: string): { listeners: number; bytes: number } | undefined {
    const b = this.coalescer.get(host.toLowerCase() + url);
    return b === undefined ? undefined : { listeners: b.listenerCount, bytes: b.bytes };
  }

  /** One lurker pass: drops expired objects and objects banned by lurkable bans, prunes old bans. */
  lurk(): void {
    const oldest = this.namespace.sweep(this.parts.now(), this.bans.seq, this.bans.size === 0 ? null : (obj) => this.bans.bannedByLurker(obj));
    const bytes = this.bans.bytes;
    this.bans.prune(oldest);
    this.namespace.account(this.bans.bytes - bytes);
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (this.ownsBackend) await this.backend.close();
  }

  private dropKey(key: string): number {
    this.coalescer.invalidate(key);
    this.namespace.clearHitForMiss(key);
    return this.namespace.removeKey(key);
  }
}
