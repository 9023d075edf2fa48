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
  dead_letter: "warning",
  consumer_failing: "critical",
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

/** A dead_letter alert resolves once its consumer has dead-lettered nothing more for this long. */
export const DEAD_LETTER_QUIET_MS = 10 * 60_000;

/**
 * Operator alerts about consumers (the analytics loader, pipelines, rules), as the detector's are
 * about traffic: `dead_letter` when a consumer moves a record to a dead-letter stream (one alert
 * per consumer while letters keep coming; the metric counts each letter), `consumer_failing`
 * while a consumer's rounds keep failing. `sample` is called periodically with the consumers that
 * are failing now; tests call it directly.
 */
export class ConsumerAlerts {
  /** Per consumer with an active dead_letter alert: letters since it was raised, and when the last came. */
  private readonly letters = new Map<string, { count: number; last: number; reason: string }>();
  private readonly failing = new Set<string>();

  constructor(
    private readonly alerts: OperatorAlertLog,
    private readonly metrics: Metrics,
    private readonly clock: Clock,
  ) {}

  deadLettered(letter: { consumer: string; stream: string; partition: number; offset: number; reason: string }): void {
    const { consumer, stream } = letter;
    this.metrics.consumerDeadLetters.inc({ consumer, stream });
    const at = this.clock.now();
    const seen = this.letters.get(consumer);
    if (seen !== undefined) {
      seen.count++;
      seen.last = at;
      seen.reason = letter.reason;
      return;
    }
    this.letters.set(consumer, { count: 1, last: at, reason: letter.reason });
    this.raise(
      "dead_letter",
      consumer,
      1,
      at,
      `${consumer} could not process ${stream} record ${letter.partition}/${letter.offset} (${letter.reason}); it is in ${stream}_dead_letter and the consumer moved on`,
    );
  }

  /** Consumers with an active dead_letter alert: how many letters, the last one's time and reason. */
  recentDeadLetters(): { consumer: string; count: number; last: number; reason: string }[] {
    return [...this.letters].map(([consumer, seen]) => ({ consumer, ...seen }));
  }

  /** `failingNow`: consumer → its error, for every consumer whose rounds are failing at this moment. */
  sample(failingNow: ReadonlyMap<string, string>): void {
    const at = this.clock.now();
    for (const [consumer, error] of failingNow) {
      this.metrics.consumerFailing.set({ consumer }, 1);
      if (this.failing.has(consumer)) continue;
      this.failing.add(consumer);
      this.raise("consumer_failing", consumer, 1, at, `${consumer} keeps failing and retries: ${error}`);
    }
    for (const consumer of [...this.failing]) {
      if (failingNow.has(consumer)) continue;
      this.failing.delete(consumer);
      this.metrics.consumerFailing.remove({ consumer });
      this.resolve("consumer_failing", consumer, 0, at, `${consumer} is processing again`);
    }
    for (const [consumer, seen] of [...this.letters]) {
      if (at - seen.last < DEAD_LETTER_QUIET_MS) continue;
      this.letters.delete(consumer);
      this.resolve("dead_letter", consumer, seen.count, at, `no further dead letters from ${consumer}`);
    }
  }

  private raise(kind: OperatorAlertKind, subject: string, value: number, at: number, message: string): void {
    this.metrics.operatorAlerts.inc({ kind });
    this.alerts.apply({ type: "raised", kind, subject, value, baseline: 0, at, message });
  }

  private resolve(kind: OperatorAlertKind, subject: string, value: number, at: number, message: string): void {
    this.alerts.apply({ type: "resolved", kind, subject, value, baseline: 0, at, message });
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
