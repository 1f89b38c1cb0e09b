/**
 * A fixed-size log-linear latency histogram (HDR-style): values are whole
 * microseconds from 0 to 60 s; below 256 µs every value has its own bucket,
 * above that each power of two is split into 128 equal buckets, so a bucket
 * is at most 1/128 (< 0.8%) of its value wide. Recording never allocates,
 * and two histograms merge by adding their bucket counts (sent as plain
 * arrays over IPC).
 */

const SUB_BITS = 8;
const SUB_COUNT = 1 << SUB_BITS; // 256 exact buckets at the bottom
const HALF = SUB_COUNT >> 1; // 128 buckets per power of two above that
/** Largest recordable value: 60 s in µs; larger values are clamped to it. */
export const HISTOGRAM_MAX_US = 60_000_000;

function indexOf(us: number): number {
  if (us < SUB_COUNT) return us;
  // shift so that (us >> shift) lands in [HALF, SUB_COUNT)
  const shift = 31 - Math.clz32(us) - (SUB_BITS - 1);
  return SUB_COUNT + (shift - 1) * HALF + ((us >>> shift) - HALF);
}

/** Number of buckets a histogram holds (the length of `counts`). */
export const HISTOGRAM_BUCKETS = indexOf(HISTOGRAM_MAX_US) + 1;

/** The [low, high) value range of bucket `index`, in µs. */
function bucketRange(index: number): [number, number] {
  if (index < SUB_COUNT) return [index, index + 1];
  const rel = index - SUB_COUNT;
  const shift = Math.floor(rel / HALF) + 1;
  const low = (HALF + (rel % HALF)) * 2 ** shift;
  return [low, low + 2 ** shift];
}

export class Histogram {
  readonly counts = new Float64Array(HISTOGRAM_BUCKETS);
  total = 0;
  maxUs = 0;

  /** Adds a value in microseconds (rounded, clamped to 0..60 s), `count` times (default once). */
  record(us: number, count = 1): void {
    let v = Math.round(us);
    if (v < 0) v = 0;
    else if (v > HISTOGRAM_MAX_US) v = HISTOGRAM_MAX_US;
    this.counts[indexOf(v)]! += count;
    this.total += count;
    if (v > this.maxUs) this.maxUs = v;
  }

  /** Adds another histogram's bucket counts (e.g. received over IPC) and its max. */
  merge(counts: ArrayLike<number>, maxUs: number): void {
    let added = 0;
    for (let i = 0; i < HISTOGRAM_BUCKETS; i++) {
      const c = counts[i] ?? 0;
      if (c !== 0) {
        this.counts[i]! += c;
        added += c;
      }
    }
    this.total += added;
    if (maxUs > this.maxUs) this.maxUs = maxUs;
  }

  /**
   * The value (µs) at quantile `q` in [0, 1]: the midpoint of the bucket that
   * holds the ceil(q × total)-th smallest value, never above the exact max.
   * Returns 0 for an empty histogram.
   */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < HISTOGRAM_BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const [low, high] = bucketRange(i);
        const mid = high - low === 1 ? low : (low + high) / 2;
        return Math.min(mid, this.maxUs);
      }
    }
    return this.maxUs;
  }

  /** Clears every count. */
  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.maxUs = 0;
  }
}
