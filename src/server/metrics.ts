// Prometheus metrics for the admin API's /metrics: every tenant's counters, cache, VM and
// key-value numbers, summed over every shard at scrape time (prom-client, the ecosystem's
// standard exposition library).
import { Counter, Gauge, Registry } from 'prom-client';
import type { EdgeServer, TenantStatsReport } from './server.ts';

/** One tenant's figures as a scrape reads them. */
interface TenantView extends TenantStatsReport {
  name: string;
}

/** A registry filled from `server` on every scrape, and the scrape itself (`scrape()`: the text). */
export function metricsRegistry(server: EdgeServer): { scrape(): Promise<string>; contentType: string } {
  const registry = new Registry();
  // Gathered from every shard once per scrape, then read by each metric's collect().
  let views: TenantView[] = [];
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
  counter('tinyedge_cache_hits_total', 'Cache hits (fresh)', (t) => t.cache.hits);
  counter('tinyedge_cache_fast_hits_total', 'Cache hits answered by the raw fast path', (t) => t.cache.fastHits);
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
  gauge('tinyedge_kv_bytes', 'Key-value store bytes in use', (t) => t.kv.bytes);
  const latency = new Gauge({
    name: 'tinyedge_request_latency_microseconds', help: 'Request latency percentiles since start', labelNames: ['tenant', 'quantile'], registers: [registry],
    collect() {
      latency.reset();
      for (const t of tenants()) {
        const p = t.latency;
        latency.set({ tenant: t.name, quantile: '0.5' }, p.p50Us);
        latency.set({ tenant: t.name, quantile: '0.9' }, p.p90Us);
        latency.set({ tenant: t.name, quantile: '0.99' }, p.p99Us);
      }
    },
  });
  return {
    contentType: registry.contentType,
    // One scrape at a time: each fills `views`, then the registry reads them.
    scrape() {
      const run = scraping.then(async () => {
        views = await Promise.all([...server.tenants.keys()].map(async (name) => ({ name, ...(await server.tenantStats(name)) })));
        return registry.metrics();
      });
      scraping = run.catch(() => '');
      return run;
    },
  };
}
