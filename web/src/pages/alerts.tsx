/**
 * Alerts: the newest alerts (GET /alerts) and new ones as they arrive (SSE /alerts/stream), each
 * with its matched events expandable; filters by rule, user and severity. A `user` gets only
 * alerts about themselves: the API scopes both the list and the feed.
 */
import { useEffect, useState } from "preact/hooks";
import { get, sse } from "../api";
import type { Alert } from "../types";
import { ErrorBox, when } from "../ui";

const KEEP = 500;

export function AlertsPage() {
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [error, setError] = useState<unknown>(undefined);
  const [live, setLive] = useState("connecting");
  const [rule, setRule] = useState("");
  const [user, setUser] = useState("");
  const [severity, setSeverity] = useState("");

  useEffect(() => {
    const controller = new AbortController();
    const seen = new Set<string>();
    const add = (list: readonly Alert[]) =>
      setAlerts((current) => {
        const fresh = list.filter((a) => !seen.has(a.id));
        for (const a of fresh) seen.add(a.id);
        return [...fresh, ...current].slice(0, KEEP);
      });
    // Open the feed first, then read the list, so an alert raised in between is not missed (ids dedupe).
    sse("/alerts/stream", controller.signal, (m) => {
      if (m.event === "alert") add([JSON.parse(m.data) as Alert]);
    }).then(
      () => setLive(controller.signal.aborted ? "closed" : "ended"),
      (e: unknown) => {
        setError(e);
        setLive("failed");
      },
    );
    setLive("live");
    get<{ alerts: Alert[] }>("/alerts?limit=200").then(
      (r) => add([...r.alerts].reverse()),
      (e: unknown) => setError(e),
    );
    return () => controller.abort();
  }, []);

  const rules = [...new Set(alerts.map((a) => a.ruleName))].sort();
  const severities = [...new Set(alerts.map((a) => a.severity))].sort();
  const shown = alerts.filter(
    (a) =>
      (rule === "" || a.ruleName === rule) &&
      (severity === "" || a.severity === severity) &&
      (user === "" || whom(a).includes(user)),
  );

  return (
    <section>
      <h1>
        Alerts <span class={`state state-${live}`}>{live}</span>
      </h1>
      <ErrorBox error={error} />
      <div class="row filters">
        <label>
          Rule
          <select value={rule} onChange={(e) => setRule(e.currentTarget.value)} data-testid="filter-rule">
            <option value="">all</option>
            {rules.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label>
          User
          <input
            value={user}
            placeholder="any"
            onInput={(e) => setUser(e.currentTarget.value)}
            data-testid="filter-user"
          />
        </label>
        <label>
          Severity
          <select value={severity} onChange={(e) => setSeverity(e.currentTarget.value)}>
            <option value="">all</option>
            {severities.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <span class="muted">
          {shown.length} of {alerts.length}
        </span>
      </div>
      <ul class="alerts" data-testid="alerts">
        {shown.length === 0 ? <li class="muted">No alerts.</li> : null}
        {shown.map((a) => (
          <li key={a.id} class={`alert sev-${a.severity}`} data-testid="alert">
            <details>
              <summary>
                <span class="badge">{a.severity}</span> <strong>{a.ruleName}</strong> for <code>{whom(a)}</code> ·{" "}
                {a.events.length} events · detected {when(a.detectedAt)}
              </summary>
              <p class="muted">
                Events from {when(a.firstEventTime)} to {when(a.lastEventTime)} · alert {a.id}
              </p>
              <pre>{a.events.map((e) => JSON.stringify(e)).join("\n")}</pre>
            </details>
          </li>
        ))}
      </ul>
    </section>
  );
}

/** Who an alert is about: every user whose events it holds (a device-keyed rule can name several), else its key. */
function whom(a: Alert): string {
  return a.userIds.length > 0 ? a.userIds.join(", ") : a.key;
}
