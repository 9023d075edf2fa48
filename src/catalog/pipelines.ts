/**
 * The lifecycle of pipelines: compiled at creation (bad SQL is refused before anything exists),
 * an output stream with the input's partition count, a runner per pipeline, restarted on boot.
 * Order of creation: catalogue row, then output stream, then runner; `open()` repairs a crash
 * between any two of them. A disabled pipeline is known (listed, described, counted as a reader of
 * its input) but has no running runner; enabling it starts a new runner from its committed
 * position (map) or last checkpoint (window), which the stopped runner left in place.
 */

import type { PartitionOwnership } from "../cluster/ownership.js";
import type { ControlStore, PipelineDefinition } from "../control/types.js";
import type { Clock } from "../core/clock.js";
import type { DeadLetterSink } from "../core/dead-letters.js";
import { RunnelError } from "../core/errors.js";
import { SerialQueue } from "../core/serial-queue.js";
import type { EventLog, FencedWriter } from "../log/types.js";
import type { Metrics } from "../monitoring/metrics.js";
import { type MonitoringProbe, noopProbe, type WindowState } from "../monitoring/probes.js";
import type { CheckpointStore } from "../runtime/checkpoint/store.js";
import { defaultOwner } from "../runtime/driver.js";
import { dropJobTasks } from "../runtime/exchange.js";
import type { TaskInfo } from "../runtime/owned-tasks.js";
import { dropLegacyCheckpoint } from "../stream/checkpoint.js";
import { describeOptions, type PipelineOptions, parsePipelineOptions } from "../stream/options.js";
import { PipelineRunner, type PipelineStats } from "../stream/runner.js";
import { type CompiledPipeline, compilePipeline } from "../stream/sql/index.js";
import { outputSchema } from "../stream/sql/output-schema.js";
import { WindowedPipelineRunner } from "../stream/window-runner.js";
import { checkStreamName } from "./stream-spec.js";
import type { StreamCatalog } from "./streams.js";

interface Runner {
  start(): Promise<void>;
  stop(): Promise<void>;
  stats(): PipelineStats;
  tasks(): TaskInfo[];
}

interface Running {
  definition: PipelineDefinition;
  /** The SQL as the user wrote it (the stored form carries the options too). */
  readonly sql: string;
  readonly options: PipelineOptions;
  readonly compiled: CompiledPipeline;
  /** Undefined for a pipeline disabled since boot; a disabled pipeline's stopped runner otherwise. */
  runner: Runner | undefined;
}

const IDLE_STATS: PipelineStats = {
  running: false,
  recordsIn: 0,
  recordsOut: 0,
  dropped: 0,
  errors: 0,
  lastError: undefined,
  lag: 0,
  failures: 0,
  lastProgressAt: undefined,
  deadLetters: 0,
};

/** Where a windowed pipeline's too-late events go: a stream queryable like its results. */
export function lateStreamOf(pipeline: string): string {
  return `${pipeline}_late`;
}

export interface PipelineDescription {
  readonly name: string;
  readonly sql: string;
  readonly input: string;
  readonly output: string;
  readonly startFrom: "earliest" | "now";
  readonly createdAt: string;
  /** Windowed pipelines: "window"; projections and filters: "map". */
  readonly kind: "map" | "window";
  /** Windowed pipelines: the stream that receives events too late for their window. */
  readonly lateOutput?: string;
  readonly options?: Record<string, string>;
  /** False while disabled: the runner is stopped, its position kept for when it is enabled again. */
  readonly enabled: boolean;
  readonly stats: PipelineStats;
}

export class PipelineManager {
  /** Every known pipeline, enabled or not (the name is historical). */
  private readonly running = new Map<string, Running>();
  /**
   * Serialises create/enable/disable/delete, and the changes heard from other instances (sync*),
   * so a runner is never started twice or left behind.
   */
  private readonly transitions = new SerialQueue();
  private unregisterWindowState: (() => void) | undefined;

