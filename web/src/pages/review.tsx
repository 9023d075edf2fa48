/**
 * Review (admin): the users that rules blocked (GET /blocks), each with the alert that caused the
 * block and the user's recent events on that stream; "Unblock" lifts it (DELETE /blocks/{user}),
 * which the server records in the activity log.
 */
import { useState } from "preact/hooks";
import { api, get, ident, type QueryResult, query } from "../api";
import type { Alert, Block } from "../types";
import { cell, ErrorBox, Table, useLoad, when } from "../ui";

export function ReviewPage() {
  const blocks = useLoad(() => get<{ blocks: Block[] }>("/blocks"));
  const list = blocks.data?.blocks ?? [];
  return (
    <section>
      <h1>Review blocked users</h1>
      <ErrorBox error={blocks.error} />
      {blocks.data && list.length === 0 ? <p data-testid="no-blocks">Nobody is blocked.</p> : null}
      {list.map((b) => (
        <BlockCard key={`${b.userId}/${b.stream}`} block={b} onDone={blocks.reload} />
      ))}
    </section>
  );
}

function BlockCard({ block, onDone }: { block: Block; onDone: () => void }) {
  const alert = useLoad(async () => {
    const { alerts } = await get<{ alerts: Alert[] }>(
      `/alerts?rule=${encodeURIComponent(block.ruleId)}&user=${encodeURIComponent(block.userId)}&limit=50`,
    );
    return alerts.find((a) => a.id === block.alertId) ?? alerts[0];
  });
  const events = useLoad(
    (): Promise<QueryResult> =>
      query(`SELECT * FROM ${ident(block.stream)} WHERE user_id = ? ORDER BY _time DESC LIMIT 10`, [block.userId]),
  );
  const [error, setError] = useState<unknown>(undefined);
  const unblock = async () => {
    try {
      await api("DELETE", `/blocks/${encodeURIComponent(block.userId)}?stream=${encodeURIComponent(block.stream)}`);
      onDone();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <div class="card" data-testid="block">
      <h2>
        <code>{block.userId}</code> blocked on <code>{block.stream}</code> since {when(block.since)}
      </h2>
      <h3>Alert that caused it</h3>
      <ErrorBox error={alert.error} />
      {alert.data ? (
        <details open>
          <summary>
            <span class="badge">{alert.data.severity}</span> <strong>{alert.data.ruleName}</strong> ·{" "}
            {alert.data.events.length} events · {when(alert.data.detectedAt)}
          </summary>
          <pre>{alert.data.events.map((e) => JSON.stringify(e)).join("\n")}</pre>
        </details>
      ) : (
        <p class="muted">Alert {block.alertId}</p>
      )}
      <h3>Recent events</h3>
      <ErrorBox error={events.error} />
      {events.data ? (
        <Table head={events.data.columns.map((c) => c.name)} rows={events.data.rows.map((r) => r.map(cell))} />
      ) : null}
      <ErrorBox error={error} />
      <button type="button" onClick={() => void unblock()} data-testid={`unblock-${block.userId}`}>
        Unblock {block.userId}
      </button>
    </div>
  );
}
