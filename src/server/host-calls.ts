// What a tenant's programs reach during a request besides their own memory: sub-requests to the
// tenant's origins (te_fetch) and its key-value store (te_kv_*). One implementation, for the
// server's tenants and for `tinyedge dev`, so that the local loop runs what `serve` runs.
import { Readable } from 'node:stream';
import { type HeaderList, Origin, OriginError } from '../cache/index.ts';
import { type HostCalls, MAX_FETCH_RESPONSE_BYTES } from '../sandbox/index.ts';
import { readLimited } from '../http/body.ts';
import type { OriginConfig } from './config.ts';
import type { KvAccess } from './kv.ts';

/** A flat header list as name/value pairs. */
export function headerPairs(list: HeaderList): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < list.length; i += 2) out.push([list[i]!, list[i + 1]!]);
  return out;
}

/** The client of an origin as configured; settings left out take the Origin's defaults. */
export function openOrigin(o: Pick<OriginConfig, 'url'> & Partial<OriginConfig>): Origin {
  return new Origin({
    url: o.url,
    connections: o.connections,
    connectTimeoutMs: o.connectTimeoutMs,
    headersTimeoutMs: o.firstByteTimeoutMs,
    bodyTimeoutMs: o.idleTimeoutMs,
    healthCheck: o.healthCheck ?? undefined,
  });
}

const tooLarge = (limit: number): Error => new OriginError(502, `body larger than ${limit} bytes`);

/**
 * Sub-requests to `origins` (by name; a program that names none gets `default`, with that
 * origin's Host unless it sets one) and the key-value store `kv`, as a tenant's programs see them.
 * A failure rejects: the program's call answers -EIO.
 */
export function tenantHostCalls(origins: ReadonlyMap<string, Origin>, kv: KvAccess): HostCalls {
  return {
    fetch: async (call) => {
      const name = call.origin || 'default';
      const origin = origins.get(name);
      if (!origin) throw new Error(`no origin named ${name}`);
      const headers: HeaderList = [];
      for (const [n, v] of call.headers) headers.push(n.toLowerCase(), v);
      if (!call.headers.some(([n]) => n.toLowerCase() === 'host')) headers.push('host', new URL(origin.url).host);
      const resp = await origin.fetch({ method: call.method, path: call.url, headers, body: call.body.length > 0 ? Readable.from([call.body]) : null });
      return { status: resp.status, headers: headerPairs(resp.headers), body: await readLimited(resp.body, MAX_FETCH_RESPONSE_BYTES, tooLarge) };
    },
    kvGet: (key) => kv.get(key),
    kvSet: (key, value) => kv.set(key, value),
    kvDelete: (key) => kv.delete(key),
    kvIncrement: (key, delta) => kv.increment(key, delta),
    kvCompareAndSet: (key, expected, value) => kv.compareAndSet(key, expected, value),
  };
}
