/**
 * Scrape-time collectors: one hook that reads every component's stats and sets the pulled
 * metrics of metrics.ts. Wired once by the composition root; components only offer stats
 * functions (probes.ts), so none of them imports prom-client.
 */
import { join } from "node:path";
import type { Clock } from "../core/clock.js";
import type { EventLog } from "../log/types.js";
import { consumerLag, type PartitionLag } from "./consumer-lag.js";
import type { Metrics } from "./metrics.js";
import type { LogStats, PipelineView, PoolStatsSource } from "./probes.js";
import type { PrometheusProbe } from "./prometheus-probe.js";
import { cached, directoryBytes, filesystemUsage } from "./storage.js";

export interface CollectorSources {
  readonly clock: Clock;
  readonly log: EventLog;
  readonly logStats?: () => LogStats;
  /** Bytes per stream held by the log (the local log's streamSizes()). */
  readonly logStreamSizes?: () => ReadonlyMap<string, number>;
  /** The data directory (free space) and the log's directory under it (size). */
  readonly dataDir: string;
  readonly logDir?: string;
  readonly pipelines?: () => Promise<readonly PipelineView[]>;
  /** The consumer group a pipeline commits its input offsets under. */
  readonly pipelineGroup?: (pipeline: string) => string;
  readonly analyticsLag?: () => ReadonlyMap<string, number>;
  readonly readiness?: () => Promise<Record<string, boolean>>;
  readonly controlPool?: PoolStatsSource;
  readonly probe: PrometheusProbe;
}

/** Disk is walked at most this often, whatever the scrape interval. */
const STORAGE_TTL_MS = 10_000;

export function registerCollectors(metrics: Metrics, sources: CollectorSources): () => void {
  const now = () => sources.clock.now();
  const logDir = sources.logDir ?? join(sources.dataDir, "log");
  const logBytes = cached(() => directoryBytes(logDir), STORAGE_TTL_MS, now);
  const fsUsage = cached(() => filesystemUsage(sources.dataDir), STORAGE_TTL_MS, now);

  const hooks = [
    metrics.onScrape(() => collectLog(metrics, sources)),
    metrics.onScrape(async () => {
      metrics.logSize.set(await logBytes());
      const usage = await fsUsage();
      metrics.storageFree.set(usage.availableBytes);
      metrics.storageSize.set(usage.sizeBytes);
    }),
    metrics.onScrape(() => {
      if (sources.logStreamSizes === undefined) return;
      const sizes = sources.logStreamSizes();
      // Reset first: a deleted stream's series goes with it.
      metrics.logStreamSize.reset();
      for (const [stream, bytes] of sizes) metrics.logStreamSize.set({ stream }, bytes);
    }),
    metrics.onScrape(() => collectProcessing(metrics, sources)),
    metrics.onScrape(() => {
      const lag = sources.analyticsLag?.();
      metrics.analyticsLag.reset();
      for (const [stream, behind] of lag ?? []) metrics.analyticsLag.set({ stream }, behind);
    }),
    metrics.onScrape(async () => {
      if (sources.readiness === undefined) return;
      const components = await sources.readiness();
      for (const [component, ready] of Object.entries(components)) {
        metrics.componentReady.set({ component }, ready ? 1 : 0);
      }
    }),
    metrics.onScrape(() => {
      const pool = sources.controlPool?.();
      if (pool === undefined) return;
      metrics.controlPoolConnections.set({ state: "idle" }, pool.idle);
      metrics.controlPoolConnections.set({ state: "busy" }, Math.max(0, pool.total - pool.idle));
      metrics.controlPoolWaiting.set(pool.waiting);
      metrics.controlPoolMax.set(pool.max);
    }),
  ];
  return () => {
    for (const remove of hooks) remove();
  };
}

function collectLog(metrics: Metrics, sources: CollectorSources): void {
  const stats = sources.logStats?.();
  if (stats === undefined) return;
  setCounter(metrics.logAppendCalls, {}, stats.appends);
  setCounter(metrics.logAppendedRecords, {}, stats.records);
  setCounter(metrics.logCommitGroups, {}, stats.groups);
  setCounter(metrics.logFsyncs, {}, stats.syncs);
  metrics.logStreams.set(stats.streams);
  // Optional: only the local log writes files it may have to refuse, roll back or repair.
  if (stats.failedAppends !== undefined) setCounter(metrics.logRefusedAppends, {}, stats.failedAppends);
  if (stats.rollbacks !== undefined) setCounter(metrics.logRollbacks, {}, stats.rollbacks);
  if (stats.rolledBackBytes !== undefined) setCounter(metrics.logRolledBackBytes, {}, stats.rolledBackBytes);
  if (stats.recoveredBytes !== undefined) setCounter(metrics.logRecoveredBytes, {}, stats.recoveredBytes);
}

