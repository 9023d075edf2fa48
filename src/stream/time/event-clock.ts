/**
 * How far one record moves its partition's event time, given when the log took it. Partitions
 * hold many users' events, so one user's timestamps must not decide every other user's lateness:
 * - a record stamped at or before its append time moves time to its timestamp (Flink's rule);
 * - one stamped ahead, but within MAX_FUTURE_MS, moves time only to its append time (a client
 *   whose clock runs fast cannot push time past the log's own);
 * - one stamped further ahead (9999-12-31) moves nothing: its time says nothing about progress.
 * In every case the record itself is processed at its own timestamp: it waits in its window or in
 * a rule's buffer until time reaches it.
 *
 * The append time is the local log's stamp, or a Kafka record's ingest-time header (its broker
 * timestamp when another writer left none out).
 */

/**
 * As far ahead of the log's clock as a timestamp may be and still count as a fast clock: Apache
 * Kafka 4's default `message.timestamp.after.max.ms`, and ingest's default bound.
 */
export const MAX_FUTURE_MS = 3_600_000;

/** Hot path: once per record. Without an append time (a bounded input), event time alone. */
export function eventTimeProgress(timestamp: number, appendTime: number): number {
  if (timestamp <= appendTime) return timestamp;
  return timestamp - appendTime <= MAX_FUTURE_MS ? appendTime : Number.NEGATIVE_INFINITY;
}
