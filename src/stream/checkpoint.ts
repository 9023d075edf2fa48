import type { EventLog } from "../log/types.js";
import type { TaskCheckpoint } from "../runtime/task-checkpoint.js";
import type { Snapshot } from "./state/snapshot-codec.js";
import { encodeSnapshot } from "./task-operators.js";

/**
 * The checkpoints of windowed and keyed-process jobs before the task model (issue 16): JSON
 * records of an internal single-partition stream `__checkpoints_<job>`, the newest whole one
 * winning. Read once, when a job's task has no checkpoint in the store yet, so an upgraded
 * installation continues where it was; then the stream is dropped.
 */
interface LegacyCheckpoint {
  readonly version: 1;
  readonly positions: readonly number[];
  readonly maxTimestamps: readonly (number | null)[];
  readonly watermark: number | null;
  readonly outputEnds: readonly number[];
  readonly lateEnds: readonly number[];
  readonly state: Snapshot;
  readonly takenAt: number;
}

const decoder = new TextDecoder();

export function legacyCheckpointStream(job: string): string {
  return `__checkpoints_${job}`;
}

/** The job's newest legacy checkpoint as a checkpoint of its task over every input partition. */
export async function readLegacyCheckpoint(log: EventLog, job: string): Promise<TaskCheckpoint | undefined> {
  const stream = legacyCheckpointStream(job);
  if (!log.hasStream(stream)) return undefined;
  const start = (await log.startOffsets(stream))[0] ?? 0;
  const end = (await log.endOffsets(stream))[0] ?? 0;
  for (let offset = end - 1; offset >= start; offset--) {
    const [record] = await log.read(stream, 0, offset, { maxRecords: 1 });
    if (record === undefined) continue;
    let c: LegacyCheckpoint;
    try {
      c = JSON.parse(decoder.decode(record.value)) as LegacyCheckpoint;
    } catch {
      continue; // records are CRC-checked: try the one before
    }
    if (c.version !== 1 || !Array.isArray(c.positions)) continue;
    return {
      header: {
        v: 2,
        partitions: c.positions.map((_, p) => p),
        positions: c.positions,
        maxTimestamps: c.maxTimestamps,
        watermark: c.watermark,
        outputEnds: c.outputEnds,
        lateEnds: c.lateEnds,
        timers: { eventTime: [], processingTime: [] },
        takenAt: c.takenAt,
      },
      state: encodeSnapshot(c.state),
      deltas: [],
    };
  }
  return undefined;
}

export async function dropLegacyCheckpoint(log: EventLog, job: string): Promise<void> {
  const stream = legacyCheckpointStream(job);
  if (log.hasStream(stream)) await log.deleteStream(stream);
}
