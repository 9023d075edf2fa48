/**
 * Runs the configured sources: those of the sources file (RUNNEL_SOURCES_FILE) and those added
 * through the admin API (kept in <data>/sources/api-sources.json so they survive restarts).
 * Each source is supervised: a failed start is retried with back-off, and its state (starting,
 * running, lagging, failed with the reason, stopped) and counters are reported to the API.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Clock } from "../core/clock.js";
import { RunnelError } from "../core/errors.js";
import type { JsonLimits } from "../ingest/json-limits.js";
import type { Ingestor, Principal } from "../ingest/types.js";
import type { Metrics } from "../monitoring/metrics.js";
import type { LogReader } from "./checkpoint.js";
import { writeCheckpoint } from "./checkpoint.js";
import { parseSourceSpec } from "./config.js";
import { Delivery, type StreamAccess } from "./deliver.js";
import { FileSource } from "./file.js";
import { KafkaSource } from "./kafka.js";
import { MqttSource } from "./mqtt.js";
import type { RunningSource, SourceCounters, SourceSpec, SourceStateName, SourceStatus } from "./types.js";

export interface SourceManagerOptions {
  readonly ingestor: Ingestor;
  readonly streams: StreamAccess;
  readonly log: LogReader;
  readonly dataDir: string;
  readonly metrics: Metrics;
  readonly clock: Clock;
  /** The shape limits of every JSON body (config.limits.json), applied to each record too. */
  readonly jsonLimits: JsonLimits;
  /** Called when a source fails, for the process log. */
  readonly onError?: (source: string, error: Error) => void;
}

interface Supervised {
  readonly spec: SourceSpec;
  readonly origin: "file" | "api";
  readonly counters: SourceCounters;
  source: RunningSource | undefined;
  state: SourceStateName;
  reason: string | undefined;
  since: number;
  timer: NodeJS.Timeout | undefined;
  attempts: number;
  stopped: boolean;
}

const MAX_BACKOFF_MS = 30_000;

export class SourceManager {
  private readonly sources = new Map<string, Supervised>();
  private readonly apiFile: string;

  constructor(private readonly options: SourceManagerOptions) {
    this.apiFile = join(options.dataDir, "sources", "api-sources.json");
  }

