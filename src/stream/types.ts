/**
 * Processing seams. A pipeline reads a stream from the log, runs compiled operators, and hands
 * its outputs to a `Sink`. Outputs carry a deterministic id (pipeline, input partition, input
 * offset, index) so a replay after a crash writes each output once.
 */

export interface OutputRecord {
  /** Deterministic id: `${pipeline}/${partition}/${offset}/${index}`. */
  readonly id: string;
  /** The user the output belongs to (the input's user_id, or the group's for windows). */
  readonly key: string;
  /** Event time, epoch ms. */
  readonly timestamp: number;
  readonly value: Record<string, unknown>;
  /** Where it came from, for exactly-once recovery. */
  readonly source: { readonly partition: number; readonly offset: number };
}

export interface Sink {
  write(outputs: readonly OutputRecord[]): Promise<void>;
}
