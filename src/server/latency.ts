// Latency percentiles without keeping samples: a histogram with logarithmic buckets (about 4%
// wide) from 1 µs to ~100 s, so p50/p90/p99 cost O(buckets) to read and O(1) to record.

const BUCKETS_PER_DOUBLING = 16;
const MAX_BUCKET = 27 * BUCKETS_PER_DOUBLING;

export interface Percentiles {
  count: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
}

export class LatencyHistogram {
  private readonly buckets = new Uint32Array(MAX_BUCKET + 1);
  private total = 0;

  record(us: number): void {
    const bucket = us <= 1 ? 0 : Math.min(MAX_BUCKET, Math.floor(Math.log2(us) * BUCKETS_PER_DOUBLING));
    this.buckets[bucket]!++;
    this.total++;
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

  /** The bucket counts, to merge with other threads' histograms (`merge`). */
  counts(): number[] {
    return Array.from(this.buckets);
  }

  /** Adds another histogram's bucket counts (`counts()`) to this one. */
  merge(counts: readonly number[]): void {
    for (let b = 0; b <= MAX_BUCKET && b < counts.length; b++) {
      this.buckets[b]! += counts[b]!;
      this.total += counts[b]!;
    }
  }

  percentiles(): Percentiles {
    return { count: this.total, p50Us: this.quantile(0.5), p90Us: this.quantile(0.9), p99Us: this.quantile(0.99) };
  }
}