  /** Starts the file's sources and those added earlier through the API. */
  async open(fromFile: readonly SourceSpec[]): Promise<void> {
    for (const spec of fromFile) this.launch(spec, "file");
    for (const spec of await this.loadApiSpecs()) {
      if (!this.sources.has(spec.name)) this.launch(spec, "api");
    }
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.sources.values()].map((s) => this.halt(s)));
  }

  list(): SourceStatus[] {
    return [...this.sources.values()].map((s) => this.statusOf(s));
  }

  get(name: string): SourceStatus | undefined {
    const s = this.sources.get(name);
    return s && this.statusOf(s);
  }

  specOf(name: string): SourceSpec | undefined {
    return this.sources.get(name)?.spec;
  }

  async create(body: unknown): Promise<SourceStatus> {
    const spec = parseSourceSpec(body, "body");
    if (this.sources.has(spec.name)) throw new RunnelError("conflict", `source "${spec.name}" already exists`);
    const s = this.launch(spec, "api");
    await this.saveApiSpecs();
    return this.statusOf(s);
  }

  async delete(name: string): Promise<void> {
    const s = this.sources.get(name);
    if (!s) throw new RunnelError("not_found", `source "${name}" does not exist`);
    if (s.origin === "file") {
      throw new RunnelError("conflict", `source "${name}" is defined in the sources file; remove it there`);
    }
    this.sources.delete(name);
    await this.halt(s);
    this.options.metrics.sourceUp.remove({ source: name });
    await this.saveApiSpecs();
  }

  /** Stops and starts a source again (after fixing what made it fail). */
  async restart(name: string): Promise<SourceStatus> {
    const s = this.sources.get(name);
    if (!s) throw new RunnelError("not_found", `source "${name}" does not exist`);
    await this.halt(s);
    this.sources.delete(name);
    return this.statusOf(this.launch(s.spec, s.origin));
  }

  private launch(spec: SourceSpec, origin: "file" | "api"): Supervised {
    const s: Supervised = {
      spec,
      origin,
      counters: { accepted: 0, deadLettered: 0, backlog: 0 },
      source: undefined,
      state: "starting",
      reason: undefined,
      since: this.options.clock.now(),
      timer: undefined,
      attempts: 0,
      stopped: false,
    };
    this.sources.set(spec.name, s);
    void this.attempt(s);
    return s;
  }

  private async attempt(s: Supervised): Promise<void> {
    if (s.stopped) return;
    const source = this.build(s);
    s.source = source;
    try {
      await source.start();
      if (s.stopped) {
        await source.stop();
        return;
      }
      s.attempts = 0;
      this.setState(s, "running", undefined);
    } catch (e) {
      await source.stop().catch(() => undefined);
      s.source = undefined;
      if (s.stopped) return;
      const error = e instanceof Error ? e : new Error(String(e));
      this.setState(s, "failed", error.message);
      this.options.onError?.(s.spec.name, error);
      const wait = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** s.attempts++);
      s.timer = setTimeout(() => void this.attempt(s), wait);
    }
  }

  private async halt(s: Supervised): Promise<void> {
    s.stopped = true;
    if (s.timer) clearTimeout(s.timer);
    const source = s.source;
    s.source = undefined;
    this.setState(s, "stopped", undefined);
    await source?.stop();
  }

  private build(s: Supervised): RunningSource {
    const { ingestor, streams, log, dataDir, metrics, clock, jsonLimits } = this.options;
    const spec = s.spec;
    // Sources ingest on behalf of the users their events name, like a service credential.
    const principal: Principal = { userId: `source:${spec.name}`, username: `source:${spec.name}`, role: "service" };
    const delivery = new Delivery({
      source: spec.name,
      ingestor,
      streams,
      principal,
      counters: s.counters,
      metricLabel: spec.type,
      now: () => clock.now(),
      record: (outcome, n) => metrics.sourceRecords.inc({ source: spec.name, outcome }, n),
    });
    switch (spec.type) {
      case "mqtt":
        return new MqttSource(spec, delivery, jsonLimits);
      case "file":
        return new FileSource(spec, {
          delivery,
          log,
          counters: s.counters,
          checkpointDir: join(dataDir, "sources"),
          jsonLimits,
        });
      case "kafka":
        return new KafkaSource(spec, { delivery, counters: s.counters, jsonLimits });
    }
  }

  private setState(s: Supervised, state: SourceStateName, reason: string | undefined): void {
    if (s.state !== state || s.reason !== reason) s.since = this.options.clock.now();
    s.state = state;
    s.reason = reason;
    this.options.metrics.sourceUp.set({ source: s.spec.name }, state === "running" ? 1 : 0);
  }

  private statusOf(s: Supervised): SourceStatus {
    let state = s.state;
    let reason = s.reason;
    if (state === "running" && s.source) {
      const health = s.source.health();
      state = health.state;
      reason = health.reason;
    }
    return {
      name: s.spec.name,
      type: s.spec.type,
      state,
      ...(reason !== undefined && { reason }),
      origin: s.origin,
      metrics: { ...s.counters },
      since: new Date(s.since).toISOString(),
    };
  }

  private async loadApiSpecs(): Promise<SourceSpec[]> {
    let text: string;
    try {
      text = await readFile(this.apiFile, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
    return (JSON.parse(text) as unknown[]).map((s, i) => parseSourceSpec(s, `${this.apiFile}[${i}]`));
  }

  private async saveApiSpecs(): Promise<void> {
    const specs = [...this.sources.values()].filter((s) => s.origin === "api").map((s) => s.spec);
    await writeCheckpoint(this.apiFile, specs);
  }
}
