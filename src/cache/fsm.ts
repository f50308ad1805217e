// The request state machine, in the order a request lives through it (after Varnish's
// cache_req_fsm.c): recv → hash → lookup → hit | miss | pass → fetch → deliver. Each state is a
// function taking the request context; tenant hooks sit after recv and before deliver. The hard
// parts live elsewhere: policy.ts (freshness), storage.ts, vary.ts, coalesce.ts, fetch.ts,
// invalidation.ts, conditional.ts (conditionals and ranges), origin.ts.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EMPTY_CACHE_CONTROL, parseCacheControl } from './cache-control.ts';
import { BusyFetch } from './coalesce.ts';
import type { EngineParts, RecvDecision, RequestContext } from './context.ts';
import { deliverObject, DONE, followFetch, forwardInterim, synth, synthFromHook, writeHead } from './deliver.ts';
import { addForwarding, runFetch, type FetchSpec } from './fetch.ts';
import { pumpFill } from './fill.ts';
import { endToEndRequestHeaders, getHeader } from './headers.ts';
import { equalsLower, isFixedHopByHop, isFraming } from './hop-by-hop.ts';
import { isUnsafeMethod, unsafeInvalidationTargets } from './invalidation.ts';
import { forwardHead, type CacheObject } from './object.ts';
import type { RemoteFill } from './object-store.ts';
import { type BackendRequest, toOriginError } from './origin.ts';
import { classify, expired, usableOnError } from './policy.ts';
import { answerServerOptions, isServerOptions } from './server-options.ts';
import { varyMatches } from './vary.ts';

const LOOKUP: RecvDecision = { action: 'lookup' };
const PASS: RecvDecision = { action: 'pass' };
const PRAGMA_NO_CACHE = { ...EMPTY_CACHE_CONTROL, noCache: true as const };
/** Fields a pass never forwards as-is (Host and X-Forwarded-For are rebuilt). */
const DROP_ON_PASS = new Set(['host', 'x-forwarded-for', 'expect']);

/** Entry point: one request, start to finish. Resolves when the response is complete or abandoned. */
export function handleRequest(e: EngineParts, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // About this server, not a resource: answered here, never looked up or forwarded.
  if (isServerOptions(req)) {
    answerServerOptions(req, res);
    return DONE;
  }
  const ctx = recv(e, req, res);
  const builtin: RecvDecision = ctx.method === 'GET' || ctx.method === 'HEAD' ? LOOKUP : PASS;
  const hook = e.hooks?.recv;
  if (hook === undefined) return route(ctx, builtin);
  const d = hook({ method: ctx.method, url: ctx.url, host: ctx.host, headers: req.headers });
  if (d instanceof Promise) return d.then((v) => route(ctx, v ?? builtin), () => synth(ctx, 500, 'recv hook failed', 'SYNTH'));
  return route(ctx, d ?? builtin);
}

/** recv: normalise the request and read the directives the rest of the journey depends on. */
function recv(e: EngineParts, req: IncomingMessage, res: ServerResponse): RequestContext {
  const method = req.method ?? 'GET';
  const h = req.headers;
  let url = req.url ?? '/';
  let host = h.host ?? '';
  if (url.charCodeAt(0) !== 47 /* '/' */ && url !== '*') {
    // absolute-form target (RFC 9112 §3.2.2): its authority replaces Host.
    try {
      const u = new URL(url);
      host = u.host;
      url = u.pathname + u.search;
    } catch {
      // Left as is: the origin will reject it.
    }
  }
  const ccHeader = h['cache-control'];
  const cc = ccHeader !== undefined ? parseCacheControl(ccHeader) : h.pragma !== undefined && /no-cache/i.test(h.pragma) ? PRAGMA_NO_CACHE : null;
  return { e, req, res, method, isHead: method === 'HEAD', host: host.toLowerCase(), url, key: '', cc, auth: h.authorization !== undefined, waited: false };
}

