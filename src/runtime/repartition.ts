import { ALL_PARTITIONS, type PartitionOwnership } from "../cluster/ownership.js";
import type { DeadLetterSink } from "../core/dead-letters.js";
import { BinaryHeap } from "../core/heap.js";
import type { EventLog, FencedWriter } from "../log/types.js";
import { partitionForKey } from "../log/types.js";
import type { StreamEvent } from "../stream/event.js";
import { type CheckpointStore, taskName } from "./checkpoint/store.js";
import { type CheckpointObserver, TaskDriver, type TaskStats } from "./driver.js";
import { behindExchangePart, dropJobTasks, Exchange, exchangePart, exchangeTask } from "./exchange.js";
import { ACCEPTED, FILTERED, type OperatorOutput, type ProcessOutcome, type TaskOperator } from "./operator.js";
import { OwnedTasks, type TaskInfo } from "./owned-tasks.js";
import type { TaskCheckpoint } from "./task-checkpoint.js";
import { WholeJobCheckpoint } from "./whole-job-checkpoint.js";

/**
 * The repartition stage of a CEP rule keyed by another field than the partition key (issue 16,
 * "Keyed by any field"): the rule's tasks read one partition each of an internal stream in which
 * each key's events sit in one partition, in event-time order. The stage is the exchange
 * (./exchange.ts: a task per input partition copies each event keyed by the rule's field and
 * broadcasts its watermark), followed by a task per partition of the exchange stream that holds
 * the copies until the minimum of the upstream watermarks passes them and writes them on in
 * timestamp order (RepartitionOperator). The ordering is the rule's need: its operator moves its
 * own event time with the events it reads, so copies of slower partitions must not arrive after
 * later ones.
 *
 * Exactly once across both hops comes from the task driver: each task's checkpoint holds its input
 * positions and where its output stream ended; a copy keeps the id `<job>:rp:<input
 * partition>:<offset>` into the rule's stream, so after a crash the replay skips the copies already
 * written (src/runtime/driver.ts).
 */

/**
 * The internal stream of a job. Catalogue names start with a letter (src/catalog/stream-spec.ts),
 * so none can collide with it; characters a Kafka topic refuses become `_`.
 */
