// The fetch side of a miss (Varnish's cache_fetch.c): ask the backend for the object, decide from
// the answer whether it may be stored, stream its body to everyone following the fetch, and
// insert the object only once the body is complete. Revalidation 304s refresh the stored object;
// failures fall back to a stale object inside grace / stale-if-error.
import type { IncomingHttpHeaders } from 'node:http';
import { parseCacheControl, policyHeaders } from './cache-control.ts';
import type { BusyFetch } from './coalesce.ts';
import type { EngineParts } from './context.ts';
import { endToEndRequestHeaders, getHeader, getJoined, withoutHeaders, type HeaderList } from './headers.ts';
import { buildHead, CacheObject, forwardHead, surrogateKeys, type ObjectInit } from './object.ts';
import type { FillWriter } from './object-store.ts';
import { toOriginError, type BackendRequest, type BackendResponse } from './origin.ts';
import { storeVerdict, usableOnError, withBackendPolicy, type ExchangeTimes, type Lifetime, type StoreVerdict } from './policy.ts';
import { varyNames, varyValues } from './vary.ts';

/** The request a fetch is made for (the leader's, for coalesced fetches). */
export interface FetchSpec {
  key: string;
  host: string;
  url: string;
  headers: IncomingHttpHeaders;
  auth: boolean;
  noStore: boolean;
  clientIp: string | undefined;
  /** The client request the fetch is for (its identity: see BackendRequest.client); undefined for a background refresh. */
  client: object | undefined;
  /** Forwards interim responses to that client (the fetch's leader only; nothing of them is stored). */
  onInterim?: BackendRequest['onInterim'];
}

