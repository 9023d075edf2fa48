/**
 * Every metric Runnel exposes, named in one place (Prometheus conventions: base units, `_total`
 * counters, `_seconds` histograms, bounded labels — never a user id as a label).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "runnel_process_" });

  return {
    registry,
    ingestEvents: new Counter({
      name: "runnel_ingest_events_total",
      help: "Events appended to the log, by stream and source.",
      labelNames: ["stream", "source"] as const,
      registers: [registry],
    }),
    ingestBytes: new Counter({
      name: "runnel_ingest_bytes_total",
      help: "Bytes of events appended to the log, by stream and source.",
      labelNames: ["stream", "source"] as const,
      registers: [registry],
    }),
    ingestRefusals: new Counter({
      name: "runnel_ingest_refusals_total",
      help: "Ingest requests refused, by reason (the error code).",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    ingestRequestDuration: new Histogram({
      name: "runnel_ingest_request_duration_seconds",
      help: "Time from receiving an ingest request to its answer (includes the durable append).",
      labelNames: ["source"] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    queryDuration: new Histogram({
      name: "runnel_query_duration_seconds",
      help: "Time to answer a SQL query, by outcome.",
      labelNames: ["outcome"] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    httpRequests: new Counter({
      name: "runnel_http_requests_total",
      help: "HTTP requests answered, by route and status class.",
      labelNames: ["route", "status"] as const,
      registers: [registry],
    }),
    pipelineRecords: new Counter({
      name: "runnel_pipeline_records_total",
      help: "Records read and written by pipelines.",
      labelNames: ["pipeline", "direction"] as const,
      registers: [registry],
    }),
    analyticsLag: new Gauge({
      name: "runnel_analytics_lag_records",
      help: "Records appended to the log but not yet queryable, by stream.",
      labelNames: ["stream"] as const,
      registers: [registry],
    }),
    componentReady: new Gauge({
      name: "runnel_component_ready",
      help: "1 when the component is ready, 0 otherwise.",
      labelNames: ["component"] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