  constructor(
    private readonly deps: {
      readonly control: ControlStore;
      readonly log: EventLog;
      readonly streams: StreamCatalog;
      readonly metrics: Metrics;
      readonly clock: Clock;
      /** Where the pipelines' tasks checkpoint (src/runtime/checkpoint). */
      readonly checkpoints: CheckpointStore;
      /** Who runs the tasks (diagnostics); default host:pid. */
      readonly owner?: string;
      /** Window state and checkpoints are reported here (src/server.ts passes monitoring.probe). */
      readonly probe?: MonitoringProbe;
      /** Where pipelines put the records they cannot process (default: counted and skipped). */
      readonly deadLetters?: DeadLetterSink;
      /** The partitions this instance runs the tasks of (cluster mode); default all. */
      readonly ownership?: PartitionOwnership;
      /** The fenced writer of each task's outputs (cluster mode on Kafka); default the log's appends. */
      readonly fencedWriter?: (task: string) => FencedWriter;
    },
  ) {}

  private get owner(): string {
    return this.deps.owner ?? defaultOwner();
  }

  private get probe(): MonitoringProbe {
    return this.deps.probe ?? noopProbe;
  }

  /** The tasks of every pipeline running here (the owned partitions'). */
  tasks(): TaskInfo[] {
    return [...this.running.values()].flatMap((r) => r.runner?.tasks() ?? []);
  }

  async open(): Promise<void> {
    this.unregisterWindowState ??= this.probe.registerWindowState(() => this.windowStates());
    for (const definition of await this.deps.control.listPipelines()) {
      await this.launch(definition, "here");
    }
  }

  create(request: {
    name: string;
    sql: string;
    startFrom?: "earliest" | "now";
    options?: unknown;
  }): Promise<PipelineDescription> {
    return this.transitions.run(() => this.createNow(request));
  }

  private async createNow(request: {
    name: string;
    sql: string;
    startFrom?: "earliest" | "now";
    options?: unknown;
  }): Promise<PipelineDescription> {
    const name = checkStreamName(request.name);
    const options = parsePipelineOptions(request.options);
    if (this.running.has(name) || (await this.deps.control.getPipeline(name))) {
      throw new RunnelError("conflict", `pipeline "${name}" already exists`);
    }
    if (await this.deps.streams.get(name)) {
      throw new RunnelError(
        "conflict",
        `a stream named "${name}" already exists; a pipeline's name is its output stream`,
      );
    }
    // Compile first: malformed or unsupported SQL is refused before anything is created.
    const compiled = compilePipeline(request.sql, (s) => this.deps.log.hasStream(s));
    if (compiled.inputStream === name)
      throw new RunnelError("unsupported_sql", "a pipeline cannot read its own output");
    if (compiled.kind === "window") {
      const late = lateStreamOf(name);
      checkStreamName(late, "name (with _late appended)");
      if (compiled.inputStream === late)
        throw new RunnelError("unsupported_sql", "a pipeline cannot read its own output");
      if (await this.deps.streams.get(late)) {
        throw new RunnelError(
          "conflict",
          `a stream named "${late}" already exists; it would receive this pipeline's late events`,
        );
      }
    }
    const definition = await this.deps.control.createPipeline({
      name,
      sql: request.sql,
      startFrom: request.startFrom ?? "now",
      ...(request.options !== undefined && { options: describeOptions(options) }),
    });
    const launched = await this.launch(definition, "here", compiled);
    if (launched === undefined) throw new Error(`pipeline "${name}" was not launched`);
    return this.describe(launched);
  }

  /** Disables (stops the runner, keeping its position) or enables (resumes from it) a pipeline. */
  setEnabled(name: string, enabled: boolean): Promise<PipelineDescription> {
    return this.transitions.run(async () => {
      const entry = this.running.get(name);
      if (!entry) throw new RunnelError("not_found", `pipeline "${name}" does not exist`);
      if (entry.definition.enabled === enabled) return this.describe(entry);
      if (!enabled) {
        // Stop first: once stopped, everything it appended is committed or recoverable on restart.
        await entry.runner?.stop();
        const updated = await this.deps.control.setPipelineEnabled(name, false);
        if (!updated) throw new RunnelError("not_found", `pipeline "${name}" does not exist`);
        entry.definition = updated;
        return this.describe(entry);
      }
      const updated = await this.deps.control.setPipelineEnabled(name, true);
      if (!updated) throw new RunnelError("not_found", `pipeline "${name}" does not exist`);
      await this.resume(entry, updated);
      return this.describe(entry);
    });
  }