/** Dispatches recv's decision. Only GET and HEAD can be looked up, whatever a hook says. */
function route(ctx: RequestContext, d: RecvDecision): Promise<void> {
  if (d.action === 'synth') return synthFromHook(ctx, d.status, d.headers, d.body);
  if (d.url !== undefined) ctx.url = d.url;
  if (d.setHeaders !== undefined) {
    const h = ctx.req.headers;
    for (const [name, value] of d.setHeaders) {
      // Routing, framing and connection fields are not the hook's to set: only end-to-end ones.
      if (equalsLower(name, 'host') || isFraming(name) || isFixedHopByHop(name)) continue;
      const lower = name.toLowerCase();
      if (value === '') delete h[lower];
      else h[lower] = value;
    }
  }
  if (d.action === 'pass' || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return pass(ctx);
  hash(ctx);
  return lookup(ctx);
}

/** hash: the primary key. Method is not part of it: HEAD is answered from the GET object. */
function hash(ctx: RequestContext): void {
  ctx.key = ctx.host + ctx.url;
}

/** lookup: find the variant for this request and decide hit, grace hit, miss or pass. */
function lookup(ctx: RequestContext): Promise<void> {
  const { e } = ctx;
  const now = e.now();
  let stale: CacheObject | null = null;
  const obj = findVariant(ctx, now);
  if (obj !== null && !(ctx.auth && !obj.authOk)) {
    switch (classify(obj.life, now, ctx.cc)) {
      case 'fresh': return hit(ctx, obj, 'HIT');
      case 'stale': return hit(ctx, obj, 'STALE');
      case 'grace':
        // One background fetch refreshes it; everyone meanwhile gets the stale copy.
        if (e.backend.healthy && e.coalescer.get(ctx.key) === undefined) backgroundFetch(ctx, obj);
        return hit(ctx, obj, 'STALE');
      case 'validate':
        stale = obj;
        break;
    }
  }
  if (ctx.cc?.onlyIfCached === true) return synth(ctx, 504, 'not cached (only-if-cached)', 'MISS');
  if (stale !== null && !e.backend.healthy && usableOnError(stale.life, now)) return hit(ctx, stale, 'STALE');
  // Another user's credentials must never share a fetch (RFC 9111 §3.5): fetch alone.
  if (ctx.auth) return miss(ctx, stale, false);
  if (ctx.cc?.noStore === true) return pass(ctx);
  const busy = e.coalescer.get(ctx.key);
  if (busy !== undefined && busy.joinable) return join(ctx, busy);
  if (e.ns.isHitForMiss(ctx.key, now)) {
    e.counters.hitForMiss++;
    return miss(ctx, stale, false);
  }
  // Shared storage: one fetch per key across threads. Another thread writing the object into
  // it now: follow that. Another thread fetching it, its answer not known yet: wait for it once,
  // then look up again (a hit, or the object being written, usually).
  const fill = e.ns.filling?.(ctx.key) ?? null;
  if (fill !== null) {
    if (varyMatches(fill.obj.varyNames, fill.obj.varyValues, ctx.req.headers)) return followFill(ctx, fill);
    fill.close();
  }
  const claim = e.ns.claim?.(ctx.key);
  if (claim instanceof Promise && !ctx.waited) {
    ctx.waited = true;
    e.counters.coalesced++;
    return claim.then(() => lookup(ctx));
  }
  return miss(ctx, stale, true, claim === true);
}

/** The first stored variant matching the request, after dropping expired or banned ones. */
function findVariant(ctx: RequestContext, now: number): CacheObject | null {
  const { e } = ctx;
  const variants = e.ns.variants(ctx.key);
  if (variants === undefined) return null;
  // A copy: removing a variant may change the storage's list.
  for (const obj of variants.length === 1 ? variants : variants.slice()) {
    if (!varyMatches(obj.varyNames, obj.varyValues, ctx.req.headers)) continue;
    if (expired(obj.life, now) || (obj.banSeq < e.bans.seq && e.bans.bannedAtLookup(obj, ctx.req.headers))) {
      e.ns.remove(obj);
      continue;
    }
    return obj;
  }
  return null;
}

/** hit: deliver a stored object (fresh, or stale inside grace / max-stale / on origin failure). */
function hit(ctx: RequestContext, obj: CacheObject, label: 'HIT' | 'STALE'): Promise<void> {
  if (label === 'HIT') ctx.e.counters.hits++;
  else ctx.e.counters.staleHits++;
  return deliverObject(ctx, obj, label);
}

/** miss: start the fetch for this key (coalesced unless `shared` is false) and follow it. */
function miss(ctx: RequestContext, stale: CacheObject | null, shared: boolean, claimed = false): Promise<void> {
  const { e } = ctx;
  e.counters.misses++;
  const busy = shared ? e.coalescer.start(ctx.key, ctx.req.headers) : new BusyFetch(ctx.key, ctx.req.headers);
  busy.claimed = claimed;
  const done = follow(ctx, busy, true);
  void fetch(ctx, busy, stale, shared);
  return done;
}

/** A request follows the object another thread is writing into shared storage; this thread's next ones join it. */
function followFill(ctx: RequestContext, fill: RemoteFill): Promise<void> {
  ctx.e.counters.misses++;
  ctx.e.counters.coalesced++;
  const busy = ctx.e.coalescer.start(ctx.key, ctx.req.headers);
  const done = follow(ctx, busy, true);
  pumpFill(ctx.e, busy, fill);
  return done;
}

/** A request joins an in-flight fetch for its key and streams what it has and what follows. */
function join(ctx: RequestContext, busy: BusyFetch): Promise<void> {
  ctx.e.counters.misses++;
  ctx.e.counters.coalesced++;
  return follow(ctx, busy, false);
}

/** Refreshes an object in grace while clients keep getting the stale copy. */
function backgroundFetch(ctx: RequestContext, stale: CacheObject): void {
  // Another thread refreshing it already (shared storage) is as good.
  const claim = ctx.e.ns.claim?.(ctx.key);
  if (claim instanceof Promise) return;
  ctx.e.counters.backgroundFetches++;
  const busy = ctx.e.coalescer.start(ctx.key, ctx.req.headers);
  busy.claimed = claim === true;
  // Nobody waits on it: keep the stale copy if it fails, and the key from being joined meanwhile.
  busy.joinable = false;
  void fetch(ctx, busy, stale, true, false);
}

/** Subscribes the client to `busy`; resolves when its response is over. */
function follow(ctx: RequestContext, busy: BusyFetch, leader: boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    const listener = followFetch(ctx, busy, leader, {
      // Coalesced on an answer it may not share: this client fetches its own copy.
      refetch: () => { void miss(ctx, null, false).then(resolve); },
      settle: resolve,
    });
    busy.subscribe(listener);
  });
}

