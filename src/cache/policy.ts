// Freshness and storability (RFC 9111 §3, §4.2) plus the Varnish lifetime model: every stored
// object carries ttl (fresh), grace (stale but served while one fetch refreshes it) and keep
// (only kept to revalidate). All times here are epoch milliseconds; header values are seconds.
import type { BackendPolicy } from './origin.ts';
import type { CacheControl } from './cache-control.ts';
import { countHeader, getHeader, getJoined, parseHttpDate, parseStrictHttpDate, type HeaderList } from './headers.ts';

/** Engine-wide defaults the policy falls back on. */
export interface PolicyConfig {
  /** Grace when the response has no `stale-while-revalidate` (Varnish `default_grace`). */
  defaultGraceMs: number;
  /** Keep for objects with a validator, so they can be revalidated after ttl + grace. */
  defaultKeepMs: number;
  /** Upper bound of heuristic freshness (10% of Date − Last-Modified). */
  heuristicCapMs: number;
}

/** Statuses RFC 9110 §15.1 calls heuristically cacheable. */
const HEURISTIC_STATUS = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]);

/** Times the cache measured around the origin exchange (RFC 9111 §4.2.3 request_time, response_time). */
export interface ExchangeTimes { requestTime: number; responseTime: number }

/** How long a response may be used, as decided when it arrives. */
export interface Lifetime {
  /** Origin time: now − t0 is the object's current_age (so t0 = response_time − corrected_initial_age). */
  t0: number;
  ttl: number;
  grace: number;
  keep: number;
  /** Staleness tolerated when the origin fails (max of grace and `stale-if-error`). */
  errorWindow: number;
  /** must-revalidate / proxy-revalidate / no-cache: never served stale, never without validation when stale. */
  noStale: boolean;
  /** Unqualified `no-cache`: every reuse needs a successful validation. */
  alwaysValidate: boolean;
}

export type StoreVerdict = { store: true; life: Lifetime } | { store: false; reason: string };

/**
 * The seconds of an `Age` field's first line (RFC 9111 §5.1). A sender that folded several values
 * into one line (`Age: 7200, 0`) is read like several lines: the first wins, as caches that see a
 * repeated field do. A member with parameters is read without them; anything else but digits is no
 * Age at all.
 */
function ageSeconds(value: string | undefined): number {
  if (value === undefined) return 0;
  const first = value.split(',', 1)[0]!.split(';', 1)[0]!.trim();
  return /^\d+$/.test(first) ? Number(first) : 0;
}

/** RFC 9111 §4.2.3: corrected_initial_age from Date, Age and the measured delay. */
function correctedInitialAge(headers: HeaderList, times: ExchangeTimes): number {
  let dateValue = parseHttpDate(getHeader(headers, 'date'));
  if (Number.isNaN(dateValue)) dateValue = times.responseTime;
  const ageValue = ageSeconds(getHeader(headers, 'age')) * 1000;
  const apparentAge = Math.max(0, times.responseTime - dateValue);
  const responseDelay = Math.max(0, times.responseTime - times.requestTime);
  const correctedAgeValue = ageValue + responseDelay;
  return Math.max(apparentAge, correctedAgeValue);
}

/**
 * Freshness lifetime (§4.2.1): s-maxage, then max-age, then Expires − Date, then the heuristic.
 * Returns null when the response carries no freshness information at all.
 */
function freshnessLifetime(status: number, headers: HeaderList, cc: CacheControl, responseTime: number, cfg: PolicyConfig): { ms: number; heuristic: boolean } | null {
  if (cc.sMaxage !== undefined) return { ms: cc.sMaxage * 1000, heuristic: false };
  if (cc.maxAge !== undefined) return { ms: cc.maxAge * 1000, heuristic: false };
  let date = parseHttpDate(getHeader(headers, 'date'));
  if (Number.isNaN(date)) date = responseTime;
  const expires = getHeader(headers, 'expires');
  if (expires !== undefined) {
    // An invalid Expires ("0", a date in none of the three HTTP-date forms, or two Expires
    // fields) means "already expired" (RFC 9111 §5.3).
    const exp = countHeader(headers, 'expires') === 1 ? parseStrictHttpDate(expires.trim()) : NaN;
    return { ms: Number.isNaN(exp) ? 0 : Math.max(0, exp - date), heuristic: false };
  }
  if (HEURISTIC_STATUS.has(status) || cc.public) {
    const lm = parseHttpDate(getHeader(headers, 'last-modified'));
    if (!Number.isNaN(lm) && lm < date) return { ms: Math.min(cfg.heuristicCapMs, Math.floor((date - lm) / 10)), heuristic: true };
  }
  return null;
}

/** Facts about the request that produced the response. */
export interface RequestFacts { authorization: boolean; noStore: boolean }

/**
 * Applies a backend's own cache decision to the header-derived verdict. What the request forbids
 * (no-store, Authorization) and unstorable statuses still win; the program decides the rest.
 */
