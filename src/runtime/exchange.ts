import { ALL_PARTITIONS, type PartitionOwnership } from "../cluster/ownership.js";
import { type EventLog, partitionForKey } from "../log/types.js";
import type { StreamEvent } from "../stream/event.js";
import type { WatermarkOptions } from "../stream/time/watermarks.js";
import {
  HEADER_ORIGIN,
  HEADER_WATERMARK,
  markerHeader,
  markerStream,
  originHeader,
  partitionKeys,
} from "./channels.js";
import { type CheckpointStore, taskName } from "./checkpoint/store.js";
import { type LegacyCheckpoints, TaskDriver, type TaskDriverOptions, type TaskStats } from "./driver.js";
import { ACCEPTED, FILTERED, type OperatorOutput, type ProcessOutcome, type TaskOperator } from "./operator.js";
import { OwnedTasks, type TaskInfo } from "./owned-tasks.js";
import type { TaskCheckpoint } from "./task-checkpoint.js";

/**
 * The exchange (issue 16, "Keyed by any field"), Flink's keyBy between two stages of tasks: the log
 * partitions events by user, so a job keyed by another field (a device, a GROUP BY column) would
 * find one key's events in every partition. Stage 1 is one task per input partition: it copies
 * each event at once into an internal stream, keyed by the job's key, so each key's events meet in
 * one partition of it; stage 2 (the job's own tasks, one per partition of the internal stream)
 * reads it.
 *
 * Event time crosses the hop as Flink's watermarks cross a keyBy: after each round a stage-1 task
 * broadcasts a marker with its partition's watermark and idleness into every partition of the
 * internal stream, after the copies it covers; a stage-2 task keeps one watermark per upstream
 * channel and uses the minimum over the channels not idle (src/runtime/channels.ts,
 * `upstreamChannels` in src/runtime/driver.ts). So a window downstream fires only once every input
 * partition has passed it, as it did when one task read them all.
 *
 * Exactly once across the hop: stage-1 tasks are driver tasks whose checkpoints hold their input
 * position and where the internal stream ended; a copy's id is `<job>:x:<partition>:<offset>` and a
 * marker's names its channel, target partition and content, so a replay writes neither twice.
 */

