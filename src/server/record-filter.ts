// Which records a live-log reader wants: the filter a query string names (status class, URL
// prefix, cache result, backend, tenant; a sample of what passes them, and at most so many a
// second), and the test of a batch's records against it.
import { type EncodedBatch, loadRow, NUMS, STRS } from './record-batch.ts';
import { CACHE_RESULTS, type CacheResult } from './records.ts';

/** Which records a reader wants. Every field narrows; none: everything in scope. */
export interface RecordFilter {
  /** Only this tenant (a tenant's token reads only its own, whatever it asks). */
  tenant?: string;
  /** Status classes, as their first digit (2 for 2xx). */
  statusClasses?: number[];
  /** URLs starting with this. */
  urlPrefix?: string;
  cache?: CacheResult[];
  /** Origin or program name. */
  backend?: string;
  /**
   * Of the records the other fields keep, this fraction (0 < sample < 1), chosen at random
   * (`Sampler`; at random rather than one in every 1/sample: traffic that cycles through a few
   * URLs, a load test or a poller, would show a reader of every tenth only some of them). Not a
   * property of a record: the log thread applies it after the other fields (`pickMatching`).
   */
  sample?: number;
  /**
   * At most this many records a second (of those the filters and the sample keep): past it, a
   * random few of each batch, and the reader told how many it did not get (`RateCap`). For a
   * view that can show only so many, such as the dashboard's.
   */
  max?: number;
}

/** The most `max` may ask for: a million records a second is more than any reader takes. */
export const MAX_RECORDS_PER_SECOND = 1_000_000;

/** A bad filter parameter, said to the caller (a 400). */
export class FilterError extends Error {}

/** The filter of a query string: status=2xx,5xx prefix=/api cache=miss,pass backend=NAME tenant=NAME sample=0.01 max=50. */
export function parseFilter(params: URLSearchParams): RecordFilter {
  const f: RecordFilter = {};
  const list = (name: string): string[] | undefined => {
    const v = params.get(name);
    return v === null || v === '' ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);
  };
  for (const key of params.keys()) if (!FILTERS.includes(key)) throw new FilterError(`unknown filter "${key.slice(0, 100)}" (${FILTERS.join(', ')})`);
  const status = list('status');
  if (status) {
    f.statusClasses = status.map((s) => {
      const m = /^([1-5])xx$/i.exec(s);
      if (!m) throw new FilterError(`status filter "${s}": expected a class such as 2xx or 5xx`);
      return Number(m[1]);
    });
  }
  const cache = list('cache');
  if (cache) {
    f.cache = cache.map((c) => {
      const lower = c.toLowerCase();
      if (!(CACHE_RESULTS as readonly string[]).includes(lower)) throw new FilterError(`cache filter "${c}": expected one of ${CACHE_RESULTS.join(', ')}`);
      return lower as CacheResult;
    });
  }
  const prefix = params.get('prefix');
  if (prefix !== null && prefix !== '') {
    if (!prefix.startsWith('/')) throw new FilterError(`prefix filter "${prefix.slice(0, 100)}": expected a path starting with /`);
    f.urlPrefix = prefix;
  }
  const backend = params.get('backend');
  if (backend !== null && backend !== '') f.backend = backend;
  const tenant = params.get('tenant');
  if (tenant !== null && tenant !== '') f.tenant = tenant;
  const sample = params.get('sample');
  if (sample !== null && sample !== '') {
    const v = /^\s*(?:0?\.\d+|1(?:\.0*)?|0(?:\.0*)?)\s*$/.test(sample) ? Number(sample) : NaN;
    if (!(v > 0 && v <= 1)) throw new FilterError(`sample filter "${sample.slice(0, 100)}": expected a fraction above 0 and at most 1, such as 0.01`);
    // 1 keeps everything: no sample at all.
    if (v < 1) f.sample = v;
  }
  const max = params.get('max');
  if (max !== null && max !== '') {
    const v = /^\d{1,7}$/.test(max) ? Number(max) : NaN;
    if (!(v >= 1 && v <= MAX_RECORDS_PER_SECOND)) throw new FilterError(`max filter "${max.slice(0, 100)}": expected records a second, a whole number from 1 to ${MAX_RECORDS_PER_SECOND}`);
    f.max = v;
  }
  return f;
}

const FILTERS = ['status', 'prefix', 'cache', 'backend', 'tenant', 'sample', 'max'];

/** Whether `f` tests what a record holds (`pickMatching`): a sample or a max alone does not. */
export function testsRecords(f: RecordFilter): boolean {
  return f.tenant !== undefined || f.statusClasses !== undefined || f.urlPrefix !== undefined || f.cache !== undefined || f.backend !== undefined;
}

