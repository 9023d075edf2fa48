/**
 * Rules through the API in one process: a block raised by a match is enforced by the ingest
 * validator itself, so the WebSocket producer refuses the blocked user as HTTP does; matches,
 * alerts, webhook outcomes and CEP state reach /metrics through the monitoring probe.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import type { WebSocket } from "ws";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";
import { until } from "../helpers/poll.js";

let t: TestRunnel;
let hooks: Server;
let hookUrl = "";
const delivered: unknown[] = [];

before(async () => {
  t = await startTestRunnel();
  const res = await t.call("POST", "/api/v1/streams", {
    token: t.adminToken,
    body: { name: "transactions", partitions: 2 },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  // One webhook target that accepts (/ok) and one that always fails (/fail).
  hooks = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      if (req.url === "/ok") delivered.push(JSON.parse(body));
      res.writeHead(req.url === "/ok" ? 204 : 500).end();
    });
  });
  await new Promise<void>((r) => hooks.listen(0, "127.0.0.1", r));
  hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}`;
});
after(async () => {
  await t.close();
  hooks.closeAllConnections();
  await new Promise((r) => hooks.close(r));
});

const BURST = {
  stream: "transactions",
  pattern: [{ name: "large", where: "event_type = 'transaction' AND amount > 500", times: { min: 4 } }],
  within: "5m",
  skip: "past_last_event",
};

function tx(user: string, amount: number, minute: number): Record<string, unknown> {
  return { user_id: user, event_type: "transaction", amount, timestamp: Date.UTC(2025, 0, 1, 12, minute) };
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const res = await t.app.inject({ method: "GET", url: "/metrics" });
  let total = 0;
  for (const line of res.body.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.split(" ").pop());
  }
  return total;
}

function answer(ws: WebSocket): Promise<Record<string, unknown>> {
  return new Promise((resolve) => ws.once("message", (d) => resolve(JSON.parse(String(d)) as Record<string, unknown>)));
}

test("a rule's block is enforced on the WebSocket producer too, and lifting it restores ingestion", async () => {
  const rule = await t.call("POST", "/api/v1/rules", {
    token: t.adminToken,
    body: { ...BURST, name: "burst-ws", actions: [{ type: "alert", severity: "high" }, { type: "block" }] },
  });
  assert.equal(rule.status, 201, JSON.stringify(rule.body));
  const ruleId = rule.body.id as string;
  const before = await metric("runnel_rule_matches_total", { rule: "burst-ws" });

  const ws = await t.app.injectWS("/api/v1/streams/transactions/ws", {
    headers: { authorization: `Bearer ${t.adminToken}` },
  });
  ws.send(JSON.stringify([600, 700, 800, 900].map((a, i) => tx("wsuser", a, i))));
  assert.equal((await answer(ws)).type, "ack");
  await until(
    () => t.call("GET", `/api/v1/alerts?rule=${ruleId}`, { token: t.adminToken }),
    (r) => (r.body.alerts as unknown[]).length === 1,
    "the alert",
  );

  ws.send(JSON.stringify(tx("wsuser", 10, 6)));
  const refused = await answer(ws);
  assert.equal(refused.type, "error");
  assert.equal(refused.error, "user_blocked");
  ws.send(JSON.stringify(tx("other", 10, 6)));
  assert.equal((await answer(ws)).type, "ack", "other users still pass");

  assert.equal(
    (await t.call("DELETE", "/api/v1/blocks/wsuser?stream=transactions", { token: t.adminToken })).status,
    204,
  );
  ws.send(JSON.stringify(tx("wsuser", 10, 7)));
  assert.equal((await answer(ws)).type, "ack", "unblocked");
  ws.close();

  assert.equal((await metric("runnel_rule_matches_total", { rule: "burst-ws" })) - before, 1);
  assert.equal(await metric("runnel_rule_alerts_total", { rule: "burst-ws", severity: "high" }), 1);
});

test("matches, alerts, webhook outcomes and partial matches are exported to /metrics", async () => {
  const ok = await t.call("POST", "/api/v1/rules", {
    token: t.adminToken,
    body: { ...BURST, name: "burst-hook-ok", actions: [{ type: "webhook", url: `${hookUrl}/ok` }] },
  });
  const failing = await t.call("POST", "/api/v1/rules", {
    token: t.adminToken,
    body: { ...BURST, name: "burst-hook-fail", actions: [{ type: "webhook", url: `${hookUrl}/fail` }] },
  });
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
  assert.equal(failing.status, 201, JSON.stringify(failing.body));

  // Two large transactions leave a partial match for "hookuser" in every rule on the stream.
  const first = await t.call("POST", "/api/v1/streams/transactions/events", {
    token: t.adminToken,
    body: [tx("hookuser", 501, 20), tx("hookuser", 502, 21)],
  });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  await until(
    () => metric("runnel_cep_partial_matches", { rule: "burst-hook-ok" }),
    (n) => n > 0,
    "partial matches",
  );
  assert.ok((await metric("runnel_cep_state_keys", { rule: "burst-hook-ok" })) >= 1);

  const rest = await t.call("POST", "/api/v1/streams/transactions/events", {
    token: t.adminToken,
    body: [tx("hookuser", 503, 22), tx("hookuser", 504, 23)],
  });
  assert.equal(rest.status, 200, JSON.stringify(rest.body));
  await until(
    () => metric("runnel_webhook_deliveries_total", { rule: "burst-hook-ok" }),
    (n) => n === 1,
    "the webhook delivery",
  );
  await until(
    () => metric("runnel_webhook_failures_total", { rule: "burst-hook-fail", reason: "status", final: "false" }),
    (n) => n >= 1,
    "a failed webhook attempt",
  );
  assert.equal(await metric("runnel_rule_matches_total", { rule: "burst-hook-ok" }), 1);
  assert.equal(await metric("runnel_rule_matches_total", { rule: "burst-hook-fail" }), 1);
  assert.equal(await metric("runnel_rule_alerts_total", { rule: "burst-hook-ok" }), 1);
  assert.equal((delivered[0] as { key: string }).key, "hookuser");
  // The match ended the partial match (past_last_event), and the key's state went with it.
  assert.equal(await metric("runnel_cep_partial_matches", { rule: "burst-hook-ok" }), 0);
  // Each rule's tasks checkpointed where they start, as the CEP engine's (docs/monitoring.md).
  assert.ok((await metric("runnel_checkpoint_duration_seconds_count", { task: "cep" })) >= 2, "CEP checkpoints");

  for (const id of [ok.body.id, failing.body.id]) {
    assert.equal((await t.call("DELETE", `/api/v1/rules/${id as string}`, { token: t.adminToken })).status, 204);
  }
});
