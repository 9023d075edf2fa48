/**
 * How components report to monitoring without depending on prom-client (STYLE.md habit 8: the
 * names live in metrics.ts; components see only these small interfaces).
 *
 * Two directions:
 * - pulled: a component offers a stats function, read at every scrape (`LogStatsSource`,
 *   `PipelineStatsLike`, `WindowStateSource`, `CepStateSource`, `PoolStatsSource`);
 * - pushed: a component calls a `MonitoringProbe` method when something happens (a checkpoint,
 *   a match, an alert, a webhook failure). `noopProbe` is the default, so tests need no wiring.
 *
 * @example
 *   // in a rule engine (src/cep), given `probe: MonitoringProbe` from its options:
 *   probe.ruleMatched({ id: rule.id, name: rule.name });
 *   probe.alertRaised({ id: rule.id, name: rule.name }, "high");
 *   const unregister = probe.registerCepState(() =>
 *     rules.map((r) => ({ rule: { id: r.id, name: r.name }, keys: r.keys.size, partialMatches: r.runs })),
 *   );
 */

/** A rule as named in metrics: by name (what the operator reads), id kept for tooling. */
export interface RuleRef {
  readonly id: string;
  readonly name: string;
}

/** Why a webhook attempt failed: a non-2xx answer, no answer in time, or no connection. */
export type WebhookFailureReason = "status" | "timeout" | "network";

/** Window state of one windowed pipeline at scrape time. */
export interface WindowState {
  readonly pipeline: string;
  /** Keys holding any window state. */
  readonly keys: number;
  readonly openWindows: number;
  /** The pipeline's event time (combined watermark), epoch ms; null before the first event. */
  readonly watermark: number | null;
}

/** CEP state of one rule at scrape time. */
export interface CepState {
  readonly rule: RuleRef;
  readonly keys: number;
  /** Partial matches (NFA runs / shared-buffer entries) kept for the rule. */
  readonly partialMatches: number;
  /** Events dropped for arriving behind the watermark, since the rule's runner started. */
  readonly late?: number;
}

export type WindowStateSource = () => readonly WindowState[];
export type CepStateSource = () => readonly CepState[];

export interface MonitoringProbe {
  /** A checkpoint was stored; `task` is `pipeline/<name>` or `cep`. */
  checkpointTaken(task: string, durationMs: number): void;
  checkpointFailed(task: string): void;
  ruleMatched(rule: RuleRef): void;
  alertRaised(rule: RuleRef, severity: string): void;
  webhookDelivered(rule: RuleRef): void;
  /** One failed attempt; `final` when retries are exhausted and the alert will not be delivered. */
  webhookFailed(rule: RuleRef, reason: WebhookFailureReason, final: boolean): void;
  /** Adds a source of window gauges, read at each scrape; returns its removal. */
  registerWindowState(source: WindowStateSource): () => void;
  /** Adds a source of CEP gauges, read at each scrape; returns its removal. */
  registerCepState(source: CepStateSource): () => void;
}

export const noopProbe: MonitoringProbe = {
  checkpointTaken() {},
  checkpointFailed() {},
  ruleMatched() {},
  alertRaised() {},
  webhookDelivered() {},
  webhookFailed() {},
  registerWindowState: () => () => {},
  registerCepState: () => () => {},
};

/** The counters a log implementation exposes through `stats()` (LocalEventLog has them). */
export interface LogStats {
  readonly appends: number;
  readonly records: number;
  readonly groups: number;
  readonly syncs: number;
  readonly streams: number;
  /** Appends refused because their group could not be written or committed (a full disk). */
  readonly failedAppends?: number;
  /** Truncations back to the last published record after a failed write, and their bytes. */
  readonly rollbacks?: number;
  readonly rolledBackBytes?: number;
  /** Bytes cut from torn or uncommitted tails while opening (the truncations are pushed by reason). */
  readonly recoveredBytes?: number;
}

/**
 * What monitoring reads from a pipeline's stats: the fields of PipelineStats, plus the optional
 * ones a windowed runner adds (WindowedStats). Structural, so src/stream keeps its own types.
 */
export interface PipelineStatsLike {
  readonly running: boolean;
  readonly recordsIn: number;
  readonly recordsOut: number;
  readonly dropped: number;
  readonly errors: number;
  readonly failures: number;
  readonly late?: number;
  readonly watermark?: number | null;
  readonly openWindows?: number;
  readonly lastCheckpointAt?: number;
}

/** A pipeline as monitoring sees it: where it reads, which group commits its offsets, its stats. */
export interface PipelineView {
  readonly name: string;
  readonly input: string;
  readonly stats: PipelineStatsLike;
}

/** Connection pool use of the control database (pg.Pool's totalCount/idleCount/waitingCount). */
export interface PoolStats {
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
  readonly max: number;
}

export type PoolStatsSource = () => PoolStats | undefined;

/** A control store whose driver can report its pool (a real PostgreSQL server; PGlite has none). */
export interface HasPoolStats {
  poolStats(): PoolStats | undefined;
}

export function hasPoolStats(x: unknown): x is HasPoolStats {
  return typeof x === "object" && x !== null && typeof (x as { poolStats?: unknown }).poolStats === "function";
}
