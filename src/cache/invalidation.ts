// Invalidation beyond purge-by-key: Varnish-style bans (expressions tested lazily at lookup against
// objects older than the ban, and by a background lurker for the conditions it can evaluate
// without a request), plus the RFC 9111 §4.4 targets a successful unsafe request invalidates.
import type { IncomingHttpHeaders } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { getJoined } from './headers.ts';
import type { CacheObject } from './object.ts';

// A ban's regular expression runs on the thread that serves every tenant, so one tenant's
// catastrophic pattern (`(a+)+$`) must not stall the others: V8 switches a match that backtracks
// excessively to its linear-time engine, which has no backreferences or lookaround — so bans refuse
// those constructs instead of letting them backtrack without bound.
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
const BACKTRACKING_ONLY = /\\[1-9]|\\k<|\(\?<?[=!]/;

type Subject = { kind: 'req.url' } | { kind: 'req.http'; name: string } | { kind: 'obj.http'; name: string } | { kind: 'obj.status' };
type Op = '~' | '!~' | '==' | '!=';
interface Condition { subject: Subject; op: Op; value: string; re: RegExp | null }

export interface Ban {
  readonly seq: number;
  readonly expression: string;
  readonly conditions: readonly Condition[];
  /** The lurker can evaluate it from the object alone (no req.http other than Host). */
  readonly lurkable: boolean;
}

/** A ban expression that does not parse; the message says where. */
export class BanSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BanSyntaxError';
  }
}

/** Longest ban expression accepted (bytes); a longer one is a BanSyntaxError. */
export const MAX_BAN_EXPRESSION_BYTES = 4096;
/**
 * Most bans a namespace keeps pending (not yet tested against every older object). One more
 * replaces them all with a single ban of every object older than it: more invalidation than was
 * asked for, never less, and nothing left to keep.
 */
export const MAX_BANS = 1024;
// Heap cost of a pending ban, charged to the namespace's quota; measured on Node 20 (x64) by
// bench/cache-memory.ts over bans with one regular-expression condition, each tested once.
/** A ban beyond its characters: the Ban, its conditions, a RegExp. Measured: 540 bytes. */
const BAN_BYTES = 600;
/**
 * Per character of a ban's expression: the expression, the condition's value and the compiled
 * regular expression. Measured: 12 to 14 bytes per character.
 */
const BAN_CHAR_BYTES = 16;

