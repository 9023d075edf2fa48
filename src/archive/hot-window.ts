/**
 * The hot window: how long a stream's rows stay in the analytics hot tier (DuckDB), by event
 * time, before the archiver moves them to Parquet files (docs/storage.md).
 *
 * Seven days by default: the seed's questions look back a day ("sum over the last 24 hours"), a
 * week-over-week comparison back seven, and both then stay on the tier that answers in
 * milliseconds, while the hot table stops growing with the stream's age (Pinot's and Druid's
 * real-time tables keep a few days for the same reason).
 */
export const DEFAULT_HOT_MS = 7 * 86_400_000;
/** Shorter windows would write a file every interval for little gain. */
export const MIN_HOT_MS = 60_000;
/** Ten years: longer is no window. */
export const MAX_HOT_MS = 3650 * 86_400_000;
/** A hundred years: archive retention beyond that is none. */
export const MAX_ARCHIVE_MS = 36_500 * 86_400_000;

export function hotWindowOf(stream: { readonly hotMs?: number }): number {
  return stream.hotMs ?? DEFAULT_HOT_MS;
}
