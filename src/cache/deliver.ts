// The deliver side of a request: writing a stored object (with Age, X-Cache, client conditionals
// and byte ranges), following a streaming fetch as one of its listeners, and synthetic answers.
// Every write goes through `writeHead`, which runs the tenant's deliver hook when there is one.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BusyFetch, FetchHead, FetchListener } from './coalesce.ts';
import { evaluatePreconditions, evaluateRange, hasPreconditions } from './conditional.ts';
import type { HookRequest, HookResponse, RequestContext } from './context.ts';
import { getHeader, parseHttpDate, type HeaderList } from './headers.ts';
import { endToEndList } from './hop-by-hop.ts';
import { notModifiedHead, type CacheObject } from './object.ts';
import { sameVariant, varyMatches } from './vary.ts';

export const DONE: Promise<void> = Promise.resolve();

function hookRequest(ctx: RequestContext): HookRequest {
  return { method: ctx.method, url: ctx.url, host: ctx.host, headers: ctx.req.headers };
}

/**
 * Writes the status line and headers, after the deliver hook (if any) had its say. Calls `then`
 * once the head is written; returns a promise only when the hook was asynchronous.
 */
export function writeHead(ctx: RequestContext, status: number, headers: HeaderList, label: string, then: () => void): Promise<void> {
  const hook = ctx.e.hooks?.deliver;
  if (hook === undefined) {
    ctx.res.writeHead(status, headers);
    then();
    return DONE;
  }
  const resp: HookResponse = { status, headers, cache: label };
  const go = (): void => {
    if (ctx.res.destroyed) return;
    ctx.res.writeHead(resp.status, resp.headers);
    then();
  };
  const r = hook(hookRequest(ctx), resp);
  if (r instanceof Promise) return r.then(go, () => synth(ctx, 500, 'deliver hook failed', 'SYNTH'));
  go();
  return DONE;
}

/** Keeps a body in shared storage from being reused until the response is over ('close' follows the last write). */
function holdBody(obj: CacheObject, res: ServerResponse): void {
  const lease = obj.lease;
  if (lease === null) return;
  lease.hold();
  res.once('close', () => lease.release());
}

/** Answers from a stored object. `validated`: the object was just confirmed by the origin. */
export function deliverObject(ctx: RequestContext, obj: CacheObject, label: string, validated = false): Promise<void> {
  const { e, req, res } = ctx;
  const now = e.now();
  if (!obj.removed) e.ns.touch(obj, now);
  const age = String(Math.floor(Math.max(0, now - obj.life.t0) / 1000));
  const h = req.headers;
  if (obj.status >= 200 && obj.status < 300 && hasPreconditions(h)) {
    const r = evaluatePreconditions(h, obj);
    if (r === 'not-modified') {
      const nm = obj.notModifiedHead.slice();
      nm.push('age', age, 'x-cache', label);
      return writeHead(ctx, 304, nm, label, () => res.end());
    }
    if (r === 'failed') return synth(ctx, 412, 'precondition failed', label);
  }
  const head = validated ? obj.head : obj.hitHead;
  if (h.range !== undefined && obj.status === 200 && !ctx.isHead) {
    const len = obj.body.length;
    const r = evaluateRange(h, len, obj);
    if (r.kind === 'partial') {
      const out: HeaderList = [];
      for (let i = 0; i < head.length; i += 2) if (head[i] !== 'content-length') out.push(head[i] as string, head[i + 1] as string);
      out.push('content-range', `bytes ${r.start}-${r.end}/${len}`, 'content-length', String(r.end - r.start + 1), 'age', age, 'x-cache', label);
      holdBody(obj, res);
      return writeHead(ctx, 206, out, label, () => res.end(obj.body.subarray(r.start, r.end + 1)));
    }
    if (r.kind === 'unsatisfiable') {
      return writeHead(ctx, 416, ['content-range', `bytes */${len}`, 'content-length', '0', 'age', age, 'x-cache', label], label, () => res.end());
    }
  }
  const out = head.slice();
  out.push('age', age, 'x-cache', label);
  if (!ctx.isHead) holdBody(obj, res);
  return writeHead(ctx, obj.status, out, label, ctx.isHead ? () => res.end() : () => res.end(obj.body));
}

/** A short plain-text answer made by the cache itself (errors, only-if-cached, hook synth). */
export function synth(ctx: RequestContext, status: number, text: string, label: string, extra?: Record<string, string>): Promise<void> {
  const { res } = ctx;
  if (res.headersSent) {
    res.destroy();
    return DONE;
  }
  const body = Buffer.from(`${text}\n`);
  const headers: HeaderList = ['content-type', 'text/plain; charset=utf-8', 'cache-control', 'no-store'];
  if (extra !== undefined) for (const [k, v] of Object.entries(extra)) headers.push(k.toLowerCase(), v);
  headers.push('content-length', String(body.length), 'x-cache', label);
  res.writeHead(status, headers);
  res.end(ctx.isHead ? undefined : body);
  return DONE;
}

/** A response a recv hook made itself: its status, headers and body, as given (never cached). */
export function synthFromHook(ctx: RequestContext, status: number, headers: Record<string, string> = {}, body: string | Buffer = ''): Promise<void> {
  const { res } = ctx;
  if (res.headersSent) {
    res.destroy();
    return DONE;
  }
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  // The hook's own fields, end to end only; the framing is the body we write.
  const list: HeaderList = endToEndList(Object.entries(headers).flat(), true);
  list.push('content-length', String(buf.length), 'x-cache', 'SYNTH');
  res.writeHead(status, list);
  res.end(ctx.isHead ? undefined : buf);
  return DONE;
}

