/**
 * What a match does (API.md "Actions"): the alert, stored once per match under an id derived from
 * the rule and the match's log positions, naming every user whose events it holds; a block of
 * those users (docs/cep.md, "Who sees an alert, who is blocked"); a webhook POST retried with
 * exponential back-off off the processing path (a failing webhook never slows the stream).
 */
import { createHash } from "node:crypto";
import type { AlertRecord } from "../control/types.js";
import { type CepMatch, EVENT_META } from "./operator.js";

export function matchIdOf(m: CepMatch): string {
  const ids: string[] = [];
  for (const [step, events] of m.match) for (const e of events) ids.push(`${step}=${e[EVENT_META]?.id ?? "?"}`);
  return m.timedOut ? `timeout:${ids.join(",")}` : ids.join(",");
}

export function alertOf(
  rule: { id: string; name: string; key: string; severity: string },
  m: CepMatch,
): Omit<AlertRecord, "detectedAt"> {
  const matchId = matchIdOf(m);
  const events: Record<string, unknown>[] = [];
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const [step, list] of m.match) {
    for (const e of list) {
      const ts = e[EVENT_META]?.ts ?? 0;
      if (ts < first) first = ts;
      if (ts > last) last = ts;
      events.push({ step, ...e });
    }
  }
  // Keyed by user_id, every event is the key's; keyed by anything else (a device, a card), the
  // match may hold several users' events.
  const userIds = rule.key === "user_id" ? [m.key] : usersOf(events);
  return {
    id: createHash("sha256").update(`${rule.id}\u0000${matchId}`).digest("hex").slice(0, 32),
    ruleId: rule.id,
    ruleName: rule.name,
    matchId,
    key: m.key,
    userId: userIds[0] ?? null,
    userIds,
    severity: rule.severity,
    timedOut: m.timedOut,
    events,
    firstEventTime: new Date(Number.isFinite(first) ? first : 0).toISOString(),
    lastEventTime: new Date(Number.isFinite(last) ? last : 0).toISOString(),
  };
}

/** The distinct `user_id`s of the events, in order of first appearance. */
function usersOf(events: readonly Record<string, unknown>[]): string[] {
  const users = new Set<string>();
  for (const e of events) if (typeof e.user_id === "string") users.add(e.user_id);
  return [...users];
}

export interface WebhookStats {
  sent: number;
  failures: number;
  lastError: string | undefined;
}

/** Why one webhook attempt failed (the probe's reasons). */
export type WebhookFailure = "status" | "timeout" | "network";

export interface WebhookOutcome {
  delivered(): void;
  /** One failed attempt; `final` when no retry follows. */
  failed(reason: WebhookFailure, final: boolean): void;
}

/** Fire-and-forget POST with retries (1 s, 2 s, 4 s, … up to `attempts`). */
export function sendWebhook(
  url: string,
  body: unknown,
  stats: WebhookStats,
  outcome: WebhookOutcome,
  attempts = 5,
  baseDelayMs = 1000,
): void {
  const attempt = async (n: number): Promise<void> => {
    let reason: WebhookFailure = "network";
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      if (!res.ok) {
        reason = "status";
        throw new Error(`HTTP ${res.status}`);
      }
      stats.sent++;
      outcome.delivered();
    } catch (e) {
      if (e instanceof Error && e.name === "TimeoutError") reason = "timeout";
      stats.lastError = `${url}: ${e instanceof Error ? e.message : String(e)}`;
      const final = n + 1 >= attempts;
      outcome.failed(reason, final);
      if (final) {
        stats.failures++;
        return;
      }
      const t = setTimeout(() => void attempt(n + 1), baseDelayMs * 2 ** n);
      t.unref();
    }
  };
  void attempt(0);
}
