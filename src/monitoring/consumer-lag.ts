/**
 * Consumer lag read from the log itself, as Kafka lag exporters do: the committed position of a
 * consumer group against each partition's end offset (records), and the event time of the first
 * record not yet processed (seconds behind the clock). Works for every consumer that commits its
 * offsets to the log, whatever its implementation.
 */
import type { EventLog } from "../log/types.js";

export interface PartitionLag {
  readonly partition: number;
  readonly records: number;
  /** Now minus the event time of the oldest unprocessed record; 0 when caught up. */
  readonly seconds: number;
}

export async function consumerLag(log: EventLog, group: string, stream: string, now: number): Promise<PartitionLag[]> {
  if (!log.hasStream(stream)) return [];
  const [committed, starts, ends] = await Promise.all([
    log.committedOffsets(group, stream),
    log.startOffsets(stream),
    log.endOffsets(stream),
  ]);
  const out: PartitionLag[] = [];
  for (let partition = 0; partition < ends.length; partition++) {
    const end = ends[partition] ?? 0;
    // Retention may have removed records the consumer never read: they are lost, not pending.
    const next = Math.max(committed.get(partition) ?? 0, starts[partition] ?? 0);
    const records = Math.max(0, end - next);
    let seconds = 0;
    if (records > 0) {
      const [oldest] = await log.read(stream, partition, next, { maxRecords: 1, maxBytes: 1 });
      if (oldest !== undefined) seconds = Math.max(0, now - oldest.timestamp) / 1000;
    }
    out.push({ partition, records, seconds });
  }
  return out;
}
