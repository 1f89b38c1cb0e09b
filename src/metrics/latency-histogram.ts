/**
 * A fixed-bucket histogram of durations kept as plain numbers, so the hot
 * path (one broadcast, one flush of a send queue) pays a short scan of a
 * dozen bounds and three additions, never an allocation or a label lookup.
 * The Prometheus exposition reads it at scrape time (src/metrics/prometheus.ts).
 */

/** Bucket upper bounds (seconds) of the broadcast fan-out histogram: 50 µs to 1 s. */
export const FANOUT_BUCKETS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

/** Bucket upper bounds (seconds) of the send-queue delay histogram: 1 ms to 10 s. */
export const QUEUE_DELAY_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Observed durations in fixed buckets (cumulated only when read). */
export class LatencyHistogram {
  /** Upper bounds in seconds, ascending. */
  readonly bounds: Float64Array;
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly counts: Float64Array;
  /** Sum of every observed value, in seconds. */
  sum = 0;
  /** Number of observations. */
  count = 0;

  /** Takes ascending, distinct, positive finite upper bounds (seconds). */
  constructor(bounds: readonly number[]) {
    for (let i = 0; i < bounds.length; i++) {
      const b = bounds[i]!;
      if (!Number.isFinite(b) || b <= 0 || (i > 0 && b <= bounds[i - 1]!))
        throw new RangeError('histogram bounds must be ascending positive finite numbers');
    }
    this.bounds = Float64Array.from(bounds);
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Records one duration in seconds (`n` equal observations when given). */
  observe(seconds: number, n = 1): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    this.counts[i]! += n;
    this.sum += seconds * n;
    this.count += n;
  }

  /** Cumulative counts per upper bound, the last one for +Inf (the Prometheus `le` buckets). */
  cumulative(): number[] {
    const out: number[] = [];
    let acc = 0;
    for (const c of this.counts) out.push((acc += c));
    return out;
  }
}
