/**
 * `GET /api/v1/stats` (admin, analyst): the counters and gauges the dashboard's overview charts,
 * as JSON, read from the same registry as `GET /metrics` (so the pulled metrics are refreshed the
 * same way). Counters are cumulative since the process started; the client derives rates from the
 * difference of two answers and `at`, as Prometheus' `rate()` does, and p99 latencies from the
 * difference of histogram buckets, as `histogram_quantile()` does. Keeping the answer cumulative
 * means any number of dashboards can poll without the server keeping per-client windows.
 *
 * @example
 *   curl -H "authorization: Bearer $TOKEN" localhost:8080/api/v1/stats
 *   // {"at": 1767225600000, "streams": {"clicks": {"events": 120, "bytes": 9000, "analyticsLag": 0}}, …}
 */
import type { FastifyInstance } from "fastify";
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { ApiServices } from "../services.js";

/** Cumulative histogram: `buckets` are `[upper bound in seconds, observations ≤ bound]`, `+Inf` left out (= `count`). */
export interface HistogramStats {
  buckets: Array<[number, number]>;
  count: number;
  sum: number;
}

export interface StatsBody {
  /** Epoch milliseconds when the numbers were read. */
  at: number;
  /** `deadLetters`: letters any consumer wrote to the stream's dead-letter stream (one per consumer and record). */
  streams: Record<string, { events: number; bytes: number; analyticsLag: number; deadLetters: number }>;
  /** `late`: events dropped behind the watermark; `deadLetters`: records the pipeline could not process. */
  pipelines: Record<
    string,
    { running: number; lag: number; recordsIn: number; recordsOut: number; late: number; deadLetters: number }
  >;
  rules: Record<string, { matches: number; alerts: number; late: number; deadLetters: number }>;
  sources: Record<string, { up: number; records: number }>;
  ingest: { refusals: number; pendingBytes: number };
  latencies: { ingest: HistogramStats; logAppend: HistogramStats; query: HistogramStats };
  storage: { logBytes: number; availableBytes: number };
  /**
   * Per analytics stream: what its archive holds (files, bytes, rows), `lag` in seconds since the
   * archiver last found nothing left past the hot window, and counters since start: failed runs,
   * compactions, rows imported; `importsRunning` counts imports running now.
   */
  archive: {
    streams: Record<
      string,
      {
        files: number;
        bytes: number;
        rows: number;
        lag: number;
        failures: number;
        compactions: number;
        imported: number;
      }
    >;
    importsRunning: number;
  };
}

type Metric = MetricObjectWithValues<MetricValue<string>>;

const DEAD_LETTERS = "runnel_consumer_dead_letters_total";
type Labels = Partial<Record<string, string | number>>;

export function registerStatsRoutes(app: FastifyInstance, services: ApiServices): void {
  app.get("/stats", { config: { access: ["admin", "analyst"] } }, async () => {
    const metrics = (await services.metrics.registry.getMetricsAsJSON()) as Metric[];
    return statsFrom(metrics, services.clock.now());
  });
}