export function repartitionStream(job: string): string {
  return `__repartition_${job.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}

/** The stage's tasks in the checkpoint store and its exchange are under this job name. */
export function repartitionJob(job: string): string {
  return `${job}/repartition`;
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
 * Why the order: the rule downstream has one watermark per partition of the internal stream, and
 * each of those partitions mixes events of every input partition. Copied in arrival order, an
 * event of partition 1 stamped before the last one of partition 0 would be late downstream
 * although it was in order where it was ingested. So a copy is held until the task's watermark
 * (the minimum over the input partitions, idle ones aside, carried by the exchange's markers)
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
  /** The job the stage feeds (`rule/<id>`, `pipeline/<name>`): names its streams, tasks and output ids. */
  readonly job: string;
  readonly inputStream: string;
  readonly keyField: string;
  /** The input's retention: the internal streams keep their copies as long as the input keeps the originals. */
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
  /** The partitions whose tasks (of both hops) run here (src/cluster/ownership.ts); default all. */
  readonly ownership?: PartitionOwnership;
  /** Each task's fenced writer (TaskDriverOptions.fencedWriter; cluster mode on Kafka). */
  readonly fencedWriter?: (task: string) => FencedWriter;
}

/**
 * Runs a job's repartition stage: creates the internal stream (as many partitions as the input)
 * if it is missing, the exchange's tasks (one per input partition) and the ordering tasks (one per
 * partition of the exchange stream), all on the driver.
 *
 * @example
 * const stage = new Repartitioner({ log, job: "rule/r1", inputStream: "payments", keyField: "device",
 *   startFrom: "now", checkpoints, owner: "a", consumer: "rule/devices" });
 * await stage.start(); // the rule's tasks now read stage.stream
 */
export class Repartitioner {
  readonly stream: string;
  private exchange: Exchange | undefined;
  private owned: OwnedTasks<TaskDriver> | undefined;

  constructor(private readonly options: RepartitionerOptions) {
    this.stream = repartitionStream(options.job);
  }

  /** Creates the internal streams if needed, then claims the stage's tasks and starts copying. */
  async start(): Promise<void> {
    const o = this.options;
    const { log, inputStream, retentionMs, keyField, job } = o;
    const n = log.partitionCount(inputStream);
    if (!log.hasStream(this.stream)) {
      await log.createStream(this.stream, { partitions: n, ...(retentionMs !== undefined && { retentionMs }) });
    }
    const stage = repartitionJob(job);
    const ownership = o.ownership ?? ALL_PARTITIONS;
    const shared = {
      checkpointIntervalMs: o.checkpointIntervalMs ?? 1000,
      checkpoints: o.checkpoints,
      owner: o.owner,
      group: stage,
      consumer: o.consumer,
      ...(o.deadLetters !== undefined && { deadLetters: o.deadLetters }),
      ...(o.checkpointObserver !== undefined && { checkpointObserver: o.checkpointObserver }),
      ...(o.fencedWriter !== undefined && { fencedWriter: o.fencedWriter }),
      validUntil: () => ownership.validUntil(),
    };
    const whole = new WholeJobCheckpoint({
      checkpoints: o.checkpoints,
      job: stage,
      owner: o.owner,
      tasks: Array.from({ length: 2 * n }, (_, i) => (i < n ? exchangeTask(stage, i) : taskName(stage, i - n))),
    });
    const exchange = new Exchange({
      log,
      job: stage,
      inputStream,
      // An event without the field (absent or null) is ignored by a job keyed by it, as a rule always did.
      route: (e) => {
        const key = e.value[keyField];
        return key === undefined || key === null ? undefined : String(key);
      },
      ...(retentionMs !== undefined && { retentionMs }),
      startFrom: o.startFrom,
      // A quiet input partition holds copies back this long at most (RepartitionOperator).
      watermarks: { outOfOrdernessMs: 0, idleTimeoutMs: o.idleTimeoutMs ?? 100 },
      legacy: (p) => whole.forTask((w) => exchangePart(log, stage, w, p)),
      ownership,
      ...shared,
    });
    this.exchange = exchange;
    await exchange.start();
    this.owned = new OwnedTasks({
      ownership,
      partitions: n,
      create: (q) =>
        new TaskDriver({
          log,
          job,
          task: taskName(stage, q),
          inputStream: exchange.stream,
          partitions: [q],
          upstreamChannels: n,
          upstreamStream: inputStream,
          createOperator: () => new RepartitionOperator(job, keyField),
          // Keyed by the field in both streams of as many partitions: the copies of partition q stay in q.
          outputStream: this.stream,
          startFrom: "earliest",
          watermarks: { outOfOrdernessMs: 0, idleTimeoutMs: 0 },
          legacy: whole.forTask((w) =>
            behindExchangePart(log, stage, w, { partition: q, partitions: n }, orderingState(w, q, n)),
          ),
          ...shared,
        }),
    });
    try {
      await this.owned.start();
    } catch (e) {
      await exchange.stop();
      throw e;
    }
  }

  /** Stops after the rounds in flight, with final checkpoints; the ordering tasks take in what the exchange copied first. */
  async stop(): Promise<void> {
    await this.exchange?.stop();
    const tasks = (await this.owned?.detach()) ?? [];
    await Promise.all(tasks.map((t) => t.idle()));
    await Promise.all(tasks.map((t) => t.stop()));
  }

  /** Resolves once everything appended to the input so far is through both hops (as far as event time lets it). */
  async idle(): Promise<void> {
    await this.exchange?.idle();
    await Promise.all(this.running().map((t) => t.idle()));
  }

  /** The tasks of both hops running here. */
  tasks(): TaskInfo[] {
    return [...(this.exchange?.tasks() ?? []), ...(this.owned?.info() ?? [])];
  }

  private running(): TaskDriver[] {
    return this.owned?.list() ?? [];
  }

  /** The stage's tasks' statistics, summed: dead letters and failures are what the rule's view shows. */
  stats(): Pick<TaskStats, "deadLetters" | "failing"> {
    const all = [...(this.exchange?.stats() ?? []), ...this.running().map((t) => t.stats())];
    const failing = all.find((s) => s.failing !== undefined)?.failing;
    return {
      deadLetters: all.reduce((n, s) => n + s.deadLetters, 0),
      ...(failing !== undefined && { failing }),
    };
  }
}

/** An ordering task's part of the stage's checkpoint from when it was one task: the held copies of its keys. */
function orderingState(whole: TaskCheckpoint, q: number, n: number): Uint8Array {
  const snap = JSON.parse(decoder.decode(whole.state)) as RepartitionSnapshot;
  const held = snap.held.filter((c) => partitionForKey(c.key, n) === q);
  return encoder.encode(JSON.stringify({ ...snap, held }));
}

/**
 * Removes a job's stage: its tasks' checkpoints (each claimed first, so a stage still running
 * elsewhere is fenced off), its exchange stream and its internal stream.
 */
export async function dropRepartition(
  log: EventLog,
  checkpoints: CheckpointStore,
  job: string,
  owner: string,
): Promise<void> {
  await dropJobTasks(log, checkpoints, repartitionJob(job), owner);
  const stream = repartitionStream(job);
  if (log.hasStream(stream)) await log.deleteStream(stream);
}
