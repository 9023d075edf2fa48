/**
 * bench/stream-window.ts's job and events, shared by its pinned child (bench/lib/window-runnel.ts);
 * tools/flink-window-bench generates the same events in Java (WindowBench.T0, EVENTS_PER_KEY_PER_WINDOW).
 */
export const WINDOW_SQL = `SELECT user_id, window_start, window_end, count(*) AS n, sum(amount) AS total
  FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`;
const T0 = Date.UTC(2024, 0, 1);
/** Events per key per one-minute window, on average. */
export const EVENTS_PER_KEY_PER_WINDOW = 10;

/** Event i of n: time advancing evenly, in order, as a live stream would arrive. */
export function windowEventTime(i: number, n: number, keys: number): number {
  return T0 + Math.floor((i / n) * (n / keys / EVENTS_PER_KEY_PER_WINDOW) * 60_000);
}
