/**
 * One input record as operators see it: the decoded event plus the log envelope that SQL exposes
 * as `_time`, `_ingest_time`, `_partition` and `_offset`.
 */
export interface StreamEvent {
  readonly value: Readonly<Record<string, unknown>>;
  /** The record's key: the event's user_id. */
  readonly key: string;
  /** Event time, epoch ms. */
  readonly timestamp: number;
  readonly ingestTime: number;
  readonly partition: number;
  readonly offset: number;
}

/** What an operator emits; the runner gives it a deterministic id and writes it to the output stream. */
export interface Emitted {
  readonly key: string;
  readonly timestamp: number;
  readonly value: Record<string, unknown>;
}
