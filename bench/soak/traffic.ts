// The soak's requests (bench/soak.ts): what each kind asks of which tenant and what a correct
// answer is — cache hits and misses, ranges, conditionals, HEAD, both hooks, a program's output,
// its sub-requests, the key-value store, a persistent program and a CGI program.
import { type Dispatcher, request } from 'undici';
import { HOSTS, type TenantName } from './config.ts';
import { LAST_MODIFIED, missBody, objectBody, objectEtag } from './origin.ts';

/** Cacheable objects per tenant (`/T/c/0` … `/T/c/N-1`): few enough that load keeps each fresh. */
export const KEYS = 24;

/** One request's result, as the run classifies it. */
export interface Outcome {
  readonly kind: string;
  readonly tenant: TenantName;
  readonly url: string;
  readonly start: number;
  readonly end: number;
  /** null: no response (connection error or client timeout). */
  readonly status: number | null;
  /** What was wrong with a non-5xx answer (or the error, without one). */
  readonly problem?: string;
  /** The origin URL whose cached object the request is answered from, and when the origin last sent it. */
  readonly object?: { readonly url: string; readonly servedAt: number | undefined };
  /**
   * True when a 5xx is this route's documented answer to an origin in trouble: a cache miss (502
   * or 504 from the cache, when no object within grace can stand in) or beta's sub-request route
   * (502 with X-Soak-Fetch: failed, the program's own answer). Program routes without
   * sub-requests have no such excuse.
   */
  readonly faultMay5xx: boolean;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/** The check of a response: a problem, or undefined when it is right. 5xx answers are not checked here. */
type Check = (a: Answer) => string | undefined;

interface Ask {
  readonly tenant: TenantName;
  readonly method?: 'GET' | 'HEAD' | 'POST';
  readonly url: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly object?: string;
  /** Whether a 5xx answer may be this route's documented answer to origin trouble. */
  readonly faultMay5xx: boolean | ((a: Answer) => boolean);
  readonly check: Check;
}

export interface TrafficState {
  misses: number;
  /** Every count beta's program answered: each must be distinct (no lost or repeated increment). */
  readonly counts: number[];
}

const pick = (n: number): number => Math.floor(Math.random() * n);
const header = (a: Answer, name: string): string => String(a.headers[name] ?? '');

function expectStatus(a: Answer, ...statuses: number[]): string | undefined {
  return statuses.includes(a.status) ? undefined : `status ${a.status}, expected ${statuses.join(' or ')}`;
}

function expectBody(a: Answer, body: Buffer | string): string | undefined {
  const want = typeof body === 'string' ? Buffer.from(body) : body;
  return a.body.equals(want) ? undefined : `body of ${a.body.length} bytes differs from the ${want.length} expected`;
}

/** A whole object, as origin.ts made it. */
function wholeObject(path: string): Check {
  return (a) => expectStatus(a, 200) ?? expectBody(a, objectBody(path));
}

function ranged(path: string, from: number, to: number): Check {
  const body = objectBody(path);
  const last = Math.min(to, body.length - 1);
  return (a) => {
    // A cache may answer a range with the whole object (RFC 9110 §14.2); either must be exact.
    if (a.status === 200) return expectBody(a, body);
    const wrong = expectStatus(a, 206);
    if (wrong) return wrong;
    const range = `bytes ${from}-${last}/${body.length}`;
    if (header(a, 'content-range') !== range) return `Content-Range "${header(a, 'content-range')}", expected "${range}"`;
    return expectBody(a, body.subarray(from, last + 1));
  };
}

const notModified: Check = (a) => expectStatus(a, 304) ?? (a.body.length === 0 ? undefined : 'a 304 with a body');

function withHook(check: Check): Check {
  return (a) => check(a) ?? (header(a, 'x-soak-deliver') === String(a.status) ? undefined : `X-Soak-Deliver "${header(a, 'x-soak-deliver')}" on a ${a.status}`);
}

/** The kinds of request, with their weights in the mix. */
const KINDS: ReadonlyArray<{ name: string; weight: number; make: (s: TrafficState) => Ask }> = [
  { name: 'alpha hit', weight: 30, make: () => object('alpha', 'a') },
  { name: 'alpha range', weight: 8, make: () => rangeAsk('alpha', 'a') },
  { name: 'alpha if-none-match', weight: 8, make: () => conditional('alpha', 'a', 'if-none-match') },
  { name: 'alpha if-modified-since', weight: 4, make: () => conditional('alpha', 'a', 'if-modified-since') },
  { name: 'alpha head', weight: 4, make: () => headAsk('alpha', 'a') },
  { name: 'alpha miss', weight: 6, make: (s) => miss('alpha', 'a', s) },
  { name: 'beta hit (hooks)', weight: 10, make: () => object('beta', 'b', true) },
  { name: 'beta rewritten by recv', weight: 5, make: () => legacy() },
  { name: 'beta program page', weight: 10, make: () => page() },
  { name: 'beta sub-request', weight: 6, make: () => subRequest() },
  { name: 'beta kv increment', weight: 6, make: (s) => count(s) },
  { name: 'beta kv set/get', weight: 4, make: () => kv() },
  { name: 'beta passed by recv', weight: 3, make: () => passed() },
  { name: 'gamma hit', weight: 15, make: () => object('gamma', 'g') },
  { name: 'gamma range', weight: 4, make: () => rangeAsk('gamma', 'g') },
  { name: 'gamma if-modified-since', weight: 4, make: () => conditional('gamma', 'g', 'if-modified-since') },
  { name: 'gamma miss', weight: 4, make: (s) => miss('gamma', 'g', s) },
  { name: 'gamma persistent program', weight: 8, make: () => persistent() },
  { name: 'gamma cgi program', weight: 4, make: () => cgi() },
];
const TOTAL_WEIGHT = KINDS.reduce((n, k) => n + k.weight, 0);

function object(tenant: TenantName, t: string, hooks = false): Ask {
  const url = `/${t}/c/${pick(KEYS)}`;
  const check = wholeObject(url);
  return { tenant, url, object: url, faultMay5xx: true, check: hooks ? withHook(check) : check };
}

function rangeAsk(tenant: TenantName, t: string): Ask {
  const url = `/${t}/c/${pick(KEYS)}`;
  const from = pick(1024);
  const to = from + pick(2048);
  return { tenant, url, object: url, headers: { range: `bytes=${from}-${to}` }, faultMay5xx: true, check: ranged(url, from, to) };
}

function conditional(tenant: TenantName, t: string, kind: 'if-none-match' | 'if-modified-since'): Ask {
  const url = `/${t}/c/${pick(KEYS)}`;
  const value = kind === 'if-none-match' ? objectEtag(url) : LAST_MODIFIED;
  return { tenant, url, object: url, headers: { [kind]: value }, faultMay5xx: true, check: notModified };
}

function headAsk(tenant: TenantName, t: string): Ask {
  const url = `/${t}/c/${pick(KEYS)}`;
  const length = String(objectBody(url).length);
  return {
    tenant, method: 'HEAD', url, object: url, faultMay5xx: true,
    // RFC 9110 §9.3.2: a HEAD answer may leave out Content-Length, but one it sends must be GET's.
    check: (a) => expectStatus(a, 200) ?? (['', length].includes(header(a, 'content-length')) && a.body.length === 0 ? undefined : `HEAD with Content-Length ${header(a, 'content-length')} and ${a.body.length} body bytes`),
  };
}

function miss(tenant: TenantName, t: string, s: TrafficState): Ask {
  const url = `/${t}/m/${s.misses++}`;
  return { tenant, url, faultMay5xx: true, check: (a) => expectStatus(a, 200) ?? expectBody(a, missBody(url)) };
}

function legacy(): Ask {
  const k = pick(KEYS);
  const object = `/b/c/${k}`;
  return { tenant: 'beta', url: `/b/legacy/${k}`, object, faultMay5xx: true, check: withHook(wholeObject(object)) };
}

function page(): Ask {
  const k = pick(KEYS);
  return { tenant: 'beta', url: `/b/app/page/${k}`, faultMay5xx: false, check: withHook((a) => expectStatus(a, 200) ?? expectBody(a, `page ${k}\n`)) };
}

function subRequest(): Ask {
  const k = pick(KEYS);
  const length = objectBody(`/b/c/${k}`).length;
  // The route's documented error is 502 with X-Soak-Fetch: failed (test/guests/soak_app.c).
  return {
    tenant: 'beta', url: `/b/app/fetch/${k}`, faultMay5xx: (a) => a.status === 502 && header(a, 'x-soak-fetch') === 'failed',
    check: withHook((a) => expectStatus(a, 200) ?? expectBody(a, `fetched 200 len=${length}\n`)),
  };
}

function count(s: TrafficState): Ask {
  return {
    tenant: 'beta', url: '/b/app/count', faultMay5xx: false,
    check: withHook((a) => {
      const m = /^count=(\d+)\n$/.exec(a.body.toString());
      if (a.status !== 200 || !m) return `status ${a.status}, body ${JSON.stringify(a.body.toString().slice(0, 80))}`;
      s.counts.push(Number(m[1]));
      return undefined;
    }),
  };
}

function kv(): Ask {
  const k = pick(64);
  return { tenant: 'beta', url: `/b/app/kv/${k}`, faultMay5xx: false, check: withHook((a) => expectStatus(a, 200) ?? expectBody(a, `kv ${k}=kv-${k}\n`)) };
}

function passed(): Ask {
  return {
    tenant: 'beta', url: '/b/app/private', faultMay5xx: false,
    check: withHook((a) => expectStatus(a, 200) ?? expectBody(a, 'private\n') ?? (header(a, 'x-cache') === 'HIT' ? 'a passed request answered from the cache' : undefined)),
  };
}

function persistent(): Ask {
  return { tenant: 'gamma', url: `/g/p/${pick(KEYS)}`, faultMay5xx: false, check: (a) => expectStatus(a, 200) ?? (/^count=\d+ warm=\d+ /.test(a.body.toString()) ? undefined : `body ${JSON.stringify(a.body.toString().slice(0, 80))}`) };
}

function cgi(): Ask {
  const body = `soak-${pick(1_000_000)}`;
  return {
    tenant: 'gamma', method: 'POST', url: '/g/cgi/echo', body, headers: { 'content-type': 'text/plain' }, faultMay5xx: false,
    check: (a) => expectStatus(a, 202) ?? (a.body.toString().includes(`REQUEST_METHOD=POST\n`) && a.body.toString().includes(`body=${body}\n`) ? undefined : `body ${JSON.stringify(a.body.toString().slice(0, 120))}`),
  };
}

/** Sends one request of a kind drawn by weight, through `client` to the front at `front`. */
export async function oneRequest(client: Dispatcher, front: string, state: TrafficState, lastServed: ReadonlyMap<string, number>): Promise<Outcome> {
  let roll = pick(TOTAL_WEIGHT);
  const kind = KINDS.find((k) => (roll -= k.weight) < 0)!;
  const ask = kind.make(state);
  const start = Date.now();
  const object = ask.object === undefined ? undefined : { url: ask.object, servedAt: lastServed.get(ask.object) };
  const base = { kind: kind.name, tenant: ask.tenant, url: ask.url, start, object };
  const may5xx = (a: Answer): boolean => (typeof ask.faultMay5xx === 'boolean' ? ask.faultMay5xx : ask.faultMay5xx(a));
  try {
    const r = await request(`${front}${ask.url}`, {
      dispatcher: client,
      method: ask.method ?? 'GET',
      headers: { host: HOSTS[ask.tenant], ...ask.headers },
      body: ask.body,
    });
    const body = Buffer.from(await r.body.arrayBuffer());
    const answer: Answer = { status: r.statusCode, headers: r.headers, body };
    const problem = r.statusCode >= 500 ? undefined : ask.check(answer);
    return { ...base, end: Date.now(), status: r.statusCode, faultMay5xx: may5xx(answer), ...(problem === undefined ? {} : { problem }) };
  } catch (err) {
    return { ...base, end: Date.now(), status: null, faultMay5xx: false, problem: (err as Error).message };
  }
}
