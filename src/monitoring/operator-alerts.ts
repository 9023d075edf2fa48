/**
 * Operator alerts: what the anomaly detector raised, kept in memory for the admin API and its SSE
 * stream, and exported as metrics so Prometheus can alert on them too. Separate from CEP rule
 * alerts (`/api/v1/alerts`, stored in the control DB): these describe this process's traffic and
 * health, are about streams and consumers rather than users, and Prometheus keeps their history.
 */
import { randomUUID } from "node:crypto";
import type { Clock } from "../core/clock.js";
import type { AnomalyDetector, AnomalyEvent, OperatorAlertKind } from "./anomaly.js";
import type { Metrics } from "./metrics.js";

export interface OperatorAlert {
  readonly id: string;
  readonly kind: OperatorAlertKind;
  readonly subject: string;
  readonly severity: "warning" | "critical";
  readonly message: string;
  readonly value: number;
  readonly baseline: number;
  readonly raisedAt: string;
  readonly active: boolean;
  readonly resolvedAt?: string;
  readonly resolution?: string;
}

/** A live update for subscribers: the alert as it now stands. */
export interface OperatorAlertUpdate {
  readonly type: "raised" | "resolved";
  readonly alert: OperatorAlert;
}

const SEVERITY: Record<OperatorAlertKind, OperatorAlert["severity"]> = {
  spike: "warning",
  drop: "critical",
  lag_growth: "critical",
};

/** Newest first, bounded: an endless flapping stream cannot grow memory. */
export class OperatorAlertLog {
  private alerts: OperatorAlert[] = [];
  private readonly listeners = new Set<(update: OperatorAlertUpdate) => void>();

  constructor(private readonly capacity = 1000) {}

  apply(event: AnomalyEvent): OperatorAlertUpdate | undefined {
    const at = new Date(event.at).toISOString();
    let update: OperatorAlertUpdate | undefined;
    if (event.type === "raised") {
      const alert: OperatorAlert = {
        id: randomUUID(),
        kind: event.kind,
        subject: event.subject,
        severity: SEVERITY[event.kind],
        message: event.message,
        value: event.value,
        baseline: event.baseline,
        raisedAt: at,
        active: true,
      };
      this.alerts.unshift(alert);
      if (this.alerts.length > this.capacity) this.alerts.length = this.capacity;
      update = { type: "raised", alert };
    } else {
      const i = this.alerts.findIndex((a) => a.active && a.kind === event.kind && a.subject === event.subject);
      if (i < 0) return undefined;
      const alert: OperatorAlert = { ...this.alerts[i]!, active: false, resolvedAt: at, resolution: event.message };
      this.alerts[i] = alert;
      update = { type: "resolved", alert };
    }
    for (const listener of [...this.listeners]) {
      try {
        listener(update);
      } catch {
        // One broken subscriber (a closed socket) must not keep the others from hearing.
      }
    }
    return update;
  }

  list(filter: { active?: boolean; kind?: OperatorAlertKind; limit?: number } = {}): OperatorAlert[] {
    const out = this.alerts.filter(
      (a) =>
        (filter.active === undefined || a.active === filter.active) &&
        (filter.kind === undefined || a.kind === filter.kind),
    );
    return out.slice(0, filter.limit ?? 100);
  }

  subscribe(listener: (update: OperatorAlertUpdate) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export interface TrafficWatchOptions {
  readonly detector: AnomalyDetector;
  readonly alerts: OperatorAlertLog;
  readonly metrics: Metrics;
  readonly clock: Clock;
  readonly intervalMs: number;
  /** Current lag per consumer (`pipeline/<name>`, `analytics/<stream>`), in records. */
  readonly lags?: () => Promise<ReadonlyMap<string, number>>;
  readonly onError?: (error: unknown) => void;
}

/**
 * Samples the ingest counter and consumer lags every interval and feeds the detector. `tick()`
 * is public so tests (and a paused clock) can drive it without timers.
 */
export class TrafficWatch {
  private timer: NodeJS.Timeout | undefined;
  private readonly removeHook: () => void;

  constructor(private readonly options: TrafficWatchOptions) {
    const { metrics, detector, alerts } = options;
    this.removeHook = metrics.onScrape(() => {
      metrics.ingestBaseline.reset();
      metrics.ingestAnomalyScore.reset();
      for (const [stream, b] of detector.baselines()) {
        metrics.ingestBaseline.set({ stream }, b.ratePerSecond);
        metrics.ingestAnomalyScore.set({ stream }, b.score);
      }
      metrics.operatorAlertsActive.reset();
      for (const a of alerts.list({ active: true, limit: Number.MAX_SAFE_INTEGER })) {
        metrics.operatorAlertsActive.inc({ kind: a.kind, subject: a.subject });
      }
    });
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => {
      this.tick().catch((e: unknown) => this.options.onError?.(e));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.removeHook();
  }

  async tick(): Promise<AnomalyEvent[]> {
    const { metrics, detector, alerts, clock } = this.options;
    const totals = new Map<string, number>();
    // The ingest counter is the source of truth for traffic: no second count on the hot path.
    for (const v of (await metrics.ingestEvents.get()).values) {
      const stream = String(v.labels.stream ?? "");
      totals.set(stream, (totals.get(stream) ?? 0) + v.value);
    }
    const lags = (await this.options.lags?.()) ?? new Map<string, number>();
    const events = detector.sample(clock.now(), totals, lags);
    for (const event of events) {
      if (event.type === "raised") metrics.operatorAlerts.inc({ kind: event.kind });
      alerts.apply(event);
    }
    return events;
  }
}
