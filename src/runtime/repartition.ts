import type { DeadLetterSink } from "../core/dead-letters.js";
import { BinaryHeap } from "../core/heap.js";
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

/** A copy waiting for event time to reach it; `seq` keeps arrival order among equal timestamps. */
interface Held extends OperatorOutput {
  readonly seq: number;
}

interface RepartitionSnapshot {
  readonly watermark: number | null;
  readonly seq: number;
  /** The heap's array, so pushing it back in order rebuilds the same heap. */
  readonly held: readonly Held[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Forwards each event keyed by `keyField`'s value, in event-time order. An event without the field
 * (absent or null) is filtered out: a job keyed by that field ignores it, as a rule always did
 * (src/cep/runner.ts).
 *
 * Why the order: the job downstream has one watermark per partition of the internal stream, and
 * each of those partitions mixes events of every input partition. Copied in read order (a chunk of
 * partition 0, then one of partition 1), an event of partition 1 stamped before the last one of
 * partition 0 would be late downstream although it was in order where it was ingested. So a copy
 * is held until the stage's watermark (the minimum over its input partitions, idle ones aside)
 * reaches it, and held copies go out in timestamp order, as Flink's watermarks through a keyBy
 * make the downstream operator wait for the slowest upstream channel. An event already behind
 * that watermark (out of order in its own partition) goes out at once.
 */
export class RepartitionOperator implements TaskOperator {
  private readonly prefix: string;
  private held = new BinaryHeap<Held>(comesFirst);
  /** Copies stamped at or before this have been released. */
  private releasedTo = Number.NEGATIVE_INFINITY;
  private seq = 0;

  constructor(
    job: string,
    private readonly keyField: string,
  ) {
    this.prefix = `${job}:rp:`;
  }

  processEvent(e: StreamEvent, out: OperatorOutput[]): ProcessOutcome {
    const key = e.value[this.keyField];
    if (key === undefined || key === null) return FILTERED;
    const copy: Held = {
      id: `${this.prefix}${e.partition}:${e.offset}`,
      key: String(key),
      timestamp: e.timestamp,
      value: e.value as Record<string, unknown>,
      seq: this.seq++,
    };
    if (copy.timestamp <= this.releasedTo) out.push(copy);
    else this.held.push(copy);
    return ACCEPTED;
  }

  /**
   * The driver's watermark is one below the slowest partition's progress (outOfOrdernessMs 0), so
   * `watermark + 1` is a time every active partition has reached: copies up to it go out, and the
   * event that completes a match is not held back for the next one.
   */
  processWatermark(watermark: number, out: OperatorOutput[]): void {
    this.releasedTo = watermark + 1;
    const held = this.held;
    for (let c = held.peek(); c !== undefined && c.timestamp <= this.releasedTo; c = held.peek()) {
      held.pop();
      out.push(c);
    }
  }

  snapshot(): Uint8Array {
    const snap: RepartitionSnapshot = {
      watermark: Number.isFinite(this.releasedTo) ? this.releasedTo : null,
      seq: this.seq,
      held: this.held.items,
    };
    return encoder.encode(JSON.stringify(snap));
  }

  restore(base: Uint8Array): void {
    const snap = JSON.parse(decoder.decode(base)) as RepartitionSnapshot;
    this.releasedTo = snap.watermark ?? Number.NEGATIVE_INFINITY;
    this.seq = snap.seq;
    this.held = new BinaryHeap<Held>(comesFirst);
    for (const c of snap.held) this.held.push(c);
  }

  stats(): { stateKeys: number; openWindows: number } {
    return { stateKeys: this.held.size, openWindows: 0 };
  }
}

function comesFirst(a: Held, b: Held): boolean {
  return a.timestamp < b.timestamp || (a.timestamp === b.timestamp && a.seq < b.seq);
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
  /** After this long without records an input partition no longer holds copies back; default 100 ms. */
  readonly idleTimeoutMs?: number;
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
      // A quiet input partition holds copies back this long at most (RepartitionOperator).
      watermarks: { outOfOrdernessMs: 0, idleTimeoutMs: options.idleTimeoutMs ?? 100 },
      checkpointIntervalMs: options.checkpointIntervalMs ?? 1000,
      checkpoints: options.checkpoints,
      owner: options.owner,
      group: `${job}/repartition`,
      consumer: options.consumer,
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