/** Shapes prom-client's JSON into the answer; exported for tests. */
export function statsFrom(metrics: readonly Metric[], at: number): StatsBody {
  const byName = new Map(metrics.map((m) => [m.name, m.values]));
  const values = (name: string): ReadonlyArray<MetricValue<string>> => byName.get(name) ?? [];
  const total = (name: string): number => values(name).reduce((s, v) => s + v.value, 0);
  /** Sums a metric's values into `into[label value][field]`. */
  const sumBy = <T extends Record<string, number>>(
    into: Record<string, T>,
    name: string,
    label: string,
    field: keyof T,
    zero: () => T,
    keep: (labels: Labels) => boolean = () => true,
  ): void => {
    for (const v of values(name)) {
      const labels = v.labels as Labels;
      const key = labels[label];
      if (key === undefined || !keep(labels)) continue;
      const name = String(key);
      const row = into[name] ?? zero();
      into[name] = row;
      (row as Record<string, number>)[field as string] = (row[field] ?? 0) + v.value;
    }
  };

  const streams: StatsBody["streams"] = {};
  const stream = () => ({ events: 0, bytes: 0, analyticsLag: 0, deadLetters: 0 });
  sumBy(streams, "runnel_ingest_events_total", "stream", "events", stream);
  sumBy(streams, "runnel_ingest_bytes_total", "stream", "bytes", stream);
  sumBy(streams, "runnel_analytics_lag_records", "stream", "analyticsLag", stream);
  sumBy(streams, DEAD_LETTERS, "stream", "deadLetters", stream);
  /** Dead letters of consumers named `<kind>/<name>`, by name. */
  const lettersOf = (kind: string): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const v of values(DEAD_LETTERS)) {
      const consumer = String((v.labels as Labels).consumer ?? "");
      if (!consumer.startsWith(`${kind}/`)) continue;
      const name = consumer.slice(kind.length + 1);
      out[name] = (out[name] ?? 0) + v.value;
    }
    return out;
  };

  const pipelines: StatsBody["pipelines"] = {};
  const pipeline = () => ({ running: 0, lag: 0, recordsIn: 0, recordsOut: 0, late: 0, deadLetters: 0 });
  sumBy(pipelines, "runnel_pipeline_running", "pipeline", "running", pipeline);
  sumBy(pipelines, "runnel_pipeline_lag_records", "pipeline", "lag", pipeline);
  sumBy(pipelines, "runnel_pipeline_records_total", "pipeline", "recordsIn", pipeline, (l) => l.direction === "in");
  sumBy(pipelines, "runnel_pipeline_records_total", "pipeline", "recordsOut", pipeline, (l) => l.direction === "out");
  sumBy(pipelines, "runnel_pipeline_discarded_records_total", "pipeline", "late", pipeline, (l) => l.reason === "late");
  for (const [name, n] of Object.entries(lettersOf("pipeline"))) {
    const row = pipelines[name] ?? pipeline();
    pipelines[name] = row;
    row.deadLetters = n;
  }

  const rules: StatsBody["rules"] = {};
  const rule = () => ({ matches: 0, alerts: 0, late: 0, deadLetters: 0 });
  sumBy(rules, "runnel_rule_matches_total", "rule", "matches", rule);
  sumBy(rules, "runnel_rule_alerts_total", "rule", "alerts", rule);
  sumBy(rules, "runnel_rule_late_events_total", "rule", "late", rule);
  for (const [name, n] of Object.entries(lettersOf("rule"))) {
    const row = rules[name] ?? rule();
    rules[name] = row;
    row.deadLetters = n;
  }

  const archive: StatsBody["archive"]["streams"] = {};
  const archived = () => ({ files: 0, bytes: 0, rows: 0, lag: 0, failures: 0, compactions: 0, imported: 0 });
  sumBy(archive, "runnel_archive_files", "stream", "files", archived);
  sumBy(archive, "runnel_archive_size_bytes", "stream", "bytes", archived);
  sumBy(archive, "runnel_archive_rows", "stream", "rows", archived);
  sumBy(archive, "runnel_archive_lag_seconds", "stream", "lag", archived);
  sumBy(archive, "runnel_archive_failures_total", "stream", "failures", archived);
  sumBy(archive, "runnel_archive_compactions_total", "stream", "compactions", archived);
  sumBy(archive, "runnel_archive_imported_rows_total", "stream", "imported", archived);

  const sources: StatsBody["sources"] = {};
  const source = () => ({ up: 0, records: 0 });
  sumBy(sources, "runnel_source_up", "source", "up", source);
  sumBy(sources, "runnel_source_records_total", "source", "records", source);

  return {
    at,
    streams,
    pipelines,
    rules,
    sources,
    ingest: {
      refusals: total("runnel_ingest_refusals_total"),
      pendingBytes: total("runnel_ingest_pending_bytes"),
    },
    latencies: {
      ingest: histogram(values("runnel_ingest_request_duration_seconds")),
      logAppend: histogram(values("runnel_log_append_duration_seconds")),
      query: histogram(values("runnel_query_duration_seconds")),
    },
    storage: {
      logBytes: total("runnel_log_size_bytes"),
      availableBytes: total("runnel_storage_available_bytes"),
    },
    archive: { streams: archive, importsRunning: total("runnel_archive_imports_running") },
  };
}

/** Merges a histogram's label sets (sources, outcomes) into one. */
function histogram(values: ReadonlyArray<MetricValue<string>>): HistogramStats {
  const buckets = new Map<number, number>();
  let count = 0;
  let sum = 0;
  for (const v of values) {
    const name = (v as { metricName?: string }).metricName ?? "";
    if (name.endsWith("_bucket")) {
      const le = (v.labels as Labels).le;
      if (typeof le !== "number") continue; // "+Inf" equals count
      buckets.set(le, (buckets.get(le) ?? 0) + v.value);
    } else if (name.endsWith("_count")) count += v.value;
    else if (name.endsWith("_sum")) sum += v.value;
  }
  return { buckets: [...buckets].sort((a, b) => a[0] - b[0]), count, sum };
}