/** Pipelines, windows, CEP and checkpoints together: they share gauges and must not race on reset(). */
async function collectProcessing(metrics: Metrics, sources: CollectorSources): Promise<void> {
  const { probe } = sources;
  const pipelines = (await sources.pipelines?.()) ?? [];
  const lags = await Promise.all(pipelines.map((p) => lagOf(sources, p)));
  const now = sources.clock.now();
  for (const m of [
    metrics.pipelineRecords,
    metrics.pipelineDiscarded,
    metrics.pipelineFailures,
    metrics.pipelineRunning,
    metrics.pipelineLag,
    metrics.pipelineLagSeconds,
    metrics.watermarkDelay,
    metrics.windowStateKeys,
    metrics.windowOpenWindows,
    metrics.cepStateKeys,
    metrics.cepPartialMatches,
    metrics.ruleLateEvents,
    metrics.checkpointAge,
  ]) {
    m.reset();
  }
  const live = new Set<string>();
  pipelines.forEach(({ name: pipeline, stats }, i) => {
    live.add(`pipeline/${pipeline}`);
    metrics.pipelineRecords.inc({ pipeline, direction: "in" }, stats.recordsIn);
    metrics.pipelineRecords.inc({ pipeline, direction: "out" }, stats.recordsOut);
    metrics.pipelineDiscarded.inc({ pipeline, reason: "filtered" }, stats.dropped);
    metrics.pipelineDiscarded.inc({ pipeline, reason: "error" }, stats.errors);
    if (stats.late !== undefined) metrics.pipelineDiscarded.inc({ pipeline, reason: "late" }, stats.late);
    metrics.pipelineFailures.inc({ pipeline }, stats.failures);
    metrics.pipelineRunning.set({ pipeline }, stats.running ? 1 : 0);
    if (stats.watermark !== undefined) setWatermarkDelay(metrics, pipeline, stats.watermark, now);
    if (stats.openWindows !== undefined) metrics.windowOpenWindows.set({ pipeline }, stats.openWindows);
    if (stats.lastCheckpointAt !== undefined) probe.noteCheckpoint(`pipeline/${pipeline}`, stats.lastCheckpointAt);
    for (const lag of lags[i] ?? []) {
      const labels = { pipeline, partition: String(lag.partition) };
      metrics.pipelineLag.set(labels, lag.records);
      metrics.pipelineLagSeconds.set(labels, lag.seconds);
    }
  });
  for (const w of probe.windowStates()) {
    metrics.windowStateKeys.set({ pipeline: w.pipeline }, w.keys);
    metrics.windowOpenWindows.set({ pipeline: w.pipeline }, w.openWindows);
    setWatermarkDelay(metrics, w.pipeline, w.watermark, now);
  }
  for (const c of probe.cepStates()) {
    metrics.cepStateKeys.set({ rule: c.rule.name }, c.keys);
    metrics.cepPartialMatches.set({ rule: c.rule.name }, c.partialMatches);
    if (c.late !== undefined) metrics.ruleLateEvents.inc({ rule: c.rule.name }, c.late);
  }
  for (const [task, at] of probe.lastCheckpoints()) {
    // A deleted pipeline's checkpoint would otherwise age forever and page someone.
    if (task.startsWith("pipeline/") && !live.has(task)) {
      probe.forgetTask(task);
      continue;
    }
    metrics.checkpointAge.set({ task }, Math.max(0, now - at) / 1000);
  }
}

async function lagOf(sources: CollectorSources, pipeline: PipelineView): Promise<PartitionLag[]> {
  const group = sources.pipelineGroup?.(pipeline.name);
  if (group === undefined) return [];
  try {
    return await consumerLag(sources.log, group, pipeline.input, sources.clock.now());
  } catch {
    // The input was deleted under the pipeline: nothing to report until the pipeline goes too.
    return [];
  }
}

function setWatermarkDelay(metrics: Metrics, pipeline: string, watermark: number | null, now: number): void {
  if (watermark === null || !Number.isFinite(watermark)) return;
  metrics.watermarkDelay.set({ pipeline }, Math.max(0, now - watermark) / 1000);
}

/** A counter mirrored from a component's own running total. */
function setCounter<T extends string>(
  counter: { reset(): void; inc(labels: Partial<Record<T, string>>, value: number): void },
  labels: Partial<Record<T, string>>,
  value: number,
): void {
  counter.reset();
  counter.inc(labels, value);
}
