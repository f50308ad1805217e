// The fast hit: the answer for the commonest request a cache sees — a plain GET or HEAD, with no
// conditionals, ranges, cache directives or credentials, for a fresh object that does not vary —
// serialised straight to bytes for the front's raw connection path. Anything else returns null
// and takes the full state machine (fsm.ts) through Node's HTTP server; the answer here is the
// same one deliverObject would write.
import { STATUS_CODES } from 'node:http';
import type { EngineParts } from './context.ts';
import type { BodyLease, CacheObject } from './object.ts';
import { classify } from './policy.ts';

/** A fresh hit as bytes ready to write (`Cache.fastHit`), for a front that answers from raw sockets. */
export interface FastResponse {
  status: number;
  /** Status line and header block, ending with the empty line. */
  head: Buffer;
  /** The body, or null for HEAD. */
  body: Buffer | null;
  /** For a body in shared storage: hold it while the socket writes it (object.ts BodyLease). */
  lease?: BodyLease | null;
}

/**
 * Serialised status line and stored headers of an object (everything but Age and X-Cache), and
 * whether they carry the origin's Date (kept, as on the full path; otherwise we add one); and the
 * whole head last made of them, for the Age (and Date second) it says: a hot object's hits within
 * one second share it instead of each formatting, allocating and joining their own.
 */
interface Prefix {
  bytes: Buffer;
  hasDate: boolean;
  head: Buffer | null;
  headAge: number;
  headDateSecond: number;
}
const prefixes = new WeakMap<CacheObject, Prefix>();

function prefixOf(obj: CacheObject): Prefix {
  let p = prefixes.get(obj);
  if (p === undefined) {
    let text = `HTTP/1.1 ${obj.status} ${STATUS_CODES[obj.status] ?? 'Unknown'}\r\n`;
    const head = obj.hitHead;
    let hasDate = false;
    for (let i = 0; i < head.length; i += 2) {
      text += `${head[i]}: ${head[i + 1]}\r\n`;
      if (head[i] === 'date') hasDate = true;
    }
    // A Buffer of its own: a small Buffer.from is a slice of an 8 KiB pool block that this
    // long-lived head would keep alive, beyond what the object's size counts.
    const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(text, 'latin1'));
    bytes.write(text, 'latin1');
    p = { bytes, hasDate, head: null, headAge: -1, headDateSecond: -1 };
    prefixes.set(obj, p);
  }
  return p;
}

/** The head of a hit on `p`'s object at `age` seconds (and, without the origin's Date, at `nowMs`). */
function hitHeadOf(p: Prefix, age: number, nowMs: number): Buffer {
  const dateSecond = p.hasDate ? 0 : Math.floor(nowMs / 1000);
  if (p.head !== null && p.headAge === age && p.headDateSecond === dateSecond) return p.head;
  const tail = `age: ${age}\r\nx-cache: HIT\r\n${p.hasDate ? '' : `date: ${httpDate(nowMs)}\r\n`}\r\n`;
  // Never written once handed out (a socket may still be sending it): the next second's is new.
  const head = Buffer.allocUnsafeSlow(p.bytes.length + tail.length);
  p.bytes.copy(head, 0);
  head.write(tail, p.bytes.length, 'latin1');
  p.head = head;
  p.headAge = age;
  p.headDateSecond = dateSecond;
  return head;
}

let dateSecond = 0;
let dateText = '';
/** The Date header value, formatted once per second as Node's HTTP server does. */
export function httpDate(nowMs: number): string {
  const second = Math.floor(nowMs / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

/** The fast answer for `host` + `url`, or null when the request needs the full state machine. */
export function fastHit(e: EngineParts, host: string, url: string, isHead: boolean): FastResponse | null {
  if (e.hooks !== null) return null;
  const variants = e.ns.variants(host.toLowerCase() + url);
  if (variants === undefined || variants.length !== 1) return null;
  const obj = variants[0]!;
  // Varying objects need the request's headers; newer bans need evaluating: both go the long way.
  if (obj.varyNames !== null || obj.banSeq < e.bans.seq || obj.removed) return null;
  const now = e.now();
  if (classify(obj.life, now, null) !== 'fresh') return null;
  e.counters.hits++;
  e.counters.fastHits++;
  e.ns.touch(obj, now);
  const age = Math.floor(Math.max(0, now - obj.life.t0) / 1000);
  return { status: obj.status, head: hitHeadOf(prefixOf(obj), age, Date.now()), body: isHead ? null : obj.body, lease: isHead ? null : obj.lease };
}
