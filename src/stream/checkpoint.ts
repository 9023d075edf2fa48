import { type EventLog, partitionForKey } from "../log/types.js";
import type { TaskCheckpoint } from "../runtime/task-checkpoint.js";
import { restoreValue, type Snapshot } from "./state/snapshot-codec.js";
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

const encoder = new TextEncoder();

/**
 * The part of a keyed operator's snapshot (a window operator's groups, a keyed process function's
 * entries) whose keys the log places in `partition` of `partitions`; `routeOf` turns a window
 * group's key values into the key its events are routed by.
 */
export function keyedStatePart(
  state: Uint8Array,
  partition: number,
  partitions: number,
  routeOf: ((values: readonly unknown[]) => string) | undefined,
): Uint8Array {
  const s = JSON.parse(decoder.decode(state)) as Snapshot;
  if (s === null || typeof s !== "object" || Array.isArray(s)) return state;
  const mine = (key: string): boolean => partitionForKey(key, partitions) === partition;
  if (s.kind === "keyed_process" && Array.isArray(s.entries)) {
    const entries = s.entries.filter((e) => Array.isArray(e) && typeof e[0] === "string" && mine(e[0]));
    return encoder.encode(JSON.stringify({ ...s, entries }));
  }
  if (Array.isArray(s.groups) && routeOf !== undefined) {
    const groups = s.groups.filter((g) => {
      const values = Array.isArray(g) && Array.isArray(g[0]) ? g[0].map(restoreValue) : [];
      return mine(routeOf(values));
    });
    return encoder.encode(JSON.stringify({ ...s, groups }));
  }
  return state;
}
