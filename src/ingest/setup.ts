/**
 * Builds the ingestion side for the composition root: the one validator with its backpressure
 * bounds, the Idempotency-Key journal, and the configured sources, all from Config.
 */
import { join } from "node:path";
import type { Config } from "../config/config.js";
import type { Clock } from "../core/clock.js";
import type { EventLog } from "../log/types.js";
import type { Metrics } from "../monitoring/metrics.js";
import { loadSourcesFile } from "../sources/config.js";
import type { StreamAccess } from "../sources/deliver.js";
import { SourceManager } from "../sources/manager.js";
import { Backpressure } from "./backpressure.js";
import type { ColumnSource } from "./column-check.js";
import { IdempotencyStore } from "./idempotency.js";
import { type BlockList, StreamIngestor, type StreamLookup } from "./ingestor.js";

export interface Ingestion {
  readonly ingestor: StreamIngestor;
  readonly idempotency: IdempotencyStore;
  readonly sources: SourceManager;
  stop(): Promise<void>;
}

export interface IngestionDeps {
  readonly config: Config;
  readonly log: EventLog;
  readonly streams: StreamLookup & StreamAccess;
  readonly clock: Clock;
  readonly metrics: Metrics;
  /** Records durable but not yet processed, per stream. */
  readonly lag: () => ReadonlyMap<string, number>;
  readonly onSourceError?: (source: string, error: Error) => void;
  /** CEP blocks: checked in the validator, so every source refuses a blocked user's events. */
  readonly blocks?: BlockList;
  /** Column types: values that do not fit their field's column are refused. */
  readonly columns?: ColumnSource;
}

export async function startIngestion(deps: IngestionDeps): Promise<Ingestion> {
  const { config, log, streams, clock, metrics } = deps;
  // Read before anything starts, so a bad sources file stops the process with the field named.
  const fromFile = config.sourcesFile !== undefined ? await loadSourcesFile(config.sourcesFile) : [];
  const backpressure = new Backpressure({
    maxPendingBytes: config.ingest.maxPendingBytes,
    maxLagRecords: config.ingest.maxLagRecords,
    lag: () => {
      let total = 0;
      for (const behind of deps.lag().values()) total += behind;
      return total;
    },
    now: () => clock.now(),
    onPending: (bytes) => metrics.ingestPendingBytes.set(bytes),
  });
  const ingestor = new StreamIngestor({
    log,
    streams,
    clock,
    metrics,
    maxEventBytes: config.limits.maxEventBytes,
    backpressure,
    ...(deps.blocks !== undefined && { blocks: deps.blocks }),
    ...(deps.columns !== undefined && { columns: deps.columns }),
  });
  const idempotency = new IdempotencyStore({
    file: join(config.dataDir, "ingest", "idempotency-keys.ndjson"),
    clock,
    ttlMs: config.ingest.idempotencyTtlMs,
    log,
  });
  await idempotency.open();
  const sources = new SourceManager({
    ingestor,
    streams,
    log,
    dataDir: config.dataDir,
    metrics,
    clock,
    jsonLimits: config.limits.json,
    ...(deps.onSourceError !== undefined && { onError: deps.onSourceError }),
  });
  await sources.open(fromFile);
  return {
    ingestor,
    idempotency,
    sources,
    stop: async () => {
      await sources.stop();
      await idempotency.close();
    },
  };
}
