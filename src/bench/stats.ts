/** Small statistics helpers shared by the bench phases. */

/** Nearest-rank percentile (0-100) of unsorted samples; 0 when empty (same rule as LatencyWindow). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return 0;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export interface P50P99 {
  p50: number;
  p99: number;
}

export function p50p99(samples: readonly number[]): P50P99 {
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

/** Rounds for reports: enough digits to compare runs, not noise. */
export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