/**
 * A reader's sample: each record kept with the filter's chance, at random, drawn as the number of
 * records to pass over before the next one kept (geometric, which is the same sample as a draw
 * for each record): a sample of 1 % draws once a kept record, not once a record.
 */
export class Sampler {
  /** Records still to pass over, across batches. */
  private skip: number;

  constructor(private readonly fraction: number) {
    this.skip = this.gap();
  }

  /** Whether the next record (of those the other filters kept) is in the sample. */
  keep(): boolean {
    if (this.skip > 0) {
      this.skip--;
      return false;
    }
    this.skip = this.gap();
    return true;
  }

  /** Adds to `pick` the indexes of a batch of `count` records that are in the sample. */
  pickFrom(count: number, pick: number[]): void {
    let k = this.skip;
    for (; k < count; k += 1 + this.gap()) pick.push(k);
    this.skip = k - count;
  }

  private gap(): number {
    // 1 - random() is in (0, 1]: its log is finite and at most 0. log1p keeps the tiniest fraction
    // from rounding 1 - fraction to 1 (a log of 0, and -Infinity records to pass over); a gap
    // too large for a double is Infinity, and the sample keeps nothing more, as it nearly would.
    return Math.floor(Math.log(1 - Math.random()) / Math.log1p(-this.fraction));
  }
}

/**
 * A reader's `max`: a bucket of records a second, full at the start and holding at most a second's
 * worth, so a quiet stream gets every record of a burst up to that; a batch with more records
 * than the bucket has gets as many as it has, chosen at random (each subset of that size as
 * likely), in their order.
 */
export class RateCap {
  private tokens: number;
  private last: number;

  constructor(private readonly perSecond: number, now: number) {
    this.tokens = perSecond;
    this.last = now;
  }

  /** The records of `pick` (indexes, in order) this batch may send at `now` (ms), in order: `pick` itself when all. */
  take(pick: number[], now: number): number[] {
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.last) * this.perSecond) / 1000);
    this.last = now;
    const room = Math.floor(this.tokens);
    if (pick.length <= room) {
      this.tokens -= pick.length;
      return pick;
    }
    this.tokens -= room;
    // Selection sampling (Knuth's algorithm S): each record in turn is taken with the chance
    // (still wanted) / (still to see).
    const kept: number[] = [];
    for (let i = 0; i < pick.length && kept.length < room; i++) if (Math.random() * (pick.length - i) < room - kept.length) kept.push(pick[i]!);
    return kept;
  }
}

/**
 * Adds to `pick` the indexes (the order of `order`, record-batch.ts's `rowOrder`) of a batch's
 * records that `f` keeps, and of them what `sampler` keeps, read from the batch's columns: no
 * record is made. A string is tested by its index in the batch's table, where each distinct
 * string is once: found once a batch, and a URL's prefix tested once per distinct URL. A
 * tenant's own stream has a filter (its tenant), so this runs for most readers: making every
 * record an object first cost the log thread ~0.2 µs a record (docs/benchmarks.md).
 */
export function pickMatching(b: EncodedBatch, order: Int32Array, f: RecordFilter, sampler: Sampler | null, pick: number[]): void {
  // 0: the string is not in the batch (no record has it); -1: the filter does not ask.
  const indexOf = (v: string | undefined): number => (v === undefined ? -1 : b.table.indexOf(v) + 1);
  const tenant = indexOf(f.tenant);
  const backend = indexOf(f.backend);
  if (tenant === 0 || backend === 0) return;
  const classes = f.statusClasses;
  const prefix = f.urlPrefix;
  const prefixed = new Map<number, boolean>();
  const cache = f.cache === undefined ? null : CACHE_RESULTS.map((c) => f.cache!.includes(c));
  const nums = new Float64Array(NUMS);
  const strs = new Uint32Array(STRS);
  for (let k = 0; k < b.count; k++) {
    loadRow(b, order[k]!, nums, strs, 0);
    if (tenant > 0 && strs[0] !== tenant) continue;
    if (classes !== undefined && !classes.includes(Math.floor(nums[2]! / 100))) continue;
    if (prefix !== undefined) {
      const url = strs[3]!;
      let ok = prefixed.get(url);
      if (ok === undefined) prefixed.set(url, (ok = b.table[url - 1]!.startsWith(prefix)));
      if (!ok) continue;
    }
    if (cache !== null && (nums[3]! < 0 || !cache[nums[3]!]!)) continue;
    if (backend > 0 && strs[4] !== backend) continue;
    if (sampler === null || sampler.keep()) pick.push(k);
  }
}
