/**
 * Every metric Runnel exposes, named in one place (Prometheus conventions: base units, `_total`
 * counters, `_seconds` histograms, bounded labels — never a user id as a label).
 *
 * Label values are chosen by admins (stream, pipeline and rule names), fixed by code (reason,
 * outcome, kind, state) or bounded by configuration (partition); none comes from event content.
 *
 * Two kinds of metric live here:
 * - pushed: the code that sees the event calls inc()/observe() (ingest, queries, HTTP);
 * - pulled: read from components' stats at scrape time (`onScrape`, src/monitoring/collectors.ts),
 *   so src/log, src/stream, src/cep and src/analytics never depend on prom-client.
 *
 * @example
 *   const metrics = createMetrics();
 *   metrics.ingestEvents.inc({ stream: "clicks", source: "http" }, 10);
 *   metrics.onScrape(() => metrics.analyticsLag.set({ stream: "clicks" }, loader.lag().get("clicks") ?? 0));
 *   const text = await metrics.registry.metrics();
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Records (or appends) that shared one fdatasync round: 1 alone, thousands under load. */
const BATCH_RECORD_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000];
const BATCH_APPEND_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const CHECKPOINT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * prom-client names three gauges `…_total`, which Prometheus reserves for counters (promtool check
 * metrics flags them); the per-type gauges without the suffix (`nodejs_active_handles{type}`, …)
 * carry the same numbers: `sum(nodejs_active_handles)`.
 */
export const DROPPED_DEFAULT_METRICS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
] as const;

/** Refreshes pulled metrics; runs once per scrape however many metrics ask for it. */
export type ScrapeHook = () => void | Promise<void>;