  /** A new runner for an enabled pipeline, from where the stopped one left off. */
  private async resume(entry: Running, enabled: PipelineDefinition): Promise<void> {
    entry.definition = enabled;
    const input = await this.deps.streams.get(entry.compiled.inputStream);
    const runner = this.createRunner(enabled, entry.compiled, entry.options, input?.retentionMs);
    entry.runner = runner;
    await runner.start();
  }

  // Changes made through another instance (src/control/change-feed.ts), each read from the store.

  /** Starts, stops or forgets the pipeline as stored now (its streams and checkpoints are the other instance's business). */
  syncPipeline(name: string): Promise<void> {
    return this.transitions.run(async () => this.follow(name, await this.deps.control.getPipeline(name)));
  }

  /** syncPipeline for every pipeline, stored or known here. */
  syncPipelines(): Promise<void> {
    return this.transitions.run(async () => {
      const stored = new Map((await this.deps.control.listPipelines()).map((p) => [p.name, p]));
      for (const name of new Set([...this.running.keys(), ...stored.keys()])) await this.follow(name, stored.get(name));
    });
  }

  private async follow(name: string, stored: PipelineDefinition | undefined): Promise<void> {
    let entry = this.running.get(name);
    if (entry !== undefined && entry.definition.createdAt !== stored?.createdAt) {
      // Deleted, or deleted and created again.
      await entry.runner?.stop();
      this.running.delete(name);
      entry = undefined;
    }
    if (stored === undefined) return;
    if (entry === undefined) {
      await this.launch(stored, "elsewhere");
    } else if (entry.definition.enabled !== stored.enabled) {
      if (stored.enabled) {
        await this.resume(entry, stored);
      } else {
        await entry.runner?.stop();
        entry.definition = stored;
      }
    }
  }

  delete(name: string): Promise<void> {
    return this.transitions.run(() => this.deleteNow(name));
  }

  private async deleteNow(name: string): Promise<void> {
    const definition = this.running.get(name)?.definition ?? (await this.deps.control.getPipeline(name));
    if (!definition) throw new RunnelError("not_found", `pipeline "${name}" does not exist`);
    await this.running.get(name)?.runner?.stop();
    this.running.delete(name);
    if (await this.deps.streams.get(name)) await this.deps.streams.delete(name);
    const late = lateStreamOf(name);
    const lateStream = await this.deps.streams.get(late);
    if (lateStream?.derivedFrom === name) await this.deps.streams.delete(late);
    // Every task's checkpoint (claimed first: the drop is fenced like a write, and the runner
    // above has stopped) and the job's exchange stream.
    await dropJobTasks(this.deps.log, this.deps.checkpoints, name, this.owner);
    await dropLegacyCheckpoint(this.deps.log, name);
    await this.deps.control.deletePipeline(name);
  }

  async get(name: string): Promise<PipelineDescription | undefined> {
    const running = this.running.get(name);
    return running && this.describe(running);
  }

  async list(): Promise<PipelineDescription[]> {
    return [...this.running.values()].map((r) => this.describe(r));
  }

  /** Pipelines that read `stream`. */
  readersOf(stream: string): string[] {
    return [...this.running.values()].filter((r) => r.compiled.inputStream === stream).map((r) => r.definition.name);
  }

  /** Pipelines whose rounds keep failing (retried with back-off), for readiness. */
  failing(): { consumer: string; since: number; attempts: number; error: string }[] {
    const out = [];
    for (const r of this.running.values()) {
      if (!r.definition.enabled || r.runner === undefined) continue;
      const failing = r.runner.stats().failing;
      if (failing !== undefined) out.push({ consumer: `pipeline/${r.definition.name}`, ...failing });
    }
    return out;
  }

  /** Window state of each windowed pipeline, read by monitoring at scrape time. */
  private windowStates(): WindowState[] {
    const states: WindowState[] = [];
    for (const { definition, runner } of this.running.values()) {
      if (!definition.enabled || !(runner instanceof WindowedPipelineRunner)) continue;
      const stats = runner.stats();
      states.push({
        pipeline: definition.name,
        keys: stats.stateKeys,
        openWindows: stats.openWindows,
        watermark: stats.watermark,
      });
    }
    return states;
  }

