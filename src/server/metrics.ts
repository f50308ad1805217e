// Prometheus metrics for the admin API's /metrics: every tenant's counters, cache, VM, origin and
// key-value numbers, summed over every shard at scrape time, latencies as histograms (by tenant,
// by program, by origin), the shared cache as a whole and the process's own metrics (prom-client,
// the ecosystem's standard exposition library). A tenant's token scrapes its own series only.
import { collectDefaultMetrics, Counter, Gauge, type Metric, Registry } from 'prom-client';
import type { StoreStats } from '../cache/index.ts';
import type { LatencyHistogram } from './latency.ts';
import type { EdgeServer, TenantStatsReport } from './server.ts';

/** One tenant's figures as a scrape reads them. */
interface TenantView extends TenantStatsReport {
  name: string;
  origins: Array<{ name: string; healthy: boolean }>;
}

/** Bucket bounds of the latency histograms, seconds. */
const BOUNDS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BOUNDS_US = BOUNDS_S.map((s) => s * 1e6);

/**
 * A Prometheus histogram read from our own latency histograms at scrape time (prom-client's
 * Histogram only counts what it observes itself): `_bucket` per bound, `_sum`, `_count`.
 */
function histogramMetric(registry: Registry, name: string, help: string, series: () => Array<{ labels: Record<string, string>; h: LatencyHistogram }>): void {
  const metric = {
    name, help, type: 'histogram', aggregator: 'sum',
    get() {
      const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
      for (const { labels, h } of series()) {
        const cumulative = h.cumulative(BOUNDS_US);
        BOUNDS_S.forEach((le, i) => values.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative[i]! }));
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: h.count });
        values.push({ metricName: `${name}_sum`, labels, value: h.sumUs / 1e6 });
        values.push({ metricName: `${name}_count`, labels, value: h.count });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
    reset() {},
  };
  registry.registerMetric(metric as unknown as Metric);
}

/**
 * A registry filled from `server` on every scrape, and the scrape itself (`scrape(tenant)`: the
 * text; `tenant` null for the operator, who also gets the process metrics).
 */
