/**
 * Monitoring as the composition root starts it: scrape-time collectors over every component's
 * stats, the probe that processing and CEP report through, and the traffic watch that raises
 * operator alerts.
 *
 * @example
 *   const monitoring = startMonitoring({ metrics, clock, log, dataDir, logger, … });
 *   new SomeRuleEngine({ …, probe: monitoring.probe });
 *   await monitoring.stop();
 */
import type { Clock } from "../core/clock.js";
import type { EventLog } from "../log/types.js";
import { AnomalyDetector, type AnomalyOptions } from "./anomaly.js";
import { registerCollectors } from "./collectors.js";
import type { Logger } from "./logging.js";
import type { Metrics } from "./metrics.js";
import { OperatorAlertLog, TrafficWatch } from "./operator-alerts.js";
import type { LogStats, MonitoringProbe, PipelineView, PoolStatsSource } from "./probes.js";
import { PrometheusProbe } from "./prometheus-probe.js";

export interface MonitoringOptions {
  readonly metrics: Metrics;
  readonly clock: Clock;
  readonly log: EventLog;
  readonly logStats?: () => LogStats;
  readonly logStreamSizes?: () => ReadonlyMap<string, number>;
  readonly dataDir: string;
  readonly logDir?: string;
  readonly pipelines?: () => Promise<readonly (PipelineView & { readonly stats: { readonly lag?: number } })[]>;
  readonly pipelineGroup?: (pipeline: string) => string;
  readonly analyticsLag?: () => ReadonlyMap<string, number>;
  readonly readiness?: () => Promise<Record<string, boolean>>;
  readonly controlPool?: PoolStatsSource;
  readonly logger: Logger;
  /** Detector settings; `intervalMs` is also how often traffic is sampled. */
  readonly anomaly?: Partial<AnomalyOptions>;
}

export interface Monitoring {
  readonly probe: MonitoringProbe;
  readonly operatorAlerts: OperatorAlertLog;
  readonly watch: TrafficWatch;
  stop(): Promise<void>;
}

export function startMonitoring(options: MonitoringOptions): Monitoring {
  const { metrics, clock, logger } = options;
  const probe = new PrometheusProbe(metrics, () => clock.now());
  const removeCollectors = registerCollectors(metrics, { ...options, probe });
  const detector = new AnomalyDetector(options.anomaly);
  const operatorAlerts = new OperatorAlertLog();
  const alertLogger = logger.child({ component: "operator-alerts" });
  // Operators tailing the log see alerts too, not only API and Prometheus users.
  operatorAlerts.subscribe(({ type, alert }) => {
    const fields = { kind: alert.kind, subject: alert.subject, alertId: alert.id };
    if (type === "raised") alertLogger.warn(fields, alert.message);
    else alertLogger.info(fields, alert.resolution ?? "resolved");
  });
  const watch = new TrafficWatch({
    detector,
    alerts: operatorAlerts,
    metrics,
    clock,
    intervalMs: detector.intervalMs,
    lags: async () => consumerLags((await options.pipelines?.()) ?? [], options.analyticsLag?.() ?? new Map()),
    onError: (e) => alertLogger.warn({ err: e }, "traffic sampling failed"),
  });
  watch.start();
  return {
    probe,
    operatorAlerts,
    watch,
    stop: async () => {
      watch.stop();
      removeCollectors();
    },
  };
}

/** Lag per consumer as the traffic watch samples it: running pipelines and the analytics loader. */
export function consumerLags(
  pipelines: readonly {
    readonly name: string;
    readonly enabled?: boolean;
    readonly stats: { readonly lag?: number };
  }[],
  analyticsLag: ReadonlyMap<string, number>,
): Map<string, number> {
  const lags = new Map<string, number>();
  for (const p of pipelines) {
    // A disabled pipeline's lag grows by design: that is no operator alert.
    if (p.enabled !== false) lags.set(`pipeline/${p.name}`, p.stats.lag ?? 0);
  }
  for (const [stream, lag] of analyticsLag) lags.set(`analytics/${stream}`, lag);
  return lags;
}