export function createMetrics() {
  const registry = new Registry();
  // prom-client's process and Node.js metrics under their standard names (process_cpu_seconds_total,
  // nodejs_eventloop_lag_seconds, …), unprefixed, so stock Node.js dashboards and alerts work; the
  // scrape's `job` label tells Runnel apart from other Node processes on a shared Prometheus.
  collectDefaultMetrics({ register: registry });
  for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(name);

  const hooks: ScrapeHook[] = [];
  let inflight: Promise<void> | undefined;
  // prom-client collects every metric concurrently; sharing one promise means one pass per scrape.
  const refresh = (): Promise<void> => {
    inflight ??= Promise.allSettled(hooks.map((h) => h())).then(
      () => {
        inflight = undefined;
      },
      () => {
        inflight = undefined;
      },
    );
    return inflight;
  };
  const pulled = { registers: [registry], collect: refresh };
  const pushed = { registers: [registry] };

  return {
    registry,
    /** Registers a hook that refreshes pulled metrics before each scrape; returns its removal. */
    onScrape(hook: ScrapeHook): () => void {
      hooks.push(hook);
      return () => {
        const i = hooks.indexOf(hook);
        if (i >= 0) hooks.splice(i, 1);
      };
    },

    // ── ingest ──
    ingestEvents: new Counter({
      name: "runnel_ingest_events_total",
      help: "Events appended to the log, by stream and source.",
      labelNames: ["stream", "source"] as const,
      ...pushed,
    }),
    ingestBytes: new Counter({
      name: "runnel_ingest_bytes_total",
      help: "Bytes of events appended to the log, by stream and source.",
      labelNames: ["stream", "source"] as const,
      ...pushed,
    }),
    ingestRefusals: new Counter({
      name: "runnel_ingest_refusals_total",
      help: "Ingest requests refused, by reason (invalid, forbidden, user_blocked, event_too_large, overloaded, …).",
      labelNames: ["reason"] as const,
      ...pushed,
    }),
    ingestRequestDuration: new Histogram({
      name: "runnel_ingest_request_duration_seconds",
      help: "Time from receiving an ingest request to its answer (includes the durable append).",
      labelNames: ["source"] as const,
      buckets: LATENCY_BUCKETS,
      ...pushed,
    }),
    sourceRecords: new Counter({
      name: "runnel_source_records_total",
      help: "Records read by configured sources (MQTT, Kafka topics, files), by outcome (accepted, dead_letter).",
      labelNames: ["source", "outcome"] as const,
      ...pushed,
    }),
    sourceUp: new Gauge({
      name: "runnel_source_up",
      help: "1 while the source runs (or lags), 0 when it failed or stopped; by source.",
      labelNames: ["source"] as const,
      ...pushed,
    }),
    ingestPendingBytes: new Gauge({
      name: "runnel_ingest_pending_bytes",
      help: "Bytes accepted for ingest and not yet durable (backpressure refuses past the bound).",
      ...pushed,
    }),

    // ── log ──
    logAppendDuration: new Histogram({
      name: "runnel_log_append_duration_seconds",
      help: "Time for one append to become durable (group commit and fdatasync included).",
      labelNames: ["outcome"] as const,
      buckets: LATENCY_BUCKETS,
      ...pushed,
    }),
    logAppendCalls: new Counter({
      name: "runnel_log_appends_total",
      help: "Append calls made to the log (each is one atomic batch).",
      ...pulled,
    }),
    logAppendedRecords: new Counter({
      name: "runnel_log_appended_records_total",
      help: "Records appended to the log.",
      ...pulled,
    }),
    logCommitGroups: new Counter({
      name: "runnel_log_commit_groups_total",
      help: "Group commits: appends that shared one fdatasync round. Batch size = rate(runnel_log_appends_total) / rate(this).",
      ...pulled,
    }),
    logFsyncs: new Counter({
      name: "runnel_log_fsyncs_total",
      help: "fdatasync calls made by the log (one per touched partition per group, plus the commit file).",
      ...pulled,
    }),
    logFsyncBatchRecords: new Histogram({
      name: "runnel_log_fsync_batch_records",
      help: "Records made durable by one group commit (one fdatasync round of a stream), local log only.",
      buckets: BATCH_RECORD_BUCKETS,
      ...pushed,
    }),
    logFsyncBatchAppends: new Histogram({
      name: "runnel_log_fsync_batch_appends",
      help: "Append calls that shared one group commit (one fdatasync round of a stream), local log only.",
      buckets: BATCH_APPEND_BUCKETS,
      ...pushed,
    }),
    logStreams: new Gauge({
      name: "runnel_log_streams",
      help: "Streams held by the log, including internal ones.",
      ...pulled,
    }),
    logSize: new Gauge({
      name: "runnel_log_size_bytes",
      help: "Bytes the log occupies on disk.",
      ...pulled,
    }),
    logStreamSize: new Gauge({
      name: "runnel_log_stream_size_bytes",
      help: "Bytes of the stream's segment files in the local log, by stream (internal streams too).",
      labelNames: ["stream"] as const,
      ...pulled,
    }),
    logRetentionSegments: new Counter({
      name: "runnel_log_retention_deleted_segments_total",
      help: "Segments deleted by retention.",
      ...pushed,
    }),
    logRetentionBytes: new Counter({
      name: "runnel_log_retention_deleted_bytes_total",
      help: "Bytes deleted by retention.",
      ...pushed,
    }),
    logRecoveries: new Counter({
      name: "runnel_log_recovery_truncations_total",
      help: "Truncations made while opening the log (torn tails, uncommitted batches), by reason.",
      labelNames: ["reason"] as const,
      ...pushed,
    }),
    logRecoveredBytes: new Counter({
      name: "runnel_log_recovery_truncated_bytes_total",
      help: "Bytes cut from partition tails while opening the log (torn writes, uncommitted batches).",
      ...pulled,
    }),
    logRefusedAppends: new Counter({
      name: "runnel_log_refused_appends_total",
      help: "Appends the log refused after trying to write them (a full disk: storage_full); none of their records were kept.",
      ...pulled,
    }),
    logRollbacks: new Counter({
      name: "runnel_log_rollbacks_total",
      help: "Times the log truncated partitions back to the last published record after a failed write.",
      ...pulled,
    }),
    logRolledBackBytes: new Counter({
      name: "runnel_log_rolled_back_bytes_total",
      help: "Bytes truncated by rollbacks after failed writes.",
      ...pulled,
    }),
    storageFree: new Gauge({
      name: "runnel_storage_available_bytes",
      help: "Bytes available to Runnel on the filesystem holding the data directory.",
      ...pulled,
    }),
    storageSize: new Gauge({
      name: "runnel_storage_size_bytes",
      help: "Total size of the filesystem holding the data directory.",
      ...pulled,
    }),

    // ── processing (pipelines, windows) ──
    pipelineRecords: new Counter({
      name: "runnel_pipeline_records_total",
      help: "Records read (direction=in) and written (direction=out) by each pipeline: operator throughput.",
      labelNames: ["pipeline", "direction"] as const,
      ...pulled,
    }),
    pipelineDiscarded: new Counter({
      name: "runnel_pipeline_discarded_records_total",
      help: "Input records a pipeline produced nothing for, by reason (filtered by WHERE, error in an expression, late).",
      labelNames: ["pipeline", "reason"] as const,
      ...pulled,
    }),
    pipelineFailures: new Counter({
      name: "runnel_pipeline_failures_total",
      help: "Processing rounds that failed against the log (retried after a delay).",
      labelNames: ["pipeline"] as const,
      ...pulled,
    }),
    pipelineRunning: new Gauge({
      name: "runnel_pipeline_running",
      help: "1 while the pipeline's runner is running.",
      labelNames: ["pipeline"] as const,
      ...pulled,
    }),
    pipelineLag: new Gauge({
      name: "runnel_pipeline_lag_records",
      help: "Input records not yet processed by the pipeline, per input partition.",
      labelNames: ["pipeline", "partition"] as const,
      ...pulled,
    }),
    pipelineLagSeconds: new Gauge({
      name: "runnel_pipeline_lag_seconds",
      help: "Event-time age of the oldest unprocessed input record, per partition (0 when caught up).",
      labelNames: ["pipeline", "partition"] as const,
      ...pulled,
    }),
    watermarkDelay: new Gauge({
      name: "runnel_pipeline_watermark_delay_seconds",
      help: "How far the pipeline's watermark (event time) trails the wall clock.",
      labelNames: ["pipeline"] as const,
      ...pulled,
    }),
    windowStateKeys: new Gauge({
      name: "runnel_window_state_keys",
      help: "Keys with open window state, per windowed pipeline.",
      labelNames: ["pipeline"] as const,
      ...pulled,
    }),
    windowOpenWindows: new Gauge({
      name: "runnel_window_open_windows",
      help: "Windows open (not yet fired by the watermark), per windowed pipeline.",
      labelNames: ["pipeline"] as const,
      ...pulled,
    }),

    // ── checkpoints ──
    checkpointDuration: new Histogram({
      name: "runnel_checkpoint_duration_seconds",
      help: "Time to take and store one checkpoint, by task (pipeline/<name> or cep).",
      labelNames: ["task"] as const,
      buckets: CHECKPOINT_BUCKETS,
      ...pushed,
    }),
    checkpointFailures: new Counter({
      name: "runnel_checkpoint_failures_total",
      help: "Checkpoints that could not be stored, by task.",
      labelNames: ["task"] as const,
      ...pushed,
    }),
    checkpointAge: new Gauge({
      name: "runnel_checkpoint_age_seconds",
      help: "Time since the task's last successful checkpoint.",
      labelNames: ["task"] as const,
      ...pulled,
    }),

    // ── consumers (analytics loader, pipelines, rules): records they could never process ──
    consumerDeadLetters: new Counter({
      name: "runnel_consumer_dead_letters_total",
      help: "Records a consumer could never process and moved to the stream's dead-letter stream.",
      labelNames: ["consumer", "stream"] as const,
      ...pushed,
    }),
    consumerFailing: new Gauge({
      name: "runnel_consumer_failing",
      help: "1 while the consumer's rounds keep failing (retried with back-off), by consumer.",
      labelNames: ["consumer"] as const,
      ...pulled,
    }),

    // ── CEP rules, alerts, webhooks ──
    ruleLateEvents: new Counter({
      name: "runnel_rule_late_events_total",
      help: "Events the rule dropped for arriving behind its partition's watermark.",
      labelNames: ["rule"] as const,
      ...pulled,
    }),
    cepPartialMatches: new Gauge({
      name: "runnel_cep_partial_matches",
      help: "Partial matches (NFA runs) held for the rule.",
      labelNames: ["rule"] as const,
      ...pulled,
    }),
    cepStateKeys: new Gauge({
      name: "runnel_cep_state_keys",
      help: "Keys with CEP state for the rule.",
      labelNames: ["rule"] as const,
      ...pulled,
    }),
    ruleMatches: new Counter({
      name: "runnel_rule_matches_total",
      help: "Complete matches of the rule's pattern.",
      labelNames: ["rule"] as const,
      ...pushed,
    }),
    ruleAlerts: new Counter({
      name: "runnel_rule_alerts_total",
      help: "Alerts raised by the rule, by severity.",
      labelNames: ["rule", "severity"] as const,
      ...pushed,
    }),
    webhookDeliveries: new Counter({
      name: "runnel_webhook_deliveries_total",
      help: "Webhook deliveries that succeeded, by rule.",
      labelNames: ["rule"] as const,
      ...pushed,
    }),
    webhookFailures: new Counter({
      name: "runnel_webhook_failures_total",
      help: "Webhook attempts that failed, by rule and reason (status, timeout, network), and whether it gave up.",
      labelNames: ["rule", "reason", "final"] as const,
      ...pushed,
    }),

    // ── analytics and queries ──
    analyticsLag: new Gauge({
      name: "runnel_analytics_lag_records",
      help: "Records appended to the log but not yet queryable, by stream.",
      labelNames: ["stream"] as const,
      ...pulled,
    }),
    queryDuration: new Histogram({
      name: "runnel_query_duration_seconds",
      help: "Time to answer a SQL query, by outcome (ok, refused, error).",
      labelNames: ["outcome"] as const,
      buckets: LATENCY_BUCKETS,
      ...pushed,
    }),
    queryRefusals: new Counter({
      name: "runnel_query_refusals_total",
      help: "Queries refused before or while running, by reason (the error code).",
      labelNames: ["reason"] as const,
      ...pushed,
    }),
    queries: new Gauge({
      name: "runnel_queries",
      help: "SQL queries admitted and running, or waiting their turn, by state (running, queued).",
      labelNames: ["state"] as const,
      ...pulled,
    }),

    // ── control DB, HTTP, readiness ──
    controlPoolConnections: new Gauge({
      name: "runnel_control_db_pool_connections",
      help: "Connections of the control database's pool, by state (idle, busy).",
      labelNames: ["state"] as const,
      ...pulled,
    }),
    controlPoolWaiting: new Gauge({
      name: "runnel_control_db_pool_waiting_requests",
      help: "Requests waiting for a control database connection.",
      ...pulled,
    }),
    controlPoolMax: new Gauge({
      name: "runnel_control_db_pool_max_connections",
      help: "Size limit of the control database's pool.",
      ...pulled,
    }),
    httpRequests: new Counter({
      name: "runnel_http_requests_total",
      help: "HTTP requests answered, by route and status class.",
      labelNames: ["route", "status"] as const,
      ...pushed,
    }),
    componentReady: new Gauge({
      name: "runnel_component_ready",
      help: "1 when the component is ready, 0 otherwise (log, processing, analytics, control).",
      labelNames: ["component"] as const,
      ...pulled,
    }),

    // ── cluster mode (src/cluster) ──
    clusterOwnedSlots: new Gauge({
      name: "runnel_cluster_owned_slots",
      help: "Slots this instance owns (partition p of every stream is slot p mod slots); 0 outside cluster mode.",
      ...pulled,
    }),
    clusterRebalances: new Counter({
      name: "runnel_cluster_rebalances_total",
      help: "Changes of the slots this instance owns, each followed by its runners.",
      ...pushed,
    }),
    clusterInstances: new Gauge({
      name: "runnel_cluster_instances",
      help: "Live instances of the installation (seen in the instance registry within 10 s); 1 outside cluster mode.",
      ...pulled,
    }),

    // ── the analytics archive (src/archive) ──
    archiveFiles: new Gauge({
      name: "runnel_archive_files",
      help: "Parquet files in the stream's archive (committed by the manifest).",
      labelNames: ["stream"] as const,
      ...pulled,
    }),
    archiveBytes: new Gauge({
      name: "runnel_archive_size_bytes",
      help: "Bytes of the stream's archive files.",
      labelNames: ["stream"] as const,
      ...pulled,
    }),
    archiveRows: new Gauge({
      name: "runnel_archive_rows",
      help: "Rows in the stream's archive files.",
      labelNames: ["stream"] as const,
      ...pulled,
    }),
    archiveLag: new Gauge({
      name: "runnel_archive_lag_seconds",
      help: "Seconds since the archiver last found the stream with no row left past its hot window.",
      labelNames: ["stream"] as const,
      ...pulled,
    }),
    archiveWrittenFiles: new Counter({
      name: "runnel_archive_written_files_total",
      help: "Archive files committed by this process.",
      labelNames: ["stream"] as const,
      ...pushed,
    }),
    archiveWrittenBytes: new Counter({
      name: "runnel_archive_written_bytes_total",
      help: "Bytes of the archive files committed by this process.",
      labelNames: ["stream"] as const,
      ...pushed,
    }),
    archiveFailures: new Counter({
      name: "runnel_archive_failures_total",
      help: "Archive runs of a stream that failed (its rows stay hot; the next run retries).",
      labelNames: ["stream"] as const,
      ...pushed,
    }),
    archiveCompactions: new Counter({
      name: "runnel_archive_compactions_total",
      help: "Runs of small archive files merged into one by this process.",
      labelNames: ["stream"] as const,
      ...pushed,
    }),
    archiveImportedRows: new Counter({
      name: "runnel_archive_imported_rows_total",
      help: "Rows committed to the archive by imports (runnel import) in this process.",
      labelNames: ["stream"] as const,
      ...pushed,
    }),
    archiveImportsRunning: new Gauge({
      name: "runnel_archive_imports_running",
      help: "Imports running now.",
      ...pulled,
    }),

    // ── rollup tables (src/analytics/duckdb/rollups.ts); one series per declared rollup ──
    rollupInputRows: new Gauge({
      name: "runnel_rollup_input_rows",
      help: "Rows of the stream a rollup has taken in (the rollup ratio is input over kept rows).",
      labelNames: ["stream", "rollup"] as const,
      ...pulled,
    }),
    rollupKeptRows: new Gauge({
      name: "runnel_rollup_kept_rows",
      help: "Rows a rollup keeps for the rows it has taken in.",
      labelNames: ["stream", "rollup"] as const,
      ...pulled,
    }),

    // ── operator alerting (src/monitoring/anomaly.ts) ──
    operatorAlerts: new Counter({
      name: "runnel_operator_alerts_total",
      help: "Operator alerts raised, by kind (spike, drop, lag_growth from the anomaly detector; dead_letter, consumer_failing).",
      labelNames: ["kind"] as const,
      ...pushed,
    }),
    operatorAlertsActive: new Gauge({
      name: "runnel_operator_alerts_active",
      help: "Operator alerts currently active, by kind and subject (a stream or a consumer).",
      labelNames: ["kind", "subject"] as const,
      ...pulled,
    }),
    ingestBaseline: new Gauge({
      name: "runnel_ingest_baseline_events_per_second",
      help: "The detector's learned ingest rate per stream (EWMA).",
      labelNames: ["stream"] as const,
      ...pulled,
    }),
    ingestAnomalyScore: new Gauge({
      name: "runnel_ingest_anomaly_score",
      help: "Latest z-score of the stream's ingest rate against its baseline.",
      labelNames: ["stream"] as const,
      ...pulled,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
