// Latency percentiles without keeping samples: a histogram with logarithmic buckets (about 4%
// wide) from 1 µs to ~100 s, so p50/p90/p99 cost O(buckets) to read and O(1) to record. Its
// buckets also feed Prometheus histograms (`cumulative`) and windowed percentiles (`sparse`).

const BUCKETS_PER_DOUBLING = 16;
const MAX_BUCKET = 27 * BUCKETS_PER_DOUBLING;

export interface Percentiles {
  count: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
}

/** A histogram's buckets as another thread gets them: counts by bucket, and the sum recorded. */
export interface ExportedHistogram {
  counts: number[];
  sumUs: number;
}

/** The upper bound of bucket `b`, µs. */
export const bucketUpperUs = (b: number): number => 2 ** ((b + 1) / BUCKETS_PER_DOUBLING);

export class LatencyHistogram {
  private readonly buckets = new Uint32Array(MAX_BUCKET + 1);
  private total = 0;
  private sum = 0;

  record(us: number): void {
    const bucket = us <= 1 ? 0 : Math.min(MAX_BUCKET, Math.floor(Math.log2(us) * BUCKETS_PER_DOUBLING));
    this.buckets[bucket]!++;
    this.total++;
    this.sum += us;
  }

  get count(): number {
    return this.total;
  }

  get sumUs(): number {
    return this.sum;
  }

  /** The upper bound of the bucket holding the q-th quantile. */
  private quantile(q: number): number {
    if (this.total === 0) return 0;
    const target = Math.ceil(q * this.total);
    let seen = 0;
    for (let b = 0; b <= MAX_BUCKET; b++) {
      seen += this.buckets[b]!;
      if (seen >= target) return Math.round(2 ** ((b + 1) / BUCKETS_PER_DOUBLING));
    }
    return Math.round(2 ** ((MAX_BUCKET + 1) / BUCKETS_PER_DOUBLING));
  }

  /** The bucket counts and sum, to merge with other threads' histograms (`merge`). */
  export(): ExportedHistogram {
    return { counts: Array.from(this.buckets), sumUs: this.sum };
  }

  /** Adds another histogram (`export()`) to this one. */
  merge(h: ExportedHistogram): void {
    const counts = h.counts;
    for (let b = 0; b <= MAX_BUCKET && b < counts.length; b++) {
      this.buckets[b]! += counts[b]!;
      this.total += counts[b]!;
    }
    this.sum += h.sumUs;
  }

  /** How many were recorded at or below each bound of `boundsUs` (ascending): a Prometheus histogram's buckets. */
  cumulative(boundsUs: readonly number[]): number[] {
    const out = new Array<number>(boundsUs.length).fill(0);
    for (let b = 0; b <= MAX_BUCKET; b++) {
      const n = this.buckets[b]!;
      if (n === 0) continue;
      // A bucket counts under the first bound that holds all of it (its upper end).
      const upper = bucketUpperUs(b);
      for (let i = 0; i < boundsUs.length; i++) if (upper <= boundsUs[i]! * 1.000001) out[i]! += n;
    }
    return out;
  }

  /** The non-empty buckets as [upper bound µs, count] pairs: what a client needs for windowed percentiles. */
  sparse(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let b = 0; b <= MAX_BUCKET; b++) if (this.buckets[b]! > 0) out.push([Math.round(bucketUpperUs(b)), this.buckets[b]!]);
    return out;
  }

  percentiles(): Percentiles {
    return { count: this.total, p50Us: this.quantile(0.5), p90Us: this.quantile(0.9), p99Us: this.quantile(0.99) };
  }
}
