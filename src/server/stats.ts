// Per-tenant counters and latency percentiles the admin API reports.
import { LatencyHistogram, type Percentiles } from './latency.ts';

export interface TenantCounters {
  requests: number;
  /** Responses by class. */
  status2xx: number;
  status3xx: number;
  status4xx: number;
  status5xx: number;
  vmCalls: number;
  vmErrors: number;
  vmTimeouts: number;
  queueFull: number;
}

export class TenantStats {
  readonly counters: TenantCounters = { requests: 0, status2xx: 0, status3xx: 0, status4xx: 0, status5xx: 0, vmCalls: 0, vmErrors: 0, vmTimeouts: 0, queueFull: 0 };
  private readonly latency = new LatencyHistogram();
  private readonly vmLatency = new LatencyHistogram();

  response(status: number, us: number): void {
    const c = this.counters;
    c.requests++;
    if (status < 300) c.status2xx++;
    else if (status < 400) c.status3xx++;
    else if (status < 500) c.status4xx++;
    else c.status5xx++;
    this.latency.record(us);
  }

  vmCall(us: number): void {
    this.counters.vmCalls++;
    this.vmLatency.record(us);
  }

  snapshot(): { counters: TenantCounters; latency: Percentiles; vmLatency: Percentiles } {
    return { counters: { ...this.counters }, latency: this.latency.percentiles(), vmLatency: this.vmLatency.percentiles() };
  }
}
