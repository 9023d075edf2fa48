import type { DeadLetterSink } from "../core/dead-letters.js";
import type { EventLog } from "../log/types.js";
import type { StreamEvent } from "../stream/event.js";
import type { CheckpointStore } from "./checkpoint/store.js";
import { type CheckpointObserver, TaskDriver, type TaskStats, wholeInputTask } from "./driver.js";
import { ACCEPTED, FILTERED, type OperatorOutput, type ProcessOutcome, type TaskOperator } from "./operator.js";

/**
 * The repartition stage (issue 16, "Keyed by any field"), as Kafka Streams' repartition topics and
 * Flink's keyBy: the log partitions events by user, so a job keyed by another field (a device, a
 * card) would see one key's events spread over every partition. The stage copies each input event
 * into an internal stream keyed by the job's field, so each key's events land in one partition of
 * it, and the job's per-partition tasks read that stream instead.
 *
 * Exactly once across the hop comes from the task driver: the stage is a task whose checkpoint
 * holds its input positions and where the internal stream ended, and each copy carries the id
 * `<job>:rp:<input partition>:<offset>`, so after a crash the replay skips the copies already
 * written (src/runtime/driver.ts).
 */

/**
 * The internal stream of a job. Catalogue names start with a letter (src/catalog/stream-spec.ts),
 * so none can collide with it; characters a Kafka topic refuses become `_`.
 */
export function repartitionStream(job: string): string {
  return `__repartition_${job.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}

/** The stage's task in the checkpoint store: one task over every partition of the input. */
export function repartitionTask(job: string): string {
  return wholeInputTask(`${job}/repartition`);
}

/**
 * Forwards each event keyed by `keyField`'s value. An event without the field (absent or null) is
 * filtered out: a job keyed by that field ignores it, as a rule always did (src/cep/runner.ts).
 * Stateless, so its snapshot is empty.
 */
export class RepartitionOperator implements TaskOperator {
  private readonly prefix: string;

  constructor(
    job: string,
    private readonly keyField: string,
  ) {
    this.prefix = `${job}:rp:`;
  }

  processEvent(e: StreamEvent, out: OperatorOutput[]): ProcessOutcome {
    const key = e.value[this.keyField];
    if (key === undefined || key === null) return FILTERED;
    out.push({
      id: `${this.prefix}${e.partition}:${e.offset}`,
      key: String(key),
      timestamp: e.timestamp,
      value: e.value as Record<string, unknown>,
    });
    return ACCEPTED;
  }

  processWatermark(): void {}

  snapshot(): Uint8Array {
    return new Uint8Array(0);
  }

  restore(): void {}

  stats(): { stateKeys: number; openWindows: number } {
    return { stateKeys: 0, openWindows: 0 };
  }
}

export interface RepartitionerOptions {
  readonly log: EventLog;
  /** The job the stage feeds (`rule/<id>`, `pipeline/<name>`): names its stream, task and output ids. */
  readonly job: string;
  readonly inputStream: string;
  readonly keyField: string;
  /** The input's retention: the internal stream keeps its copies as long as the input keeps the originals. */
  readonly retentionMs?: number;
  /** Where a stage with no checkpoint starts reading its input. */
  readonly startFrom: "earliest" | "now";
  readonly checkpoints: CheckpointStore;
  readonly owner: string;
  /** Dead letters name this consumer (the job's, e.g. `rule/<name>`). */
  readonly consumer: string;
  readonly deadLetters?: DeadLetterSink;
  /** Default 1 s: a crash replays at most this much of the input, and the replay writes nothing twice. */
  readonly checkpointIntervalMs?: number;
  readonly checkpointObserver?: CheckpointObserver;
}

/**
 * Runs a job's repartition stage: creates the internal stream (as many partitions as the input)
 * if it is missing and runs the stage's task on the driver.
 *
 * @example
 * const stage = new Repartitioner({ log, job: "rule/r1", inputStream: "payments", keyField: "device",
 *   startFrom: "now", checkpoints, owner: "a", consumer: "rule/devices" });
 * await stage.start(); // the rule's tasks now read stage.stream
 */
export class Repartitioner {
  readonly stream: string;
  private readonly driver: TaskDriver;

  constructor(private readonly options: RepartitionerOptions) {
    const { job, keyField } = options;
    this.stream = repartitionStream(job);
    this.driver = new TaskDriver({
      log: options.log,
      job,
      task: repartitionTask(job),
      inputStream: options.inputStream,
      createOperator: () => new RepartitionOperator(job, keyField),
      outputStream: this.stream,
      startFrom: options.startFrom,
      // Nothing here depends on event time: the job downstream derives its own from the copies' timestamps.
      watermarks: { outOfOrdernessMs: 0, idleTimeoutMs: 0 },
      checkpointIntervalMs: options.checkpointIntervalMs ?? 1000,
      checkpoints: options.checkpoints,
      owner: options.owner,
      group: `${job}/repartition`,
      consumer: options.consumer,
      tickMs: 1000,
      ...(options.deadLetters !== undefined && { deadLetters: options.deadLetters }),
      ...(options.checkpointObserver !== undefined && { checkpointObserver: options.checkpointObserver }),
    });
  }

  /** Creates the internal stream if needed, then claims the stage's task and starts copying. */
  async start(): Promise<void> {
    const { log, inputStream, retentionMs } = this.options;
    if (!log.hasStream(this.stream)) {
      await log.createStream(this.stream, {
        partitions: log.partitionCount(inputStream),
        ...(retentionMs !== undefined && { retentionMs }),
      });
    }
    await this.driver.start();
  }

  /** Stops after the round in flight, with a final checkpoint. */
  async stop(): Promise<void> {
    await this.driver.stop();
  }

  /** Resolves once everything appended to the input so far is copied. */
  async idle(): Promise<void> {
    await this.driver.idle();
  }

  stats(): TaskStats {
    return this.driver.stats();
  }
}

/**
 * Removes a job's stage: its checkpoint (claimed first, so a stage still running elsewhere is
 * fenced off) and its internal stream.
 */
export async function dropRepartition(
  log: EventLog,
  checkpoints: CheckpointStore,
  job: string,
  owner: string,
): Promise<void> {
  const task = repartitionTask(job);
  if ((await checkpoints.list(task)).includes(task)) {
    const { epoch } = await checkpoints.claim(task, owner);
    await checkpoints.drop(task, epoch);
  }
  const stream = repartitionStream(job);
  if (log.hasStream(stream)) await log.deleteStream(stream);
}