  async stop(): Promise<void> {
    this.unregisterWindowState?.();
    this.unregisterWindowState = undefined;
    await this.transitions;
    await Promise.all([...this.running.values()].map((r) => r.runner?.stop()));
    this.running.clear();
  }

  /**
   * Creates the pipeline's streams when missing and starts its runner. A pipeline created
   * `elsewhere` is launched only once its creator has made its streams (undefined until then: the
   * streams' own changes launch it), so two instances never race to create them.
   */
  private async launch(
    definition: PipelineDefinition,
    created: "here" | "elsewhere",
    compiledAlready?: CompiledPipeline,
  ): Promise<Running | undefined> {
    const { log, streams } = this.deps;
    const sql = definition.sql;
    const options = parsePipelineOptions(definition.options);
    const compiled = compiledAlready ?? compilePipeline(sql, (s) => log.hasStream(s));
    const input = await streams.get(compiled.inputStream);
    if (!input) throw new RunnelError("stream_not_found", `stream "${compiled.inputStream}" does not exist`);
    if (created === "elsewhere") {
      const outputs = compiled.kind === "window" ? [definition.name, lateStreamOf(definition.name)] : [definition.name];
      for (const name of outputs) if ((await streams.get(name)) === undefined) return undefined;
    }
    if (!(await streams.get(definition.name))) {
      await streams.create({
        name: definition.name,
        partitions: input.partitions,
        timestampField: "_time",
        schema: outputSchema(compiled),
        derivedFrom: definition.name,
        ...(input.retentionMs !== undefined && { retentionMs: input.retentionMs }),
      });
    }
    if (compiled.kind === "window") {
      const late = lateStreamOf(definition.name);
      if (!(await streams.get(late))) {
        await streams.create({
          name: late,
          partitions: input.partitions,
          timestampField: "_time",
          derivedFrom: definition.name,
          ...(input.retentionMs !== undefined && { retentionMs: input.retentionMs }),
        });
      }
    }
    const runner = definition.enabled ? this.createRunner(definition, compiled, options, input.retentionMs) : undefined;
    await runner?.start();
    const running: Running = { definition, sql, options, compiled, runner };
    this.running.set(definition.name, running);
    return running;
  }

  /** `retentionMs`: the input's, kept by a windowed job's exchange stream. */
  private createRunner(
    definition: PipelineDefinition,
    compiled: CompiledPipeline,
    options: PipelineOptions,
    retentionMs: number | undefined,
  ): Runner {
    const { log, clock, checkpoints } = this.deps;
    const deadLetters = this.deps.deadLetters !== undefined && { deadLetters: this.deps.deadLetters };
    const ownership = {
      ...(this.deps.ownership !== undefined && { ownership: this.deps.ownership }),
      ...(this.deps.fencedWriter !== undefined && { fencedWriter: this.deps.fencedWriter }),
    };
    const owner = this.owner;
    if (compiled.kind === "window") {
      return new WindowedPipelineRunner({
        log,
        name: definition.name,
        inputStream: compiled.inputStream,
        plan: compiled.plan,
        outputStream: definition.name,
        lateStream: lateStreamOf(definition.name),
        ...(retentionMs !== undefined && { retentionMs }),
        startFrom: definition.startFrom,
        options,
        clock,
        checkpoints,
        owner,
        checkpointObserver: {
          taken: (ms) => this.probe.checkpointTaken(`pipeline/${definition.name}`, ms),
          failed: () => this.probe.checkpointFailed(`pipeline/${definition.name}`),
        },
        ...deadLetters,
        ...ownership,
      });
    }
    return new PipelineRunner({
      log,
      pipeline: definition,
      compiled,
      outputStream: definition.name,
      clock,
      checkpoints,
      owner,
      ...deadLetters,
      ...ownership,
    });
  }

  private describe(running: Running): PipelineDescription {
    const { definition, compiled, runner } = running;
    return {
      name: definition.name,
      sql: running.sql,
      input: compiled.inputStream,
      output: definition.name,
      startFrom: definition.startFrom,
      createdAt: definition.createdAt,
      kind: compiled.kind,
      ...(compiled.kind === "window" && {
        lateOutput: lateStreamOf(definition.name),
        options: describeOptions(running.options),
      }),
      enabled: definition.enabled,
      stats: runner?.stats() ?? IDLE_STATS,
    };
  }
}