export function metricsRegistry(server: EdgeServer): { scrape(tenant: string | null): Promise<string>; contentType: string } {
  const registry = new Registry();
  const processRegistry = new Registry();
  collectDefaultMetrics({ register: processRegistry, prefix: 'tinyedge_' });
  // Gathered from every shard once per scrape, then read by each metric's collect().
  let views: TenantView[] = [];
  /** The shared cache's figures, read once per operator's scrape. */
  let store: StoreStats | undefined;
  let scraping: Promise<unknown> = Promise.resolve();
  const tenants = (): TenantView[] => views;

  // Counters we keep ourselves are exposed as counters: reset, then set to the running total.
  const counter = (name: string, help: string, read: (t: TenantView) => number): void => {
    const metric: Counter<string> = new Counter({
      name, help, labelNames: ['tenant'], registers: [registry],
      collect() {
        metric.reset();
        for (const t of tenants()) metric.inc({ tenant: t.name }, read(t));
      },
    });
  };
  const gauge = (name: string, help: string, read: (t: TenantView) => number): void => {
    const metric: Gauge<string> = new Gauge({
      name, help, labelNames: ['tenant'], registers: [registry],
      collect() {
        metric.reset();
        for (const t of tenants()) metric.set({ tenant: t.name }, read(t));
      },
    });
  };
  counter('tinyedge_requests_total', 'Requests answered, by tenant', (t) => t.counters.requests);
  const byClass = new Counter({
    name: 'tinyedge_responses_total', help: 'Responses by status class', labelNames: ['tenant', 'class'], registers: [registry],
    collect() {
      byClass.reset();
      for (const t of tenants()) {
        const c = t.counters;
        for (const [cls, n] of [['2xx', c.status2xx], ['3xx', c.status3xx], ['4xx', c.status4xx], ['5xx', c.status5xx]] as const) byClass.inc({ tenant: t.name, class: cls }, n);
      }
    },
  });
  counter('tinyedge_response_bytes_total', 'Body bytes answered', (t) => t.counters.bytesOut);
  counter('tinyedge_cache_hits_total', 'Cache hits (fresh)', (t) => t.cache.hits);
  counter('tinyedge_cache_fast_hits_total', 'Cache hits answered by the raw fast path', (t) => t.cache.fastHits);
  counter('tinyedge_cache_fast_fetches_total', 'Misses and passes a program answered on the raw fast path', (t) => t.cache.fastFetches);
  counter('tinyedge_cache_stale_hits_total', 'Stale objects served (grace, stale-if-error)', (t) => t.cache.staleHits);
  counter('tinyedge_cache_misses_total', 'Cache misses', (t) => t.cache.misses);
  counter('tinyedge_cache_passes_total', 'Requests passed to the backend uncached', (t) => t.cache.passes);
  counter('tinyedge_cache_fetch_errors_total', 'Failed backend fetches', (t) => t.cache.fetchErrors);
  counter('tinyedge_cache_evictions_total', 'Objects evicted for room (all tenants share this count)', (t) => t.cache.evictions);
  gauge('tinyedge_cache_objects', 'Objects stored', (t) => t.cache.objects);
  gauge('tinyedge_cache_bytes', 'Bytes stored', (t) => t.cache.bytes);
  counter('tinyedge_vm_calls_total', 'Requests that entered a tenant program', (t) => t.counters.vmCalls);
  counter('tinyedge_vm_errors_total', 'Program faults and bad responses', (t) => t.counters.vmErrors);
  counter('tinyedge_vm_timeouts_total', 'Program time limits hit', (t) => t.counters.vmTimeouts);
  counter('tinyedge_vm_queue_full_total', 'Requests refused with 503: no free instance in time', (t) => t.counters.queueFull);
  counter('tinyedge_cpu_guest_seconds_total', "CPU time of the tenant's programs inside KVM_RUN", (t) => t.counters.cpuGuestUs / 1e6);
  counter('tinyedge_cpu_host_seconds_total', "Host CPU time for the tenant outside KVM_RUN: its VMs' exits and its requests' HTTP and cache work", (t) => t.counters.cpuHostUs / 1e6);
  counter('tinyedge_origin_errors_total', 'Origin exchanges that failed (refused, reset, timed out)', (t) => t.counters.originErrors);
  gauge('tinyedge_kv_bytes', 'Key-value store bytes in use', (t) => t.kv.bytes);
  const health = new Gauge({
    name: 'tinyedge_origin_healthy', help: "1 while the origin's health check passes (or it has none), else 0", labelNames: ['tenant', 'origin'], registers: [registry],
    collect() {
      health.reset();
      for (const t of tenants()) for (const o of t.origins) health.set({ tenant: t.name, origin: o.name }, o.healthy ? 1 : 0);
    },
  });
  // The shared cache as a whole, for the operator: one store for every tenant and shard, read from
  // shared memory at scrape time (Varnish's SMA.*.g_bytes / g_space, with the arena's memory).
  const storeGauges: Array<[string, string, (s: StoreStats) => number]> = [
    ['tinyedge_cache_store_objects', 'Objects in the shared cache, all tenants', (s) => s.objects],
    ['tinyedge_cache_store_bytes', "Bytes the shared cache's objects are charged, all tenants (what the budget counts)", (s) => s.bytes],
    ['tinyedge_cache_store_budget_bytes', "The shared cache's budget: the tenants' cache memory added up", (s) => s.maxBytes],
    ['tinyedge_cache_store_reserved_bytes', 'The most the budget may grow to without a restart (server.cacheMaxMemory)', (s) => s.reservedBytes],
    ['tinyedge_cache_store_arena_bytes', "Memory the cache's arena has grown to (its objects, their fragments; the most of it that can be resident)", (s) => s.arenaBytes],
    ['tinyedge_cache_store_arena_used_bytes', "The arena's blocks in use: live objects and those a reader still holds", (s) => s.arenaUsedBytes],
    ['tinyedge_cache_store_arena_limit_bytes', 'The most the arena may grow to (address space reserved at start)', (s) => s.arenaMaxBytes],
  ];
  for (const [name, help, read] of storeGauges) {
    const metric: Gauge = new Gauge({ name, help, registers: [processRegistry], collect() { if (store) metric.set(read(store)); } });
  }
  // The live request log, for the operator: its streams, and what it lost (observability.md).
  const liveReaders: Gauge = new Gauge({
    name: 'tinyedge_live_log_readers', help: 'Live log streams open (admin API, dashboard, tinyedge log)', registers: [processRegistry],
    collect() {
      liveReaders.set(server.liveLog.readerCount);
    },
  });
  const liveDropped: Counter<string> = new Counter({
    name: 'tinyedge_live_log_dropped_records_total',
    help: "Records the live log lost: behind (the log thread fell behind; once each), reader (a reader could not take them; once per reader), access_log",
    labelNames: ['reason'], registers: [processRegistry],
    collect() {
      liveDropped.reset();
      const d = server.liveLog.dropped;
      liveDropped.inc({ reason: 'behind' }, d.behind);
      liveDropped.inc({ reason: 'reader' }, d.readers);
      liveDropped.inc({ reason: 'access_log' }, d.accessLog);
    },
  });
  histogramMetric(registry, 'tinyedge_request_duration_seconds', 'Request latency, arrival to the last byte written', () => tenants().map((t) => ({ labels: { tenant: t.name }, h: t.histograms.latency })));
  histogramMetric(registry, 'tinyedge_vm_call_duration_seconds', 'Program call latency (a request, a recv or deliver hook), by program', () =>
    tenants().flatMap((t) => [...t.histograms.programs].map(([program, h]) => ({ labels: { tenant: t.name, program }, h }))));
  histogramMetric(registry, 'tinyedge_origin_fetch_duration_seconds', "Origin latency to the response's head, by origin", () =>
    tenants().flatMap((t) => [...t.histograms.origins].map(([origin, h]) => ({ labels: { tenant: t.name, origin }, h }))));
  return {
    contentType: registry.contentType,
    // One scrape at a time: each fills `views`, then the registry reads them.
    scrape(tenant) {
      const run = scraping.then(async () => {
        const names = tenant === null ? [...server.tenants.keys()] : [tenant];
        views = await Promise.all(names.map(async (name) => ({
          name,
          ...(await server.tenantStats(name)),
          origins: [...(server.tenants.get(name)?.origins ?? [])].map(([o, origin]) => ({ name: o, healthy: origin.healthy })),
        })));
        if (tenant === null) store = server.cacheStoreStats();
        const ours = await registry.metrics();
        return tenant === null ? `${ours}\n${await processRegistry.metrics()}` : ours;
      });
      scraping = run.catch(() => '');
      return run;
    },
  };
}
