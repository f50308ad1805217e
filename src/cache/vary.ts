// Secondary cache keys (RFC 9111 §4.1): a response with `Vary` is stored per combination of the
// request header values it names; `Vary: *` never matches, so such responses are not stored.
import type { IncomingHttpHeaders } from 'node:http';
import { getJoined, type HeaderList } from './headers.ts';

/** The lower-case field names a response varies on, or null when it does not vary. */
export function varyNames(headers: HeaderList): string[] | null {
  const v = getJoined(headers, 'vary');
  if (v === undefined) return null;
  const names = v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  return names.length > 0 ? names : null;
}

/**
 * One request header normalised for comparison: repeated lines joined, whitespace around commas
 * dropped (§4.1 allows this normalisation). Absent is null, distinct from an empty value.
 */
function normalise(v: string | string[] | undefined): string | null {
  if (v === undefined) return null;
  const joined = Array.isArray(v) ? v.join(',') : v;
  return joined.includes(',') ? joined.split(',').map((s) => s.trim()).join(',') : joined.trim();
}

/** The request's values for `names`, in order: the secondary key stored with a variant. */
export function varyValues(names: readonly string[], headers: IncomingHttpHeaders): (string | null)[] {
  return names.map((n) => normalise(headers[n]));
}

/** True when `headers` selects the variant stored with `names`/`values`. */
export function varyMatches(names: readonly string[] | null, values: readonly (string | null)[], headers: IncomingHttpHeaders): boolean {
  if (names === null) return true;
  for (let i = 0; i < names.length; i++) {
    if (normalise(headers[names[i] as string]) !== values[i]) return false;
  }
  return true;
}

/** True when two requests agree on every header in `names` (coalesced waiters vs the fetching request). */
export function sameVariant(names: readonly string[] | null, a: IncomingHttpHeaders, b: IncomingHttpHeaders): boolean {
  if (names === null) return true;
  for (const n of names) if (normalise(a[n]) !== normalise(b[n])) return false;
  return true;
}
