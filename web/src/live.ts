/**
 * Rates and quantiles from two cumulative readings of GET /api/v1/stats, the way Prometheus'
 * `rate()` and `histogram_quantile()` derive them from counters and buckets. Pure functions, so
 * they are tested without a browser (test/web/live.test.ts).
 */
import type { Histogram } from "./types.js";

/** Per-second increase of a counter between two readings; a restart (counter went down) counts from zero. */
export function rate(before: number | undefined, after: number | undefined, seconds: number): number {
  if (after === undefined || seconds <= 0) return 0;
  const base = before === undefined || after < before ? 0 : before;
  return (after - base) / seconds;
}

/**
 * The q-quantile (0..1) of the observations made between two readings of a cumulative histogram,
 * interpolated linearly inside the bucket as histogram_quantile() does. Null when nothing was
 * observed; the highest finite bound when the quantile falls in +Inf.
 */
export function quantile(q: number, before: Histogram | undefined, after: Histogram): number | null {
  const prev = new Map(before?.buckets ?? []);
  const reset = before !== undefined && after.count < before.count;
  const count = after.count - (reset || before === undefined ? 0 : before.count);
  if (count <= 0) return null;
  const rank = q * count;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, cumulative] of after.buckets) {
    const n = cumulative - (reset ? 0 : (prev.get(le) ?? 0));
    if (n >= rank) {
      const inBucket = n - lowerCount;
      if (inBucket <= 0) return le;
      return lowerBound + ((le - lowerBound) * (rank - lowerCount)) / inBucket;
    }
    lowerBound = le;
    lowerCount = n;
  }
  return lowerBound;
}

/** A bounded series of points for a live chart: oldest dropped first. */
export class Ring {
  readonly times: number[] = [];
  readonly series = new Map<string, Array<number | null>>();

  constructor(readonly capacity: number) {}

  /** Appends one instant; series missing from `values` get null, new series are back-filled with null. */
  push(time: number, values: ReadonlyMap<string, number | null>): void {
    for (const [name] of values) {
      if (!this.series.has(name))
        this.series.set(
          name,
          this.times.map(() => null),
        );
    }
    this.times.push(time);
    for (const [name, points] of this.series) points.push(values.get(name) ?? null);
    if (this.times.length > this.capacity) {
      this.times.shift();
      for (const points of this.series.values()) points.shift();
    }
  }
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatSeconds(s: number | null): string {
  if (s === null) return "–";
  if (s < 0.001) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1000).toFixed(1)} ms`;
  return `${s.toFixed(2)} s`;
}
