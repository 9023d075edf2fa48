import { type EventLog, partitionForKey } from "../log/types.js";
import type { CheckpointStore } from "../runtime/checkpoint/store.js";
import type { LegacyCheckpoints } from "../runtime/driver.js";
import { wholeInputTask } from "../runtime/driver.js";
import { decodeTaskCheckpoint, type TaskCheckpoint } from "../runtime/task-checkpoint.js";
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
 * A windowed or keyed-process job's checkpoint from before its tasks were per partition: its one
 * task over every input partition (`<job>/*` in the store), or older, the log-stream checkpoint.
 * Each of the job's new tasks imports its part once (`forTask`); once every one of them has a
 * checkpoint of its own, the old ones are dropped, so a crash halfway through the import leaves
 * the old checkpoint for the tasks still to import it.
 */
export class WholeJobCheckpoint {
  private loaded: Promise<TaskCheckpoint | undefined> | undefined;
  private dropping: Promise<void> = Promise.resolve();
  private dropped = false;

  constructor(
    private readonly options: {
      readonly log: EventLog;
      readonly checkpoints: CheckpointStore;
      readonly job: string;
      readonly owner: string;
      /** Every task of the job in the new layout. */
      readonly tasks: readonly string[];
    },
  ) {}

  /** The whole checkpoint, read once. */
  read(): Promise<TaskCheckpoint | undefined> {
    this.loaded ??= this.load();
    return this.loaded;
  }

  /** One new task's legacy source: the whole checkpoint turned into that task's part by `part`. */
  forTask(part: (whole: TaskCheckpoint) => Promise<TaskCheckpoint> | TaskCheckpoint): LegacyCheckpoints {
    return {
      read: async () => {
        const whole = await this.read();
        return whole === undefined ? undefined : part(whole);
      },
      imported: () => this.importedOne(),
    };
  }

  private async load(): Promise<TaskCheckpoint | undefined> {
    const { checkpoints, job, log } = this.options;
    const stored = await checkpoints.read(wholeInputTask(job));
    if (stored !== undefined) return decodeTaskCheckpoint(wholeInputTask(job), stored.base, stored.deltas);
    return readLegacyCheckpoint(log, job);
  }

  /** One at a time: tasks start together, and the old checkpoint is claimed and dropped once. */
  private importedOne(): Promise<void> {
    this.dropping = this.dropping.then(() => (this.dropped ? undefined : this.dropIfDone()));
    return this.dropping;
  }

  private async dropIfDone(): Promise<void> {
    const { checkpoints, job, log, owner, tasks } = this.options;
    for (const task of tasks) if ((await checkpoints.read(task)) === undefined) return;
    const whole = wholeInputTask(job);
    if ((await checkpoints.list(whole)).includes(whole)) {
      const { epoch } = await checkpoints.claim(whole, owner);
      await checkpoints.drop(whole, epoch);
    }
    await dropLegacyCheckpoint(log, job);
    this.dropped = true;
  }
}

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
