import type { EventLog } from "../log/types.js";
import type { Snapshot } from "./state/snapshot-codec.js";

/**
 * A consistent cut of one windowed pipeline: every input partition's next offset together with
 * the operator state that results from exactly the records before them, and where the outputs
 * stood. Restoring it and replaying from `positions` recreates the same outputs with the same ids;
 * those already written after `outputEnds`/`lateEnds` are skipped, so each is written once.
 */
export interface Checkpoint {
  readonly version: 1;
  readonly positions: readonly number[];
  readonly maxTimestamps: readonly (number | null)[];
  readonly watermark: number | null;
  readonly outputEnds: readonly number[];
  readonly lateEnds: readonly number[];
  readonly state: Snapshot;
  readonly takenAt: number;
}

/** Where checkpoints live. One write must be atomic: after a crash the last one is whole or absent. */
export interface CheckpointStore {
  load(pipeline: string): Promise<Checkpoint | undefined>;
  save(pipeline: string, checkpoint: Checkpoint): Promise<void>;
  drop(pipeline: string): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Checkpoints as records of an internal, single-partition stream per pipeline: the log already
 * makes an append atomic and durable (CRC, fdatasync, torn-tail recovery), and on Kafka the same
 * stream is a compacted changelog topic any instance can read, which shared files would not be.
 * Names start with `__`, which no catalogue stream can (names start with a letter).
 */
export class LogCheckpointStore implements CheckpointStore {
  constructor(private readonly log: EventLog) {}

  static streamOf(pipeline: string): string {
    return `__checkpoints_${pipeline}`;
  }

  async load(pipeline: string): Promise<Checkpoint | undefined> {
    const stream = LogCheckpointStore.streamOf(pipeline);
    if (!this.log.hasStream(stream)) return undefined;
    const start = (await this.log.startOffsets(stream))[0] ?? 0;
    const end = (await this.log.endOffsets(stream))[0] ?? 0;
    // The newest whole checkpoint wins; records are CRC-checked, so a parse failure means a bug, not a crash.
    for (let offset = end - 1; offset >= start; offset--) {
      const [record] = await this.log.read(stream, 0, offset, { maxRecords: 1 });
      if (record === undefined) continue;
      try {
        const c = JSON.parse(decoder.decode(record.value)) as Checkpoint;
        if (c.version === 1 && Array.isArray(c.positions)) return c;
      } catch {
        // try the one before
      }
    }
    return undefined;
  }

  async save(pipeline: string, checkpoint: Checkpoint): Promise<void> {
    const stream = LogCheckpointStore.streamOf(pipeline);
    if (!this.log.hasStream(stream)) {
      // retentionBytes 1: the log drops every closed segment, keeping the newest checkpoints only.
      await this.log.createStream(stream, { partitions: 1, retentionBytes: 1 });
    }
    await this.log.append(stream, [
      { key: pipeline, timestamp: checkpoint.takenAt, value: encoder.encode(JSON.stringify(checkpoint)) },
    ]);
  }

  async drop(pipeline: string): Promise<void> {
    const stream = LogCheckpointStore.streamOf(pipeline);
    if (this.log.hasStream(stream)) await this.log.deleteStream(stream);
  }
}

/** In memory, for tests and code-first jobs that do not need to survive a restart. */
export class MemoryCheckpointStore implements CheckpointStore {
  private readonly saved = new Map<string, string>();
  async load(pipeline: string): Promise<Checkpoint | undefined> {
    const s = this.saved.get(pipeline);
    return s === undefined ? undefined : (JSON.parse(s) as Checkpoint);
  }
  async save(pipeline: string, checkpoint: Checkpoint): Promise<void> {
    this.saved.set(pipeline, JSON.stringify(checkpoint));
  }
  async drop(pipeline: string): Promise<void> {
    this.saved.delete(pipeline);
  }
}
