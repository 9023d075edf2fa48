/**
 * The lifecycle of pipelines: compiled at creation (bad SQL is refused before anything exists),
 * an output stream with the input's partition count, a runner per pipeline, restarted on boot.
 * Order of creation: catalogue row, then output stream, then runner; `open()` repairs a crash
 * between any two of them.
 */

import type { ControlStore, PipelineDefinition } from "../control/types.js";
import type { Clock } from "../core/clock.js";
import { RunnelError } from "../core/errors.js";
import type { EventLog } from "../log/types.js";
import type { Metrics } from "../monitoring/metrics.js";
import { PipelineRunner, type PipelineStats } from "../stream/runner.js";
import { type CompiledPipeline, compilePipeline } from "../stream/sql/index.js";
import { checkStreamName } from "./stream-spec.js";
import type { StreamCatalog } from "./streams.js";

interface Running {
  readonly definition: PipelineDefinition;
  readonly compiled: CompiledPipeline;
  readonly runner: PipelineRunner;
}

export interface PipelineDescription {
  readonly name: string;
  readonly sql: string;
  readonly input: string;
  readonly output: string;
  readonly startFrom: "earliest" | "now";
  readonly createdAt: string;
  readonly stats: PipelineStats;
}

export class PipelineManager {
  private readonly running = new Map<string, Running>();

  constructor(
    private readonly deps: {
      readonly control: ControlStore;
      readonly log: EventLog;
      readonly streams: StreamCatalog;
      readonly metrics: Metrics;
      readonly clock: Clock;
    },
  ) {}

  async open(): Promise<void> {
    for (const definition of await this.deps.control.listPipelines()) {
      await this.launch(definition);
    }
  }

  async create(request: { name: string; sql: string; startFrom?: "earliest" | "now" }): Promise<PipelineDescription> {
    const name = checkStreamName(request.name);
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
    const definition = await this.deps.control.createPipeline({
      name,
      sql: request.sql,
      startFrom: request.startFrom ?? "now",
    });
    return this.describe(await this.launch(definition, compiled));
  }

  async delete(name: string): Promise<void> {
    const definition = this.running.get(name)?.definition ?? (await this.deps.control.getPipeline(name));
    if (!definition) throw new RunnelError("not_found", `pipeline "${name}" does not exist`);
    await this.running.get(name)?.runner.stop();
    this.running.delete(name);
    if (await this.deps.streams.get(name)) await this.deps.streams.delete(name);
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

  /** False when a pipeline keeps failing against the log. */
  healthy(): boolean {
    return [...this.running.values()].every((r) => r.runner.stats().failures === 0 || r.runner.stats().running);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.running.values()].map((r) => r.runner.stop()));
    this.running.clear();
  }

  private async launch(definition: PipelineDefinition, compiledAlready?: CompiledPipeline): Promise<Running> {
    const { log, streams, clock } = this.deps;
    const compiled = compiledAlready ?? compilePipeline(definition.sql, (s) => log.hasStream(s));
    const input = await streams.get(compiled.inputStream);
    if (!input) throw new RunnelError("stream_not_found", `stream "${compiled.inputStream}" does not exist`);
    if (!(await streams.get(definition.name))) {
      await streams.create({
        name: definition.name,
        partitions: input.partitions,
        timestampField: "_time",
        derivedFrom: definition.name,
        ...(input.retentionMs !== undefined && { retentionMs: input.retentionMs }),
      });
    }
    const runner = new PipelineRunner({ log, pipeline: definition, compiled, outputStream: definition.name, clock });
    await runner.start();
    const running = { definition, compiled, runner };
    this.running.set(definition.name, running);
    return running;
  }

  private describe(running: Running): PipelineDescription {
    const { definition, compiled, runner } = running;
    return {
      name: definition.name,
      sql: definition.sql,
      input: compiled.inputStream,
      output: definition.name,
      startFrom: definition.startFrom,
      createdAt: definition.createdAt,
      stats: runner.stats(),
    };
  }
}