/** Client fields never forwarded on a cache fill: we want the whole object, unconditionally. */
const DROP_ON_FILL = new Set(['host', 'range', 'if-range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'expect', 'content-length', 'x-forwarded-for']);
/** Statuses for which stale-if-error applies (RFC 5861 §4). */
const ERROR_STATUS = new Set([500, 502, 503, 504]);
const NO_BODY = Buffer.alloc(0);
/** Lifetime of an object built only to deliver a revalidated answer that may not be stored. */
const NOW_ONLY = (t: number): Lifetime => ({ t0: t, ttl: 0, grace: 0, keep: 0, errorWindow: 0, noStale: true, alwaysValidate: true });

/** Request headers for the origin: end-to-end client fields, Host, Via, X-Forwarded-For, validators. */
export function fillHeaders(e: EngineParts, spec: FetchSpec, stale: CacheObject | null): HeaderList {
  const out = endToEndRequestHeaders(spec.headers, DROP_ON_FILL);
  return addForwarding(e, out, spec.headers, spec.clientIp, stale);
}

/** Adds Host, Via, X-Forwarded-For and (for a revalidation) the stored validators. */
export function addForwarding(e: EngineParts, out: HeaderList, headers: { host?: string; 'x-forwarded-for'?: string | string[] }, clientIp: string | undefined, stale: CacheObject | null): HeaderList {
  const host = e.hostHeader ?? headers.host;
  if (host !== undefined) out.push('host', host);
  if (e.via !== null) out.push('via', e.via);
  if (clientIp !== undefined) {
    const prior = headers['x-forwarded-for'];
    out.push('x-forwarded-for', prior === undefined ? clientIp : `${Array.isArray(prior) ? prior.join(', ') : prior}, ${clientIp}`);
  }
  if (stale !== null) {
    if (stale.etag !== undefined) out.push('if-none-match', stale.etag);
    if (stale.lastModified !== undefined) out.push('if-modified-since', stale.lastModified);
  }
  return out;
}

/**
 * Runs one fill fetch and drives `busy`. `registered`: `busy` is the coalescer's entry for the key
 * (unregistered fetches serve hit-for-miss and Authorization requests alone). The steps, in
 * Varnish's order (cache_fetch.c's vbf_stp_*): start the fetch; a failed one serves stale or
 * fails; a 304 refreshes the stored object; an error status serves stale inside its window;
 * anything else is judged, its head delivered, and its body streamed (and stored whole).
 */
export async function runFetch(e: EngineParts, spec: FetchSpec, busy: BusyFetch, stale: CacheObject | null, registered: boolean): Promise<void> {
  const fill = new Fill(e, spec, busy, stale, registered);
  const requestTime = e.now();
  const banSeq = e.bans.seq;
  let resp: BackendResponse;
  try {
    resp = await e.backend.fetch({ method: 'GET', path: spec.url, headers: fillHeaders(e, spec, stale), body: null, client: spec.client, onInterim: spec.onInterim });
  } catch (err) {
    fill.failed(err);
    return;
  }
  const times = { requestTime, responseTime: e.now() };
  if (resp.status === 304 && stale !== null) fill.revalidated(resp, stale, times, banSeq);
  else if (ERROR_STATUS.has(resp.status) && stale !== null && usableOnError(stale.life, times.responseTime)) fill.staleOnErrorStatus(resp, stale);
  else fill.answered(resp, times, banSeq);
}

/** One fill fetch's steps and the state they share: the key's claim, its coalescer entry, the stale object. */
class Fill {
  constructor(
    private readonly e: EngineParts,
    private readonly spec: FetchSpec,
    private readonly busy: BusyFetch,
    private readonly stale: CacheObject | null,
    private readonly registered: boolean,
  ) {}

  /** The origin could not be reached or failed before a head: stale inside its error window, else the error. */
  failed(err: unknown): void {
    this.e.counters.fetchErrors++;
    this.finish();
    if (this.stale !== null && usableOnError(this.stale.life, this.e.now())) this.deliverStale(this.stale);
    else this.busy.emitError(toOriginError(err));
  }

  /** RFC 9111 §4.3.4: the stored object is still good; it takes the 304's header fields and freshness. */
  revalidated(resp: BackendResponse, stale: CacheObject, times: ExchangeTimes, banSeq: number): void {
    const { e, spec, busy } = this;
    resp.body.resume();
    const refreshedHeaders = policyHeaders(mergeForVerdict(stale.headers, resp.headers));
    const cc = parseCacheControl(getJoined(refreshedHeaders, 'cache-control'));
    const v = storeVerdict(stale.status, refreshedHeaders, cc, { authorization: spec.auth, noStore: spec.noStore }, times, e.policy);
    const names = varyNames(refreshedHeaders);
    const values = names === null ? [] : varyValues(names, spec.headers);
    const noCacheFields = Array.isArray(cc.noCache) ? cc.noCache : null;
    const obj = stale.refreshed(resp.headers, v.store ? v.life : NOW_ONLY(times.responseTime), banSeq, names, values, noCacheFields);
    if (v.store && obj.tagError !== null) refuseTags(e, spec.key, obj.tagError);
    if (v.store && obj.tagError === null && !busy.invalidated) e.ns.insert(obj, times.responseTime);
    else e.ns.remove(stale);
    e.counters.revalidations++;
    this.finish();
    busy.emitHead({ status: obj.status, head: obj.head, originHeaders: obj.head, shareable: true, varyNames: names, obj, objLabel: 'REVALIDATED' });
    busy.emitEnd();
  }

  /** A 5xx while a stale object may stand in for errors (RFC 5861 §4): the stale object, the 5xx's body unread. */
  staleOnErrorStatus(resp: BackendResponse, stale: CacheObject): void {
    resp.body.resume();
    this.e.counters.fetchErrors++;
    this.finish();
    this.deliverStale(stale);
  }

  /**
   * Any other answer: judged for storing, its head delivered to everyone following, its body
   * streamed to them and kept (in shared storage as it arrives, or whole at the end).
   */
  answered(resp: BackendResponse, times: ExchangeTimes, banSeq: number): void {
    const { e, spec, busy, stale } = this;
    const d = decideFill(e, spec, resp, times, banSeq);
    const { verdict, contentLength, init } = d;
    busy.tags = d.tags;
    if (verdict.store && d.tagError !== null) refuseTags(e, spec.key, d.tagError);
    busy.storing = verdict.store && d.tagError === null && !busy.invalidated && (contentLength === null || contentLength <= e.maxObjectBytes);
    if (!verdict.store) {
      markUncacheable(e, spec.key, verdict.reason, times.responseTime);
      if (stale !== null) e.ns.remove(stale);
    }
    if (!busy.storing) {
      // Nobody may join a stream whose start will not be kept; later requests go to the origin alone.
      busy.stopBuffering();
      this.finish();
      if (verdict.store) e.ns.markHitForMiss(spec.key, times.responseTime + e.hitForMissMs);
    }
    // Shared storage: the object is stored now, its body written as it arrives, so that other
    // shards stream it too instead of waiting for the whole of it (a grace refresh, which nobody
    // follows, is stored whole at the end).
    let writer: FillWriter | null = null;
    if (busy.storing && busy.joinable && init !== null && e.ns.reserve !== undefined) {
      writer = e.ns.reserve(new CacheObject({ ...init, body: NO_BODY }), contentLength, e.maxObjectBytes);
      if (writer !== null) this.releaseClaim();
    }
    busy.emitHead({
      status: resp.status,
      head: buildHead(d.stored, resp.status, contentLength, e.via),
      originHeaders: forwardHead(resp.headers, e.via),
      shareable: verdict.store,
      varyNames: d.varyNames,
      ageSec: init === null ? undefined : Math.floor((times.responseTime - init.life.t0) / 1000),
    });
    this.streamBody(resp.body, writer, init);
  }

  /** The body to everyone following, into `writer` as it comes (or kept whole for `init`'s object at the end). */
  private streamBody(body: BackendResponse['body'], writer: FillWriter | null, init: FillDecision['init']): void {
    const { e, spec, busy } = this;
    let cancelled = false;
    // Nobody on this thread wants the body any more. A body no longer kept that other shards still
    // follow (a ring, past its limit) keeps arriving for them: the fetch stops only when they have
    // gone too (the writer's next chunk finds nobody on the ring, below).
    const cancel = (): void => {
      if (writer !== null && writer.followed()) {
        // A client that left may have paused the body for its backpressure.
        body.resume();
        return;
      }
      cancelled = true;
      body.destroy();
    };
    busy.cancel = cancel;
    busy.pause = () => body.pause();
    busy.resume = () => body.resume();
    // Every client left before the head arrived and nothing is kept: stop reading now.
    if (busy.listenerCount === 0 && !busy.storing) cancel();
    let settled = false;
    body.on('data', (chunk: Buffer) => {
      if (writer !== null && !writer.write(chunk)) {
        // Gone (purged, evicted, a ring nobody follows) or longer than announced: stored whole at
        // the end, if at all.
        writer.abort();
        writer = null;
        // It streamed only for other shards, and they have left: as when the last client here left.
        if (busy.listenerCount === 0 && !busy.storing) {
          cancel();
          return;
        }
      }
      if (busy.storing && busy.bytes + chunk.length > e.maxObjectBytes) {
        // Too large after all (no or wrong Content-Length): stop keeping it, keep streaming it.
        busy.storing = false;
        busy.stopBuffering();
        this.finish();
        e.ns.markHitForMiss(spec.key, e.now() + e.hitForMissMs);
      }
      busy.emitData(chunk);
    });
    body.once('end', () => {
      settled = true;
      // A record written as the body arrived is completed, even when a purge came meanwhile: the
      // store then drops it (the purge holds), and other shards' clients following it get it whole.
      if (writer !== null) writer.complete();
      else if (busy.storing && !busy.invalidated && init !== null && busy.chunks !== null) {
        const obj = new CacheObject({ ...init, body: busy.chunks.length === 1 ? (busy.chunks[0] as Buffer) : Buffer.concat(busy.chunks, busy.bytes) });
        e.ns.insert(obj, e.now());
      }
      writer?.abort();
      busy.storing = false;
      this.finish();
      busy.emitEnd();
    });
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      // A broken body never becomes an object; clients already streaming see a truncated response.
      busy.storing = false;
      writer?.abort();
      if (!cancelled) e.counters.fetchErrors++;
      this.finish();
      busy.emitError(toOriginError(err));
    };
    body.once('error', fail);
    body.once('close', () => fail(new Error('origin body aborted')));
  }

  /** The stored object in place of the origin's answer, labelled STALE. */
  private deliverStale(stale: CacheObject): void {
    this.busy.emitHead({ status: stale.status, head: stale.head, originHeaders: stale.head, shareable: true, varyNames: stale.varyNames, obj: stale, objLabel: 'STALE' });
    this.busy.emitEnd();
  }

  /** Lets other threads waiting on the key look it up again: stored or being written, or theirs to fetch. */
  private releaseClaim(): void {
    if (!this.busy.claimed) return;
    this.busy.claimed = false;
    this.e.ns.release?.(this.spec.key);
  }

  /** The fetch no longer decides the key: the coalescer lets later requests go their own way. */
  private finish(): void {
    if (this.registered) this.e.coalescer.finish(this.busy);
    this.releaseClaim();
  }
}

/** What a fill's answer means for the cache: whether it may be stored, and the object it would make. */
export interface FillDecision {
  verdict: StoreVerdict;
  /** The answer's Content-Length, when it has a valid one. */
  contentLength: number | null;
  varyNames: readonly string[] | null;
  /** The fields an object of it keeps (end-to-end, without Age, Content-Length and private ones). */
  stored: HeaderList;
  tags: readonly string[];
  /** Why its surrogate keys may not be stored, or null. */
  tagError: string | null;
  /** The object it makes without its body, when the verdict stores it. */
  init: Omit<ObjectInit, 'body'> | null;
}

/**
 * Judges a fill's answer (RFC 9111 §3, with the backend's own policy over the headers') for the
 * request `spec`, answered at `times`, begun at ban position `banSeq`.
 */
export function decideFill(e: EngineParts, spec: Pick<FetchSpec, 'key' | 'host' | 'url' | 'headers' | 'auth' | 'noStore'>, resp: BackendResponse, times: ExchangeTimes, banSeq: number): FillDecision {
  const facts = { authorization: spec.auth, noStore: spec.noStore };
  // Targeted fields (CDN-Cache-Control) decide for the cache in place of Cache-Control and Expires.
  const forPolicy = policyHeaders(resp.headers);
  const cc = parseCacheControl(getJoined(forPolicy, 'cache-control'));
  const verdict = resp.status === 304 ? { store: false as const, reason: 'unsolicited 304' } : withBackendPolicy(storeVerdict(resp.status, forPolicy, cc, facts, times, e.policy), resp.policy, resp.status, resp.headers, facts, times, e.policy);
  const clHeader = getHeader(resp.headers, 'content-length');
  const contentLength = clHeader !== undefined && /^\d+$/.test(clHeader) ? Number(clHeader) : null;
  const names = varyNames(resp.headers);
  // Private field names (private="x") are not stored by a shared cache (RFC 9111 §5.2.2.7).
  const stored = withoutHeaders(resp.headers, new Set(['age', 'content-length', ...(Array.isArray(cc.private) ? cc.private : [])]));
  const keys = surrogateKeys(stored);
  const init = !verdict.store ? null : {
    key: spec.key, host: spec.host, url: spec.url, status: resp.status, headers: stored, life: verdict.life,
    noCacheFields: Array.isArray(cc.noCache) ? cc.noCache : null,
    varyNames: names, varyValues: names === null ? [] : varyValues(names, spec.headers),
    authOk: cc.public || cc.sMaxage !== undefined || cc.mustRevalidate, banSeq, via: e.via,
  };
  return { verdict, contentLength, varyNames: names, stored, tags: keys.tags, tagError: keys.error, init };
}

/** An answer that may not be stored: the key's next requests go to the backend alone for a while. */
export function markUncacheable(e: EngineParts, key: string, reason: string, at: number): void {
  // Reasons tied to this request say nothing about the URL: no hit-for-miss for them.
  if (reason !== 'request no-store' && reason !== 'authorization') e.ns.markHitForMiss(key, at + e.hitForMissMs);
}

/** A storable answer that carries too many surrogate keys: delivered, not stored, and said so. */
export function refuseTags(e: EngineParts, key: string, why: string): void {
  e.counters.tagRefusals++;
  e.warn(`not cached: ${key.length > 200 ? `${key.slice(0, 200)}…` : key}: ${why}`);
}

/** Stored headers updated by a 304, with the 304's Age kept for the age calculation. */
function mergeForVerdict(stored: HeaderList, notModified: HeaderList): HeaderList {
  const replaced = new Set<string>();
  for (let i = 0; i < notModified.length; i += 2) if (notModified[i] !== 'content-length') replaced.add(notModified[i] as string);
  const out = withoutHeaders(stored, replaced);
  for (let i = 0; i < notModified.length; i += 2) if (replaced.has(notModified[i] as string)) out.push(notModified[i] as string, notModified[i + 1] as string);
  return out;
}