const CONDITION = /^\s*(req\.url|req\.http\.[A-Za-z0-9!#$%&'*+.^_`|~-]+|obj\.http\.[A-Za-z0-9!#$%&'*+.^_`|~-]+|obj\.status)\s*(~|!~|==|!=)\s*(?:"((?:[^"\\]|\\.)*)"|(\S+))\s*$/;

/**
 * Parses `cond && cond …` where cond is `SUBJECT OP VALUE`: subjects req.url, req.http.NAME,
 * obj.http.NAME, obj.status; operators ~ !~ (regex) == != (exact); VALUE bare or "quoted".
 */
function parseBan(expression: string, seq: number): Ban {
  if (expression.length > MAX_BAN_EXPRESSION_BYTES) throw new BanSyntaxError(`ban expression of ${expression.length} bytes (at most ${MAX_BAN_EXPRESSION_BYTES})`);
  const parts = expression.split('&&');
  const conditions: Condition[] = [];
  let lurkable = true;
  for (const p of parts) {
    const m = CONDITION.exec(p);
    if (m === null) throw new BanSyntaxError(`cannot parse ban condition "${p.trim()}": expected SUBJECT (req.url, req.http.NAME, obj.http.NAME, obj.status) OP (~ !~ == !=) VALUE`);
    const lhs = m[1] as string;
    const op = m[2] as Op;
    const value = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : (m[4] as string);
    let subject: Subject;
    if (lhs === 'req.url') subject = { kind: 'req.url' };
    else if (lhs === 'obj.status') subject = { kind: 'obj.status' };
    else if (lhs.startsWith('req.http.')) subject = { kind: 'req.http', name: lhs.slice(9).toLowerCase() };
    else subject = { kind: 'obj.http', name: lhs.slice(9).toLowerCase() };
    if (subject.kind === 'req.http' && subject.name !== 'host') lurkable = false;
    let re: RegExp | null = null;
    if (op === '~' || op === '!~') {
      if (BACKTRACKING_ONLY.test(value)) throw new BanSyntaxError('ban regular expressions may not use backreferences or lookaround (they could take exponential time)');
      try {
        re = new RegExp(value);
      } catch (err) {
        throw new BanSyntaxError(`invalid regular expression in ban: ${(err as Error).message}`);
      }
    }
    conditions.push({ subject, op, value, re });
  }
  return { seq, expression, conditions, lurkable };
}

function subjectValue(s: Subject, obj: CacheObject, req: IncomingHttpHeaders | null): string | undefined {
  switch (s.kind) {
    case 'req.url': return obj.url;
    case 'obj.status': return String(obj.status);
    case 'obj.http': return getJoined(obj.headers, s.name);
    case 'req.http': {
      if (s.name === 'host') return obj.host;
      const v = req?.[s.name];
      return Array.isArray(v) ? v.join(', ') : v;
    }
  }
}

/** True when every condition holds for `obj` (looked up by a request with headers `req`). */
function banMatches(ban: Ban, obj: CacheObject, req: IncomingHttpHeaders | null): boolean {
  for (const c of ban.conditions) {
    const v = subjectValue(c.subject, obj, req);
    let hit: boolean;
    if (c.re !== null) hit = v !== undefined && c.re.test(v);
    else hit = v === c.value;
    if (c.op === '!~' || c.op === '!=') hit = !hit;
    if (!hit) return false;
  }
  return true;
}

const banBytes = (ban: Ban): number => BAN_BYTES + BAN_CHAR_BYTES * ban.expression.length;

/** The bans of one namespace, newest last. */
export class BanList {
  private bans: Ban[] = [];
  /** Sequence of the newest ban; objects remember the value at their fetch. */
  seq = 0;
  /** Heap bytes the pending bans cost (charged to the namespace by the engine). */
  bytes = 0;

  /**
   * Adds a ban (throws BanSyntaxError). With MAX_BANS pending, they and this one become one ban
   * of everything older: the returned ban then has no conditions.
   */
  add(expression: string): Ban {
    let ban = parseBan(expression, this.seq + 1);
    if (this.bans.length >= MAX_BANS) {
      ban = { seq: ban.seq, expression: '(every object older than this ban: too many bans)', conditions: [], lurkable: true };
      this.bans = [];
      this.bytes = 0;
    }
    this.seq = ban.seq;
    this.bans.push(ban);
    this.bytes += banBytes(ban);
    return ban;
  }

  get size(): number {
    return this.bans.length;
  }

  /**
   * Lookup-time test: is `obj` banned by a ban newer than it? If not, the object is marked as
   * checked up to now so the next lookup skips these bans (Varnish semantics: a req.http ban only
   * hits objects a matching request looks up before a non-matching one does).
   */
  bannedAtLookup(obj: CacheObject, req: IncomingHttpHeaders): boolean {
    for (let i = this.bans.length - 1; i >= 0; i--) {
      const ban = this.bans[i] as Ban;
      if (ban.seq <= obj.banSeq) break;
      if (banMatches(ban, obj, req)) return true;
    }
    obj.banSeq = this.seq;
    return false;
  }

  /**
   * Lurker step for one object: tests the lurkable bans newer than it, oldest first, stopping at
   * the first ban that needs a request. True when the object is banned.
   */
  bannedByLurker(obj: CacheObject): boolean {
    for (const ban of this.bans) {
      if (ban.seq <= obj.banSeq) continue;
      if (!ban.lurkable) return false;
      if (banMatches(ban, obj, null)) return true;
      obj.banSeq = ban.seq;
    }
    return false;
  }

  /** Drops bans every remaining object has already been tested against. */
  prune(oldestObjectBanSeq: number): void {
    if (this.bans.length > 0 && (this.bans[0] as Ban).seq <= oldestObjectBanSeq) {
      this.bans = this.bans.filter((b) => b.seq > oldestObjectBanSeq);
      this.bytes = 0;
      for (const b of this.bans) this.bytes += banBytes(b);
    }
  }
}

/** Methods RFC 9110 §9.2.1 defines as safe; every other, unknown ones included, is unsafe here. */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** RFC 9111 §4.4 invalidates after "an unsafe request method (including methods whose safety is unknown)". */
export function isUnsafeMethod(method: string): boolean {
  return !SAFE.has(method);
}

/**
 * Request-URIs (origin-form paths) a successful unsafe request invalidates (RFC 9111 §4.4): its
 * target, and Location / Content-Location when they point at the same host.
 */
export function unsafeInvalidationTargets(host: string, url: string, location: string | undefined, contentLocation: string | undefined): string[] {
  const out = [url];
  const base = `http://${host || 'localhost'}`;
  for (const ref of [location, contentLocation]) {
    if (ref === undefined) continue;
    try {
      const u = new URL(ref, base + url);
      if (u.host.toLowerCase() === (host || 'localhost')) out.push(u.pathname + u.search);
    } catch {
      // An unparsable reference invalidates nothing.
    }
  }
  return out;
}