/** What a streaming listener needs from the state machine. */
export interface StreamHooks {
  /** The fetch cannot serve this client (uncacheable, or another variant): fetch on its own. */
  refetch(): void;
  /** The client's response ended one way or another. */
  settle(): void;
}

/**
 * A client following a fetch. The leader (the request that started it) takes any answer; a waiter
 * only a shareable one for its own variant, otherwise it refetches (RFC 9111 forbids handing one
 * client's uncacheable response to another).
 */
export function followFetch(ctx: RequestContext, busy: BusyFetch, leader: boolean, hooks: StreamHooks): FetchListener {
  const { res } = ctx;
  /** waiting → streaming (body flows) or finished (head-only answer written; ignore the body). */
  let state: 'waiting' | 'streaming' | 'finished' = 'waiting';
  /** Chunks that arrive while an async deliver hook runs. */
  let held: Buffer[] | null = null;
  const listener: FetchListener = {
    head(h: FetchHead) {
      if (h.obj !== undefined) {
        // A refreshed or stale object is one variant: a waiter asking for another fetches its own.
        if (!leader && !varyMatches(h.obj.varyNames, h.obj.varyValues, ctx.req.headers)) {
          state = 'finished';
          busy.unsubscribe(listener);
          hooks.refetch();
          return;
        }
        state = 'finished';
        void deliverObject(ctx, h.obj, h.objLabel ?? 'MISS', h.objLabel === 'REVALIDATED').finally(hooks.settle);
        return;
      }
      if (!leader && (!h.shareable || !sameVariant(h.varyNames, busy.leaderHeaders, ctx.req.headers))) {
        state = 'finished';
        busy.unsubscribe(listener);
        hooks.refetch();
        return;
      }
      const label = 'MISS';
      if (h.shareable && h.status >= 200 && h.status < 300 && hasPreconditions(ctx.req.headers)) {
        const r = evaluatePreconditions(ctx.req.headers, { etag: getHeader(h.head, 'etag'), lastModifiedMs: parseHttpDate(getHeader(h.head, 'last-modified')) });
        if (r !== 'ok') {
          state = 'finished';
          if (r === 'failed') { void synth(ctx, 412, 'precondition failed', label); hooks.settle(); return; }
          const nm = notModifiedHead(h.head);
          if (h.ageSec !== undefined) nm.push('age', String(h.ageSec));
          nm.push('x-cache', label);
          void writeHead(ctx, 304, nm, label, () => res.end()).finally(hooks.settle);
          return;
        }
      }
      const headers = h.shareable ? h.head.slice() : h.originHeaders.slice();
      if (h.ageSec !== undefined) headers.push('age', String(h.ageSec));
      headers.push('x-cache', label);
      if (ctx.isHead) {
        state = 'finished';
        void writeHead(ctx, h.status, headers, label, () => res.end()).finally(hooks.settle);
        return;
      }
      held = [];
      void writeHead(ctx, h.status, headers, label, () => {
        state = 'streaming';
        const q = held ?? [];
        held = null;
        for (const c of q) res.write(c);
        if (busy.done) { res.end(); hooks.settle(); }
      });
    },
    data(chunk: Buffer) {
      if (state === 'streaming') {
        // Backpressure only where it is safe: one client and nothing stored waits on it.
        if (!res.write(chunk) && !busy.storing && busy.listenerCount === 1 && busy.pause !== null) {
          busy.pause();
          res.once('drain', () => busy.resume?.());
        }
      } else if (held !== null) held.push(chunk);
    },
    end() {
      if (state === 'streaming') { res.end(); hooks.settle(); } else if (state === 'waiting' && held === null) hooks.settle();
    },
    error(err: Error) {
      if (state === 'finished') return;
      state = 'finished';
      const status = (err as { status?: number }).status ?? 502;
      void synth(ctx, status, err.message, 'MISS');
      hooks.settle();
    },
  };
  res.once('close', () => {
    busy.unsubscribe(listener);
    hooks.settle();
  });
  return listener;
}

/**
 * Writes a backend's 102 or 103 to the client ahead of the final answer (RFC 9110 §15.2; 103 per
 * RFC 8297). Never to an HTTP/1.0 client, never once the final head is out; a 103 without a `Link`
 * Node does not send (it hints at nothing). Interim answers are never stored.
 */
export function forwardInterim(req: IncomingMessage, res: ServerResponse, status: 102 | 103, headers: HeaderList): void {
  if (res.headersSent || res.writableEnded || (req.httpVersionMajor === 1 && req.httpVersionMinor === 0)) return;
  if (status === 102) {
    res.writeProcessing();
    return;
  }
  const hints: Record<string, string | string[]> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const prior = hints[name];
    hints[name] = prior === undefined ? headers[i + 1]! : [...(Array.isArray(prior) ? prior : [prior]), headers[i + 1]!];
  }
  try {
    res.writeEarlyHints(hints);
  } catch {
    // A Link value Node refuses to write (it validates it) is not forwarded; the final answer still is.
  }
}
