/**
 * How the consumers of the log (analytics loader, pipelines, rules) are doing, for /readyz and the
 * dashboard: those whose rounds keep failing (the instance is not ready: something it depends on
 * is away) and those that recently moved records to a dead-letter stream (ready, but an operator
 * should look at the records).
 */
import type { ConsumerAlerts } from "./operator-alerts.js";

/** A consumer whose rounds keep failing: the loop retries with back-off. */
export interface ConsumerFailure {
  /** `analytics/<stream>`, `pipeline/<name>`, `rule/<name>`. */
  readonly consumer: string;
  /** Epoch ms of the first failure in the current run of failures. */
  readonly since: number;
  readonly attempts: number;
  readonly error: string;
}

export interface ConsumerReport {
  readonly consumer: string;
  readonly state: "failing" | "dead_lettered";
  /**
   * Failing: the error. Not given for dead letters: /readyz is public and a record's fault can
   * quote the record (a value that failed a CAST); the reason is in the dead letter and in the
   * operator alert, both for admins only.
   */
  readonly error?: string;
  /** Failing: since when; dead-lettered: when the last letter was written (ISO-8601). */
  readonly since: string;
  /** Failing: attempts in a row; dead-lettered: letters while the alert is active. */
  readonly count: number;
}

/** Failing consumers first, then those with recent dead letters (one entry per consumer). */
export function consumerReports(
  failing: readonly ConsumerFailure[],
  alerts: ConsumerAlerts | undefined,
): ConsumerReport[] {
  const out: ConsumerReport[] = failing.map((f) => ({
    consumer: f.consumer,
    state: "failing",
    error: f.error,
    since: new Date(f.since).toISOString(),
    count: f.attempts,
  }));
  const named = new Set(out.map((r) => r.consumer));
  for (const d of alerts?.recentDeadLetters() ?? []) {
    if (named.has(d.consumer)) continue;
    out.push({ consumer: d.consumer, state: "dead_lettered", since: new Date(d.last).toISOString(), count: d.count });
  }
  return out;
}