/** fetch: the backend side of a miss; see fetch.ts. */
function fetch(ctx: RequestContext, busy: BusyFetch, stale: CacheObject | null, registered: boolean, forClient = true): Promise<void> {
  const spec: FetchSpec = {
    key: ctx.key, host: ctx.host, url: ctx.url, headers: ctx.req.headers, auth: ctx.auth,
    noStore: ctx.cc?.noStore === true, clientIp: ctx.req.socket.remoteAddress, client: forClient ? ctx.req : undefined,
    onInterim: forClient ? (status, headers) => forwardInterim(ctx.req, ctx.res, status, headers) : undefined,
  };
  // A stale object in shared storage is held while the fetch may still deliver or refresh it.
  const lease = stale?.lease ?? null;
  if (lease === null) return runFetch(ctx.e, spec, busy, stale, registered);
  lease.hold();
  return runFetch(ctx.e, spec, busy, stale, registered).finally(() => lease.release());
}

/** pass: forward the request as is and stream the answer back; nothing is stored. */
function pass(ctx: RequestContext): Promise<void> {
  const { e, req, res } = ctx;
  e.counters.passes++;
  const headers = addForwarding(e, endToEndRequestHeaders(req.headers, DROP_ON_PASS), req.headers, req.socket.remoteAddress, null);
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  // The abort signal is made only if the backend asks for it (an origin does; a program does not):
  // an AbortController per request costs more than the rest of a small pass's bookkeeping.
  let abort: AbortController | undefined;
  const onClose = (): void => { if (!res.writableFinished) (abort ??= new AbortController()).abort(); };
  res.once('close', onClose);
  const request: BackendRequest = {
    method: ctx.method, path: ctx.url, headers, body: hasBody ? req : null, client: req,
    onInterim: (status, fields) => forwardInterim(req, res, status, fields),
    get signal() { return (abort ??= new AbortController()).signal; },
  };
  return e.backend.fetch(request).then(
    (resp) => {
      if (isUnsafeMethod(ctx.method) && resp.status >= 200 && resp.status < 400) {
        // RFC 9111 §4.4: a successful unsafe request makes stored copies of its targets stale.
        e.invalidate(ctx.host, unsafeInvalidationTargets(ctx.host, ctx.url, getHeader(resp.headers, 'location'), getHeader(resp.headers, 'content-location')));
      }
      const head = forwardHead(resp.headers, e.via);
      head.push('x-cache', 'PASS');
      return new Promise<void>((resolve) => {
        res.once('close', resolve);
        void writeHead(ctx, resp.status, head, 'PASS', () => {
          if (ctx.isHead || resp.buffered !== undefined) {
            resp.body.resume();
            res.end(ctx.isHead ? undefined : resp.buffered);
            return;
          }
          // pipe gives backpressure; a client that leaves stops the origin's body, and a broken
          // body cuts the client. (stream.pipeline would do the same but builds an AbortError
          // per response, which cost more than the rest of a small pass.)
          const body = resp.body;
          body.pipe(res);
          res.once('close', () => {
            if (!body.readableEnded) body.destroy();
          });
          body.once('error', () => res.destroy());
        });
      });
    },
    (err: unknown) => {
      if (abort?.signal.aborted === true) return DONE;
      e.counters.fetchErrors++;
      const oe = toOriginError(err);
      return synth(ctx, oe.status, oe.message, 'PASS');
    },
  );
}
