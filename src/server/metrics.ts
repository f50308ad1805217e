// Prometheus metrics for the admin API's /metrics: every tenant's counters, cache, VM and
// key-value numbers, read from the live runtimes at scrape time (prom-client, the ecosystem's
// standard exposition library).
import { Counter, Gauge, Registry } from 'prom-client';
import type { EdgeServer } from './server.ts';
import type { TenantRuntime } from './tenant.ts';

/** A registry whose metrics are filled from `server` on every scrape. */
export function metricsRegistry(server: EdgeServer): Registry {
  const registry = new Registry();
  const tenants = (): TenantRuntime[] => [...server.tenants.values()];

  // Counters we keep ourselves are exposed as counters: reset, then set to the running total.
  const counter = (name: string, help: string, read: (t: TenantRuntime) => number): void => {
    const metric: Counter<string> = new Counter({
      name, help, labelNames: ['tenant'], registers: [registry],
      collect() {
        metric.reset();
        for (const t of tenants()) metric.inc({ tenant: t.name }, read(t));
      },
    });
  };
  const gauge = (name: string, help: string, read: (t: TenantRuntime) => number): void => {
    const metric: Gauge<string> = new Gauge({
      name, help, labelNames: ['tenant'], registers: [registry],
      collect() {
        metric.reset();
        for (const t of tenants()) metric.set({ tenant: t.name }, read(t));
      },
    });
  };
  counter('tinyedge_requests_total', 'Requests answered, by tenant', (t) => t.stats.counters.requests);
  const byClass = new Counter({
    name: 'tinyedge_responses_total', help: 'Responses by status class', labelNames: ['tenant', 'class'], registers: [registry],
    collect() {
      byClass.reset();
      for (const t of tenants()) {
        const c = t.stats.counters;
        for (const [cls, n] of [['2xx', c.status2xx], ['3xx', c.status3xx], ['4xx', c.status4xx], ['5xx', c.status5xx]] as const) byClass.inc({ tenant: t.name, class: cls }, n);
      }
    },
  });
  counter('tinyedge_cache_hits_total', 'Cache hits (fresh)', (t) => t.cache.stats().hits);
  counter('tinyedge_cache_fast_hits_total', 'Cache hits answered by the raw fast path', (t) => t.cache.stats().fastHits);
  counter('tinyedge_cache_stale_hits_total', 'Stale objects served (grace, stale-if-error)', (t) => t.cache.stats().staleHits);
  counter('tinyedge_cache_misses_total', 'Cache misses', (t) => t.cache.stats().misses);
  counter('tinyedge_cache_passes_total', 'Requests passed to the backend uncached', (t) => t.cache.stats().passes);
  counter('tinyedge_cache_fetch_errors_total', 'Failed backend fetches', (t) => t.cache.stats().fetchErrors);
  counter('tinyedge_cache_evictions_total', 'Objects evicted for room (all tenants share this count)', (t) => t.cache.stats().evictions);
  gauge('tinyedge_cache_objects', 'Objects stored', (t) => t.cache.stats().objects);
  gauge('tinyedge_cache_bytes', 'Bytes stored', (t) => t.cache.stats().bytes);
  counter('tinyedge_vm_calls_total', 'Requests that entered a tenant program', (t) => t.stats.counters.vmCalls);
  counter('tinyedge_vm_errors_total', 'Program faults and bad responses', (t) => t.stats.counters.vmErrors);
  counter('tinyedge_vm_timeouts_total', 'Program time limits hit', (t) => t.stats.counters.vmTimeouts);
  counter('tinyedge_vm_queue_full_total', 'Requests refused with 503: no free instance in time', (t) => t.stats.counters.queueFull);
  gauge('tinyedge_kv_bytes', 'Key-value store bytes in use', (t) => t.kv.stats().bytes);
  const latency = new Gauge({
    name: 'tinyedge_request_latency_microseconds', help: 'Request latency percentiles since start', labelNames: ['tenant', 'quantile'], registers: [registry],
    collect() {
      latency.reset();
      for (const t of tenants()) {
        const p = t.stats.snapshot().latency;
        latency.set({ tenant: t.name, quantile: '0.5' }, p.p50Us);
        latency.set({ tenant: t.name, quantile: '0.9' }, p.p90Us);
        latency.set({ tenant: t.name, quantile: '0.99' }, p.p99Us);
      }
    },
  });
  return registry;
}