/** The internal stream of a job; catalogue names start with a letter, so none can collide with it. */
export function exchangeStream(job: string): string {
  return `__exchange_${job.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}

/** The stage-1 task of one input partition. */
export function exchangeTask(job: string, partition: number): string {
  return taskName(`${job}/exchange`, partition);
}

/**
 * Where an event goes: the key (or keys, when the job's chain before its key turns one event into
 * several values) it is grouped by; undefined or none: the job ignores it (filtered here). Throws
 * when an expression fails on the event (it is then dead-lettered here, once).
 */
export type Route = (e: StreamEvent) => string | readonly string[] | undefined;

const NO_STATE = new Uint8Array(0);
const EMPTY = Object.freeze({}) as Record<string, unknown>;

/** Stage 1: forwards each event keyed by its route at once; markers at the end of each round. */
export class ExchangeOperator implements TaskOperator {
  private readonly prefix: string;
  private readonly keys: readonly string[];
  private watermark = Number.NEGATIVE_INFINITY;
  /** What the last markers said (none since the start or a restore: send them again). */
  private sent: string | undefined;

  constructor(
    job: string,
    private readonly channel: number,
    private readonly partitions: number,
    private readonly route: Route,
  ) {
    this.prefix = `${job}:x:`;
    this.keys = partitionKeys(partitions);
  }

  processEvent(e: StreamEvent, out: OperatorOutput[]): ProcessOutcome {
    const route = this.route(e);
    if (route === undefined) return FILTERED;
    const headers = { [HEADER_ORIGIN]: originHeader(e) };
    const id = `${this.prefix}${e.partition}:${e.offset}`;
    if (typeof route === "string") {
      out.push({ id, key: route, timestamp: e.timestamp, value: e.value as Record<string, unknown>, headers });
      return ACCEPTED;
    }
    // One copy per partition its keys fall in: the job's task there takes the values of its keys.
    const seen: number[] = [];
    for (const key of route) {
      const p = partitionForKey(key, this.partitions);
      if (seen.includes(p)) continue;
      out.push({
        id: seen.length === 0 ? id : `${id}:${p}`,
        key,
        timestamp: e.timestamp,
        value: e.value as Record<string, unknown>,
        headers,
      });
      seen.push(p);
    }
    return seen.length === 0 ? FILTERED : ACCEPTED;
  }

  processWatermark(watermark: number): void {
    this.watermark = watermark;
  }

  endRound(idle: boolean, out: OperatorOutput[], positions: readonly number[]): void {
    // Idle, it says where it had read to: downstream counts it idle only while its partition ends there.
    const header = markerHeader(this.channel, this.watermark, idle, positions[0]);
    if (header === this.sent) return;
    this.sent = header;
    const timestamp = Number.isFinite(this.watermark) ? this.watermark : 0;
    for (let q = 0; q < this.partitions; q++) {
      out.push({
        id: `${this.prefix}wm:${q}:${header}`,
        key: this.keys[q] as string,
        timestamp,
        value: EMPTY,
        headers: { [HEADER_WATERMARK]: header },
      });
    }
  }

  snapshot(): Uint8Array {
    return NO_STATE;
  }

  restore(): void {}

  stats(): { stateKeys: number; openWindows: number } {
    return { stateKeys: 0, openWindows: 0 };
  }
}

export interface ExchangeOptions
  extends Pick<
    TaskDriverOptions,
    | "log"
    | "startFrom"
    | "checkpointIntervalMs"
    | "checkpoints"
    | "owner"
    | "deadLetters"
    | "checkpointObserver"
    | "clock"
    | "chunkSize"
    | "retryDelayMs"
    | "tickMs"
    | "validUntil"
    | "fencedWriter"
  > {
  /** The job it feeds: names its stream, tasks and copies' ids. */
  readonly job: string;
  readonly inputStream: string;
  readonly route: Route;
  /** The input's retention: the internal stream keeps its copies as long as the input keeps the originals. */
  readonly retentionMs?: number;
  /** The job's: event time is generated here, at the source, as in Flink. */
  readonly watermarks: WatermarkOptions;
  /** The consumer group input positions are committed under (the job's: lag is the job's). */
  readonly group: string;
  /** Dead letters name this consumer (the job's). */
  readonly consumer: string;
  /** A checkpoint of the job from before it ran behind an exchange, for one input partition. */
  readonly legacy?: (partition: number) => LegacyCheckpoints;
  /** The input partitions whose tasks run here (src/cluster/ownership.ts); default all. */
  readonly ownership?: PartitionOwnership;
}

/**
 * Runs the stage-1 tasks of a job's exchange: creates the internal stream (as many partitions as
 * the input, so a job keyed by the partition key finds each key in the partition it was ingested
 * in) if it is missing, and one driver task per input partition this instance owns (following
 * the ownership's changes). Copies and markers cross instances through the log.
 *
 * @example
 * const exchange = new Exchange({ log, job: "per_device", inputStream: "payments", route: (e) => String(e.value.device),
 *   startFrom: "earliest", watermarks, checkpointIntervalMs: 1000, checkpoints, owner: "a", group: "pipeline:per_device",
 *   consumer: "pipeline/per_device" });
 * await exchange.start(); // the job's tasks read exchange.stream with upstreamChannels = exchange.channels
 */
export class Exchange {
  readonly stream: string;
  private owned: OwnedTasks<TaskDriver> | undefined;

  constructor(private readonly options: ExchangeOptions) {
    this.stream = exchangeStream(options.job);
  }

  /** Upstream channels of each stage-2 task: the input's partitions. */
  get channels(): number {
    return this.options.log.partitionCount(this.options.inputStream);
  }

  async start(): Promise<void> {
    const { log, inputStream, retentionMs } = this.options;
    const n = log.partitionCount(inputStream);
    if (!log.hasStream(this.stream)) {
      await log.createStream(this.stream, { partitions: n, ...(retentionMs !== undefined && { retentionMs }) });
    }
    this.owned = new OwnedTasks({
      ownership: this.options.ownership ?? ALL_PARTITIONS,
      partitions: n,
      create: (p) => this.task(p, n),
    });
    await this.owned.start();
  }

  async stop(): Promise<void> {
    await this.owned?.stop();
  }

  async poke(): Promise<void> {
    await Promise.all(this.running().map((t) => t.poke()));
  }

  /** Resolves once everything appended to the input so far is copied (by the tasks running here). */
  async idle(): Promise<void> {
    await Promise.all(this.running().map((t) => t.idle()));
  }

  /** The running tasks' statistics. */
  stats(): TaskStats[] {
    return this.running().map((t) => t.stats());
  }

  tasks(): TaskInfo[] {
    return this.owned?.info() ?? [];
  }

  private running(): TaskDriver[] {
    return this.owned?.list() ?? [];
  }

  private task(partition: number, partitions: number): TaskDriver {
    const o = this.options;
    const { job } = o;
    return new TaskDriver({
      log: o.log,
      job,
      task: exchangeTask(job, partition),
      inputStream: o.inputStream,
      partitions: [partition],
      createOperator: () => new ExchangeOperator(job, partition, partitions, o.route),
      outputStream: this.stream,
      outputsAnywhere: true,
      startFrom: o.startFrom,
      watermarks: o.watermarks,
      checkpointIntervalMs: o.checkpointIntervalMs,
      checkpoints: o.checkpoints,
      owner: o.owner,
      group: o.group,
      consumer: o.consumer,
      ...(o.legacy !== undefined && { legacy: o.legacy(partition) }),
      ...(o.deadLetters !== undefined && { deadLetters: o.deadLetters }),
      ...(o.checkpointObserver !== undefined && { checkpointObserver: o.checkpointObserver }),
      ...(o.clock !== undefined && { clock: o.clock }),
      ...(o.chunkSize !== undefined && { chunkSize: o.chunkSize }),
      ...(o.retryDelayMs !== undefined && { retryDelayMs: o.retryDelayMs }),
      ...(o.tickMs !== undefined && { tickMs: o.tickMs }),
      ...(o.validUntil !== undefined && { validUntil: o.validUntil }),
      ...(o.fencedWriter !== undefined && { fencedWriter: o.fencedWriter }),
    });
  }
}

/**
 * A stage-1 task's part of a job's checkpoint from when one task read every input partition
 * (src/runtime/whole-job-checkpoint.ts): its input position and event time.
 */
export async function exchangePart(
  log: EventLog,
  job: string,
  whole: TaskCheckpoint,
  p: number,
): Promise<TaskCheckpoint> {
  const h = whole.header;
  return {
    header: {
      v: 2,
      partitions: [p],
      positions: [h.positions[p] ?? 0],
      maxTimestamps: [h.maxTimestamps[p] ?? null],
      watermark: h.watermark,
      // A fresh exchange stream: nothing copied yet to skip.
      outputEnds: await log.endOffsets(exchangeStream(job)),
      lateEnds: [],
      timers: { eventTime: [], processingTime: [] },
      takenAt: h.takenAt,
    },
    state: new Uint8Array(0),
    deltas: [],
  };
}

/**
 * A stage-2 task's part of such a checkpoint, `state` being its part of the operator's: it reads
 * its partition of the exchange stream from the start, every channel at the old watermark, and
 * skips the outputs written after the old checkpoint (the exchange replays their events).
 */
export async function behindExchangePart(
  log: EventLog,
  job: string,
  whole: TaskCheckpoint,
  shard: { readonly partition: number; readonly partitions: number },
  state: Uint8Array,
): Promise<TaskCheckpoint> {
  const h = whole.header;
  const start = await log.startOffsets(exchangeStream(job));
  return {
    header: {
      v: 2,
      partitions: [shard.partition],
      positions: [start[shard.partition] ?? 0],
      maxTimestamps: [null],
      watermark: h.watermark,
      outputEnds: h.outputEnds,
      lateEnds: h.lateEnds,
      timers: { eventTime: [], processingTime: [] },
      takenAt: h.takenAt,
      channels: new Array<number | null>(shard.partitions).fill(h.watermark),
      idleChannels: new Array<boolean>(shard.partitions).fill(false),
    },
    state,
    deltas: [],
  };
}

/**
 * Removes every task checkpoint under `<job>/` (each claimed first, so a task still running
 * elsewhere is fenced off), the job's exchange stream and its marker stream.
 */
export async function dropJobTasks(
  log: EventLog,
  checkpoints: CheckpointStore,
  job: string,
  owner: string,
): Promise<void> {
  for (const task of await checkpoints.list(`${job}/`)) {
    const { epoch } = await checkpoints.claim(task, owner);
    await checkpoints.drop(task, epoch);
  }
  for (const stream of [exchangeStream(job), markerStream(job)]) {
    if (log.hasStream(stream)) await log.deleteStream(stream);
  }
}
