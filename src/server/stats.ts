// Per-tenant counters and latency histograms the admin API reports. Each shard keeps its own
// (`export`); the main thread adds them up (`mergeStats`).
import { type ExportedHistogram, LatencyHistogram, type Percentiles } from './latency.ts';

export interface TenantCounters {
  requests: number;
  /** Responses by class. */
  status2xx: number;
  status3xx: number;
  status4xx: number;
  status5xx: number;
  /** Body bytes answered (the Content-Length of each response). */
  bytesOut: number;
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
  /** CPU time of the tenant's programs inside KVM_RUN, µs. */
  cpuGuestUs: number;
  /**
   * Host CPU time spent for the tenant outside KVM_RUN, µs: handling its VMs' exits (system
   * calls, hypercalls, slices' ends) and the synchronous part of its HTTP and cache work.
   */
  cpuHostUs: number;
  /** Origin exchanges that failed (refused, reset, timed out). */
  originErrors: number;
}

/** What the tenant's programs say of their VMs (ProgramPool.counters, summed). */
export type VmCounters = () => { exits: number; timerExits: number; batches: number };

const zeroCounters = (): TenantCounters => ({
  requests: 0, status2xx: 0, status3xx: 0, status4xx: 0, status5xx: 0, bytesOut: 0, vmCalls: 0, vmErrors: 0, vmTimeouts: 0, queueFull: 0,
  vmExits: 0, vmTimerExits: 0, vmBatches: 0, cpuGuestUs: 0, cpuHostUs: 0, originErrors: 0,
});

export class TenantStats {
  readonly counters: TenantCounters = zeroCounters();
  private readonly latency = new LatencyHistogram();
  private readonly vmLatency = new LatencyHistogram();
  /** VM call latency by program, and origin fetch latency (to the response head) by origin. */
  private readonly programs = new Map<string, LatencyHistogram>();
  private readonly origins = new Map<string, LatencyHistogram>();

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

  vmCall(program: string, us: number): void {
    this.counters.vmCalls++;
    this.vmLatency.record(us);
    histogramOf(this.programs, program).record(us);
  }

  originFetch(origin: string, us: number): void {
    histogramOf(this.origins, origin).record(us);
  }

  /** Counters and raw histograms, structured-cloneable, for `mergeStats` on another thread. */
  export(): ExportedStats {
    const byName = (m: Map<string, LatencyHistogram>): Record<string, ExportedHistogram> => Object.fromEntries([...m].map(([k, h]) => [k, h.export()]));
    return { counters: this.current(), latency: this.latency.export(), vmLatency: this.vmLatency.export(), programs: byName(this.programs), origins: byName(this.origins) };
  }
}

function histogramOf(m: Map<string, LatencyHistogram>, name: string): LatencyHistogram {
  let h = m.get(name);
  if (h === undefined) m.set(name, (h = new LatencyHistogram()));
  return h;
}

export interface ExportedStats {
  counters: TenantCounters;
  latency: ExportedHistogram;
  vmLatency: ExportedHistogram;
  programs: Record<string, ExportedHistogram>;
  origins: Record<string, ExportedHistogram>;
}

/** One tenant's figures over every shard. */
export interface StatsSnapshot {
  counters: TenantCounters;
  /** Since start; `histograms` has the buckets for windows of your own. */
  latency: Percentiles;
  vmLatency: Percentiles;
  histograms: MergedHistograms;
}

/** Merged histograms (not serialised as they are: the admin API shows them as `sparse()`). */
export interface MergedHistograms {
  latency: LatencyHistogram;
  vm: LatencyHistogram;
  programs: Map<string, LatencyHistogram>;
  origins: Map<string, LatencyHistogram>;
}

/** One tenant's figures over every shard: counters summed, histograms merged. */
export function mergeStats(parts: readonly ExportedStats[]): StatsSnapshot {
  const latency = new LatencyHistogram();
  const vm = new LatencyHistogram();
  const programs = new Map<string, LatencyHistogram>();
  const origins = new Map<string, LatencyHistogram>();
  const counters = sumFields([zeroCounters(), ...parts.map((p) => p.counters)]);
  for (const p of parts) {
    latency.merge(p.latency);
    vm.merge(p.vmLatency);
    for (const [k, h] of Object.entries(p.programs)) histogramOf(programs, k).merge(h);
    for (const [k, h] of Object.entries(p.origins)) histogramOf(origins, k).merge(h);
  }
  return { counters, latency: latency.percentiles(), vmLatency: vm.percentiles(), histograms: { latency, vm, programs, origins } };
}

/** Field-by-field sums of records of numbers (counters of one kind from every shard). */
export function sumFields<T extends object>(parts: readonly T[]): T {
  const out: Record<string, number> = {};
  for (const p of parts) for (const [k, v] of Object.entries(p)) out[k] = (out[k] ?? 0) + (v as number);
  return out as T;
}
