// Per-tenant counters and latency percentiles the admin API reports. Each shard keeps its own
// (`export`); the main thread adds them up (`mergeStats`).
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
  /**
   * VM exits of the instances of the program versions serving now (all; the timer's among them),
   * and the batches of several requests they ran: exits per VM call is what batching lowers.
   */
  vmExits: number;
  vmTimerExits: number;
  vmBatches: number;
}

/** What the tenant's programs say of their VMs (ProgramPool.counters, summed). */
export type VmCounters = () => { exits: number; timerExits: number; batches: number };

export class TenantStats {
  readonly counters: TenantCounters = { requests: 0, status2xx: 0, status3xx: 0, status4xx: 0, status5xx: 0, vmCalls: 0, vmErrors: 0, vmTimeouts: 0, queueFull: 0, vmExits: 0, vmTimerExits: 0, vmBatches: 0 };
  private readonly latency = new LatencyHistogram();
  private readonly vmLatency = new LatencyHistogram();

  /** `vm`: read when the counters are, for the VM exit counters. */
  constructor(private readonly vm?: VmCounters) {}

  /** The counters, the VM exit counters read now. */
  private current(): TenantCounters {
    const vm = this.vm?.();
    return vm === undefined ? { ...this.counters } : { ...this.counters, vmExits: vm.exits, vmTimerExits: vm.timerExits, vmBatches: vm.batches };
  }

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

  snapshot(): StatsSnapshot {
    return { counters: this.current(), latency: this.latency.percentiles(), vmLatency: this.vmLatency.percentiles() };
  }

  /** Counters and raw histograms, structured-cloneable, for `mergeStats` on another thread. */
  export(): ExportedStats {
    return { counters: this.current(), latency: this.latency.counts(), vmLatency: this.vmLatency.counts() };
  }
}

export interface StatsSnapshot {
  counters: TenantCounters;
  latency: Percentiles;
  vmLatency: Percentiles;
}

export interface ExportedStats {
  counters: TenantCounters;
  latency: number[];
  vmLatency: number[];
}

/** One tenant's figures over every shard: counters summed, percentiles of the merged histograms. */
export function mergeStats(parts: readonly ExportedStats[]): StatsSnapshot {
  const latency = new LatencyHistogram();
  const vmLatency = new LatencyHistogram();
  const counters = sumFields(parts.map((p) => p.counters));
  for (const p of parts) {
    latency.merge(p.latency);
    vmLatency.merge(p.vmLatency);
  }
  return { counters, latency: latency.percentiles(), vmLatency: vmLatency.percentiles() };
}

/** Field-by-field sums of records of numbers (counters of one kind from every shard). */
export function sumFields<T extends object>(parts: readonly T[]): T {
  const out: Record<string, number> = {};
  for (const p of parts) for (const [k, v] of Object.entries(p)) out[k] = (out[k] ?? 0) + (v as number);
  return out as T;
}
