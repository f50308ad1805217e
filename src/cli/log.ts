// `tinyedge log`: follows the live request log of a running server (like varnishlog or wrangler
// tail): one readable line per request, the program's log lines under it, or the records as
// JSON lines with --json. Filters are the admin API's (docs/observability.md).
import type { LogRecord } from '../server/records.ts';
import { AdminCallError, type AdminOptions, adminGet, adminTarget } from './admin-client.ts';

export interface LogOptions extends AdminOptions {
  tenant?: string;
  status?: string;
  prefix?: string;
  cache?: string;
  backend?: string;
  /** A fraction of the matching records, at random, as the admin API's `sample` (a string: passed on as typed). */
  sample?: string;
  json?: boolean;
}

const us = (n: number): string => (n >= 1000 ? `${(n / 1000).toFixed(n >= 100_000 ? 0 : 1)}ms` : `${n}µs`);
const size = (n: number): string => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)}MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)}KiB` : `${n}B`);

/** One record as a line a person reads; the program's log lines and the failure follow, indented. */
export function formatRecord(r: LogRecord): string {
  const time = new Date(r.time).toISOString().slice(11, 23);
  const backend = r.backendKind === 'program' ? `program ${r.backend} (${r.version})` : r.backendKind === 'origin' ? `origin ${r.backend}${r.originStatus !== undefined ? ` ${r.originStatus}` : ''}` : '';
  const vm = r.vmUs !== undefined ? ` vm ${us(r.vmUs)} (guest ${us(r.guestUs ?? 0)}, ${r.vmExits ?? 0} exits, ${r.dirtyPages ?? 0} pages)` : '';
  let line = `${time} ${r.tenant} ${r.status} ${r.method} ${r.host}${r.url} ${r.cache ?? '-'} ${us(r.totalUs)} ${size(r.bytes)}${backend ? ` ${backend}` : ''}${vm} shard ${r.shard}`;
  if (r.error !== undefined) line += `\n    error: ${r.error}`;
  for (const l of r.logs ?? []) line += `\n    log: ${l}`;
  return line;
}

/** Follows the log until the server ends the stream (status 0) or a call fails (1). */
export async function followLog(opts: LogOptions): Promise<number> {
  try {
    const { base, token } = adminTarget(opts);
    const query = new URLSearchParams();
    for (const key of ['status', 'prefix', 'cache', 'backend', 'sample'] as const) if (opts[key] !== undefined) query.set(key, opts[key]);
    const path = opts.tenant !== undefined ? `/v1/tenants/${encodeURIComponent(opts.tenant)}/log` : '/v1/log';
    const res = await adminGet(base, token, `${path}${query.size > 0 ? `?${query}` : ''}`, 'application/x-ndjson');
    const decoder = new TextDecoder();
    let rest = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      rest += decoder.decode(chunk, { stream: true });
      const lines = rest.split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (line === '') continue;
        const value = JSON.parse(line) as LogRecord | { dropped: number };
        if ('dropped' in value) process.stderr.write(`tinyedge log: ${value.dropped} records dropped: this reader fell behind\n`);
        else process.stdout.write(opts.json === true ? `${line}\n` : `${formatRecord(value)}\n`);
      }
    }
    process.stderr.write('tinyedge log: the server ended the stream\n');
    return 0;
  } catch (err) {
    if (err instanceof AdminCallError) {
      process.stderr.write(`tinyedge log: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
