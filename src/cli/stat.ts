// `tinyedge stat`: per-tenant rates of a running server (like varnishstat), refreshed every
// second: requests, hit ratio, bandwidth, VM latency p50/p99 over the last interval, errors,
// evictions, CPU; for the operator, a line on the shared cache as a whole (how full, its memory).
// `--once` prints one snapshot of the totals since start.
import { AdminCallError, type AdminOptions, adminGet, adminTarget } from './admin-client.ts';

export interface StatOptions extends AdminOptions {
  once?: boolean;
  interval: number;
}

/** One tenant as GET /v1/stats reports it (the fields used here). */
export interface TenantSample {
  tenant: string;
  counters: { requests: number; status5xx: number; bytesOut: number; vmErrors: number; vmTimeouts: number; cpuGuestUs: number; cpuHostUs: number };
  cache: { hits: number; staleHits: number; misses: number; passes: number; evictions: number };
  vmLatency: { count: number; p50Us: number; p99Us: number };
  buckets: { vm: Array<[number, number]> };
}

/** The shared cache as a whole, as GET /v1/stats reports it to the operator. */
export interface StoreSample {
  objects: number;
  bytes: number;
  maxBytes: number;
  reservedBytes: number;
  arenaBytes: number;
  arenaUsedBytes: number;
}

/** What GET /v1/stats answers: the caller's tenants, and the store for the operator. */
interface StatsSample {
  tenants: TenantSample[];
  store?: StoreSample;
}

/** The q-quantile of sparse [upper bound, count] buckets (ascending), or null when empty. */
export function quantile(buckets: ReadonlyArray<readonly [number, number]>, q: number): number | null {
  const total = buckets.reduce((n, [, c]) => n + c, 0);
  if (total === 0) return null;
  const target = Math.ceil(q * total);
  let seen = 0;
  for (const [upper, c] of buckets) {
    seen += c;
    if (seen >= target) return upper;
  }
  return buckets[buckets.length - 1]![0];
}

/** The buckets of `now` less those of `before`: what was recorded between the two samples. */
function bucketDelta(now: ReadonlyArray<readonly [number, number]>, before: ReadonlyArray<readonly [number, number]> | undefined): Array<[number, number]> {
  const prior = new Map(before ?? []);
  return now.map(([u, c]): [number, number] => [u, c - (prior.get(u) ?? 0)]).filter(([, c]) => c > 0);
}

const fmtUs = (n: number | null): string => (n === null ? '-' : n >= 1000 ? `${(n / 1000).toFixed(n >= 100_000 ? 0 : 1)}ms` : `${Math.round(n)}µs`);
const fmtBytes = (n: number): string => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)}G` : n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)}M` : n >= 1024 ? `${(n / 1024).toFixed(1)}K` : `${Math.round(n)}`);
const fmtRate = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
const pct = (part: number, whole: number): string => (whole === 0 ? '-' : `${((part / whole) * 100).toFixed(1)}%`);
const lookups = (c: TenantSample['cache']): number => c.hits + c.staleHits + c.misses + c.passes;

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

/** Totals since start, one row per tenant. */
export function snapshotTable(samples: readonly TenantSample[]): string {
  return table(
    ['tenant', 'requests', 'hit', 'out', 'vm p50', 'vm p99', '5xx', 'vm errors', 'evictions', 'cpu guest', 'cpu host'],
    samples.map((s) => [
      s.tenant, String(s.counters.requests), pct(s.cache.hits + s.cache.staleHits, lookups(s.cache)), fmtBytes(s.counters.bytesOut),
      fmtUs(s.vmLatency.count > 0 ? s.vmLatency.p50Us : null), fmtUs(s.vmLatency.count > 0 ? s.vmLatency.p99Us : null), String(s.counters.status5xx),
      String(s.counters.vmErrors + s.counters.vmTimeouts), String(s.cache.evictions), fmtUs(s.counters.cpuGuestUs), fmtUs(s.counters.cpuHostUs),
    ]),
  );
}

/** The shared cache's line under the table (the operator's view): how full, and its memory. */
export function storeLine(s: StoreSample): string {
  return `cache: ${fmtBytes(s.bytes)} of ${fmtBytes(s.maxBytes)} (${pct(s.bytes, s.maxBytes)}, up to ${fmtBytes(s.reservedBytes)} without a restart), ${s.objects} objects; arena ${fmtBytes(s.arenaBytes)} grown, ${fmtBytes(s.arenaUsedBytes)} in use`;
}

/** The table, and the store's line when the sample has it. */
function screenOf(table: string, sample: StatsSample): string {
  return sample.store === undefined ? table : `${table}\n\n${storeLine(sample.store)}`;
}

/** Rates between two samples `seconds` apart, one row per tenant in `now`. */
export function rateTable(now: readonly TenantSample[], before: ReadonlyMap<string, TenantSample>, seconds: number): string {
  return table(
    ['tenant', 'req/s', 'hit', 'out/s', 'vm p50', 'vm p99', '5xx/s', 'vm err/s', 'evict/s', 'guest cpu', 'host cpu'],
    now.map((s) => {
      const b = before.get(s.tenant);
      const d = (f: (x: TenantSample) => number): number => f(s) - (b === undefined ? 0 : f(b));
      const vm = bucketDelta(s.buckets.vm, b?.buckets.vm);
      return [
        s.tenant, fmtRate(d((x) => x.counters.requests) / seconds), pct(d((x) => x.cache.hits + x.cache.staleHits), d((x) => lookups(x.cache))),
        fmtBytes(d((x) => x.counters.bytesOut) / seconds), fmtUs(quantile(vm, 0.5)), fmtUs(quantile(vm, 0.99)), fmtRate(d((x) => x.counters.status5xx) / seconds),
        fmtRate(d((x) => x.counters.vmErrors + x.counters.vmTimeouts) / seconds), fmtRate(d((x) => x.cache.evictions) / seconds),
        `${((d((x) => x.counters.cpuGuestUs) / (seconds * 1e6)) * 100).toFixed(1)}%`, `${((d((x) => x.counters.cpuHostUs) / (seconds * 1e6)) * 100).toFixed(1)}%`,
      ];
    }),
  );
}

/** Prints the snapshot (`--once`) or the rates every interval until interrupted; 1 when a call fails. */
export async function stat(opts: StatOptions): Promise<number> {
  try {
    const { base, token } = adminTarget(opts);
    const sample = async (): Promise<StatsSample> => (await (await adminGet(base, token, '/v1/stats')).json()) as StatsSample;
    let before = await sample();
    if (opts.once === true) {
      process.stdout.write(`${screenOf(snapshotTable(before.tenants), before)}\n`);
      return 0;
    }
    let at = performance.now();
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, opts.interval));
      const now = await sample();
      const t = performance.now();
      const rates = rateTable(now.tenants, new Map(before.tenants.map((s) => [s.tenant, s])), (t - at) / 1000);
      const screen = `tinyedge stat  ${base}  ${new Date().toISOString().slice(11, 19)}  (every ${opts.interval / 1000}s, Ctrl-C ends)\n\n${screenOf(rates, now)}\n`;
      // A terminal gets the screen redrawn in place; a pipe gets one block per interval.
      process.stdout.write(process.stdout.isTTY ? `\x1b[H\x1b[2J${screen}` : `${screen}\n`);
      before = now;
      at = t;
    }
  } catch (err) {
    if (err instanceof AdminCallError) {
      process.stderr.write(`tinyedge stat: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