export function withBackendPolicy(verdict: StoreVerdict, policy: BackendPolicy | undefined, status: number, headers: HeaderList, req: RequestFacts, times: ExchangeTimes, cfg: PolicyConfig): StoreVerdict {
  if (policy === undefined) return verdict;
  if (policy.uncacheable) return { store: false, reason: 'uncacheable (program)' };
  if (policy.ttlMs === undefined && policy.graceMs === undefined && policy.keepMs === undefined) return verdict;
  if (status < 200 || status === 206 || status === 304 || status > 599) return verdict;
  if (req.noStore) return { store: false, reason: 'request no-store' };
  if (req.authorization) return { store: false, reason: 'authorization' };
  const base = verdict.store ? verdict.life : null;
  const ttl = policy.ttlMs ?? base?.ttl ?? 0;
  const grace = policy.graceMs ?? base?.grace ?? cfg.defaultGraceMs;
  const hasValidator = getHeader(headers, 'etag') !== undefined || getHeader(headers, 'last-modified') !== undefined;
  const keep = policy.keepMs ?? base?.keep ?? (hasValidator ? cfg.defaultKeepMs : 0);
  if (ttl + grace + keep <= 0) return { store: false, reason: 'zero lifetime (program)' };
  return { store: true, life: { t0: times.responseTime, ttl, grace, keep, errorWindow: grace, noStale: false, alwaysValidate: false } };
}

/** Decides whether a shared cache may store a GET response (§3, §3.5) and for how long. */
export function storeVerdict(status: number, headers: HeaderList, cc: CacheControl, req: RequestFacts, times: ExchangeTimes, cfg: PolicyConfig): StoreVerdict {
  if (status < 200 || status === 206 || status === 304 || status > 599) return { store: false, reason: `status ${status}` };
  if (cc.noStore) return { store: false, reason: 'no-store' };
  if (req.noStore) return { store: false, reason: 'request no-store' };
  if (cc.private === true) return { store: false, reason: 'private' };
  if (req.authorization && !(cc.public || cc.sMaxage !== undefined || cc.mustRevalidate)) return { store: false, reason: 'authorization' };
  const vary = getJoined(headers, 'vary');
  if (vary !== undefined && vary.includes('*')) return { store: false, reason: 'vary *' };
  // Varnish's builtin rule, kept deliberately: a Set-Cookie response is someone's session.
  if (getHeader(headers, 'set-cookie') !== undefined) return { store: false, reason: 'set-cookie' };
  const fresh = freshnessLifetime(status, headers, cc, times.responseTime, cfg);
  const hasValidator = getHeader(headers, 'etag') !== undefined || getHeader(headers, 'last-modified') !== undefined;
  const alwaysValidate = cc.noCache === true;
  const noStale = alwaysValidate || cc.mustRevalidate || cc.proxyRevalidate;
  const ttl = alwaysValidate || fresh === null ? 0 : fresh.ms;
  // Without explicit or heuristic freshness nothing is served stale (grace only extends a lifetime).
  const grace = noStale || fresh === null ? 0 : cc.staleWhileRevalidate !== undefined ? cc.staleWhileRevalidate * 1000 : cfg.defaultGraceMs;
  const errorWindow = noStale || fresh === null ? 0 : Math.max(grace, (cc.staleIfError ?? 0) * 1000);
  const keep = hasValidator ? cfg.defaultKeepMs : 0;
  if (ttl + errorWindow + keep <= 0) return { store: false, reason: fresh === null && !alwaysValidate ? 'no freshness information' : 'zero lifetime' };
  const t0 = times.responseTime - correctedInitialAge(headers, times);
  return { store: true, life: { t0, ttl, grace, keep, errorWindow, noStale, alwaysValidate } };
}

/** What a lookup may do with a stored object, given the request's own directives. */
export type Usability = 'fresh' | 'grace' | 'stale' | 'validate';

/**
 * Classifies a stored object for one request. `fresh`: serve. `grace`: serve stale and refresh in
 * the background. `stale`: serve stale because the client allowed it (max-stale). `validate`: fetch,
 * conditionally when the object has a validator.
 */
export function classify(life: Lifetime, now: number, req: CacheControl | null): Usability {
  const age = now - life.t0;
  if (req === null) {
    if (age < life.ttl) return 'fresh';
    return age < life.ttl + life.grace ? 'grace' : 'validate';
  }
  if (req.noCache !== null) return 'validate';
  if (req.maxAge !== undefined && age > req.maxAge * 1000) return 'validate';
  if (req.minFresh !== undefined && life.ttl - age < req.minFresh * 1000) return 'validate';
  if (age < life.ttl) return 'fresh';
  if (life.noStale) return 'validate';
  if (req.maxStale !== undefined && age - life.ttl <= req.maxStale * 1000) return 'stale';
  // A client that states max-age wants nothing stale (§5.2.1.1) unless it also sent max-stale.
  if (req.maxAge !== undefined) return 'validate';
  return age < life.ttl + life.grace ? 'grace' : 'validate';
}

/** True while a stale object may stand in for a failed or sick origin (grace / stale-if-error). */
export function usableOnError(life: Lifetime, now: number): boolean {
  return !life.noStale && now - life.t0 < life.ttl + life.errorWindow;
}

/** True once an object is past ttl + grace/error window + keep and must leave storage. */
export function expired(life: Lifetime, now: number): boolean {
  return now - life.t0 >= life.ttl + Math.max(life.grace, life.errorWindow) + life.keep;
}
