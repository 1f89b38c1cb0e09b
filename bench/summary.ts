/**
 * Small numeric helpers shared by the orchestrator and the report: the
 * median with its min–max range over repeated runs, and compact number
 * formatting for tables.
 */

/** Median and range of repeated measurements of one quantity. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  /** The individual runs, in the order they were measured. */
  values: number[];
}

/**
 * Summarises repeated runs: median (mean of the two middle values for an
 * even count), min and max. Non-finite values are ignored; an empty input
 * gives NaN everywhere so a missing measurement cannot pass for zero.
 */
export function summarize(values: readonly number[]): Summary {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return { median: NaN, min: NaN, max: NaN, values: [...values] };
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, values: [...values] };
}

/** Formats a count or rate with k/M suffixes and about three significant digits ("1.23 M"). */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return '–';
  const abs = Math.abs(n);
  if (abs >= 1e6) return `${trim(n / 1e6)} M`;
  if (abs >= 1e4) return `${trim(n / 1e3)} k`;
  if (abs >= 100) return String(Math.round(n));
  return trim(n);
}

/** Three significant digits at most, without trailing zeros. */
function trim(n: number): string {
  const abs = Math.abs(n);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return String(Number(n.toFixed(digits)));
}

/** Formats a byte count as B, KB or MB (10^3 multiples, as RSS per connection is quoted). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '–';
  const abs = Math.abs(n);
  if (abs >= 1e6) return `${trim(n / 1e6)} MB`;
  if (abs >= 1e3) return `${trim(n / 1e3)} KB`;
  return `${Math.round(n)} B`;
}

/**
 * "median (min–max)" with the given formatter; a single run shows only the
 * value, and equal bounds collapse too.
 */
export function formatSummary(s: Summary, format: (n: number) => string = formatNumber): string {
  if (!Number.isFinite(s.median)) return '–';
  if (s.values.length <= 1 || s.min === s.max) return format(s.median);
  return `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
}

/** A ratio as "1.3×" (two significant digits below 10), "–" when undefined. */
export function formatRatio(ratio: number): string {
  if (!Number.isFinite(ratio) || ratio <= 0) return '–';
  return ratio >= 10 ? `${Math.round(ratio)}×` : `${Number(ratio.toPrecision(2))}×`;
}
