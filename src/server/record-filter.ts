// Which records a live-log reader wants: the filter a query string names (status class, URL
// prefix, cache result, backend, tenant), and the test of a record against it.
import { CACHE_RESULTS, type CacheResult, type RequestRecord } from './records.ts';

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
}

/** A bad filter parameter, said to the caller (a 400). */
export class FilterError extends Error {}

/** The filter of a query string: status=2xx,5xx prefix=/api cache=miss,pass backend=NAME tenant=NAME. */
export function parseFilter(params: URLSearchParams): RecordFilter {
  const f: RecordFilter = {};
  const list = (name: string): string[] | undefined => {
    const v = params.get(name);
    return v === null || v === '' ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);
  };
  for (const key of params.keys()) if (!['status', 'prefix', 'cache', 'backend', 'tenant'].includes(key)) throw new FilterError(`unknown filter "${key}" (status, prefix, cache, backend, tenant)`);
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
  return f;
}

export function matches(f: RecordFilter, r: RequestRecord): boolean {
  if (f.tenant !== undefined && r.tenant !== f.tenant) return false;
  if (f.statusClasses !== undefined && !f.statusClasses.includes(Math.floor(r.status / 100))) return false;
  if (f.urlPrefix !== undefined && !r.url.startsWith(f.urlPrefix)) return false;
  if (f.cache !== undefined && (r.cache === null || !f.cache.includes(r.cache))) return false;
  if (f.backend !== undefined && r.backend !== f.backend) return false;
  return true;
}
