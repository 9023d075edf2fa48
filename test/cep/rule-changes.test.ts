/**
 * Changing a rule while events flow (PATCH some fields, PUT the whole definition): the change is
 * in effect for every event ingested after the answer, the rule keeps its id and its alerts; a
 * change of name or actions keeps the partial matches, a change of what matches starts empty.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

let t: TestRunnel;

before(async () => {
  t = await startTestRunnel();
  const res = await t.call("POST", "/api/v1/streams", {
    token: t.adminToken,
    body: { name: "payments", partitions: 2 },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
});
after(() => t.close());

const large = (threshold: number) => [
  { name: "large", where: `event_type = 'transaction' AND amount > ${threshold}`, times: { min: 4 } },
];

function tx(user: string, amount: number, minute: number): Record<string, unknown> {
  return { user_id: user, event_type: "transaction", amount, timestamp: Date.UTC(2025, 0, 1, 12, minute) };
}

async function createRule(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await t.call("POST", "/api/v1/rules", {
    token: t.adminToken,
    body: { name, stream: "payments", pattern: large(500), within: "5m", skip: "past_last_event", ...extra },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  readFrom.set(res.body.id as string, ingested);
  return res.body.id as string;
}

async function change(method: "PATCH" | "PUT", id: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await t.call(method, `/api/v1/rules/${id}`, { token: t.adminToken, body });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

async function ingest(events: Record<string, unknown>[]): Promise<void> {
  const res = await t.call("POST", "/api/v1/streams/payments/events", { token: t.adminToken, body: events });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  ingested += events.length;
}

interface Alert {
  ruleName: string;
  severity: string;
  userId: string;
  events: Array<{ amount: number }>;
}

/** Events ingested so far, and per rule the count when its current runner began reading. */
let ingested = 0;
const readFrom = new Map<string, number>();

/** The rule's alerts once its runner has read every event ingested so far. */
async function settledAlerts(ruleId: string): Promise<Alert[]> {
  const expected = ingested - (readFrom.get(ruleId) ?? 0);
  let read = -1;
  for (let i = 0; i < 400 && read !== expected; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 25));
    const rule = await t.call("GET", `/api/v1/rules/${ruleId}`, { token: t.adminToken });
    read = (rule.body.stats as { eventsIn: number }).eventsIn;
  }
  assert.equal(read, expected, "the rule read every event");
  const res = await t.call("GET", `/api/v1/alerts?rule=${ruleId}`, { token: t.adminToken });
  return res.body.alerts as Alert[];
}

describe("changing a rule", () => {
  it("applies a new threshold to events ingested after the answer; id and alerts stay", async () => {
    const id = await createRule("threshold");
    await ingest([300, 310, 320, 330].map((a, i) => tx("alice", a, i)));
    assert.deepEqual(await settledAlerts(id), [], "300s do not cross 500");

    const changed = await change("PATCH", id, { pattern: large(200) });
    readFrom.set(id, ingested);
    assert.equal(changed.id, id);
    assert.deepEqual((changed.spec as { pattern: unknown }).pattern, large(200));
    await ingest([300, 310, 320, 330].map((a, i) => tx("bob", a, i)));
    await ingest([tx("alice", 340, 4)]);
    const alerts = await settledAlerts(id);
    assert.deepEqual(
      alerts.map((a) => a.userId),
      ["bob"],
      "bob's four after the change match; alice's four before it were not held over",
    );
    assert.equal((await t.call("GET", `/api/v1/rules/${id}`, { token: t.adminToken })).body.name, "threshold");
  });

  it("keeps the partial matches when only the name or actions change", async () => {
    const id = await createRule("actions", { actions: [{ type: "alert", severity: "low" }] });
    await ingest([600, 610, 620].map((a, i) => tx("carol", a, i)));
    await settledAlerts(id);
    const changed = await change("PATCH", id, {
      name: "actions-renamed",
      actions: [{ type: "alert", severity: "high" }],
    });
    assert.equal(changed.name, "actions-renamed");
    assert.equal((changed.stats as { partialMatches: number }).partialMatches > 0, true, "still held");
    await ingest([tx("carol", 630, 3)]);
    const alerts = await settledAlerts(id);
    assert.deepEqual(
      alerts.map((a) => [a.userId, a.ruleName, a.severity, a.events.length]),
      [["carol", "actions-renamed", "high", 4]],
    );
  });

  it("starts empty when what matches changes, and the old partial matches do not complete", async () => {
    const id = await createRule("window");
    await ingest([600, 610, 620].map((a, i) => tx("dave", a, i)));
    await settledAlerts(id);
    const changed = await change("PATCH", id, { within: "10m" });
    readFrom.set(id, ingested);
    assert.equal((changed.stats as { partialMatches: number }).partialMatches, 0);
    await ingest([tx("dave", 630, 3)]);
    assert.deepEqual(await settledAlerts(id), [], "three before the change and one after are not four");
    await ingest([640, 650, 660].map((a, i) => tx("dave", a, 4 + i)));
    const alerts = await settledAlerts(id);
    assert.deepEqual(
      alerts.map((a) => a.events.map((e) => e.amount)),
      [[630, 640, 650, 660]],
    );
  });

  it("PUT replaces the definition; a disabled rule stays disabled unless enabled is given", async () => {
    const id = await createRule("replaced", { actions: [{ type: "alert", severity: "low" }] });
    assert.equal((await change("PATCH", id, { enabled: false })).enabled, false);
    const replaced = await change("PUT", id, { name: "replaced-2", stream: "payments", pattern: large(100) });
    assert.equal(replaced.enabled, false);
    assert.equal((replaced.stats as { running: boolean }).running, false);
    assert.equal((replaced.spec as { actions?: unknown }).actions, undefined, "fields not given are gone");
    assert.equal((replaced.spec as { within?: unknown }).within, undefined);

    const enabled = await change("PUT", id, {
      name: "replaced-2",
      stream: "payments",
      pattern: large(100),
      enabled: true,
    });
    assert.equal((enabled.stats as { running: boolean }).running, true);
    readFrom.set(id, ingested);
    await ingest([150, 160, 170, 180].map((a, i) => tx("erin", a, i)));
    assert.deepEqual(
      (await settledAlerts(id)).map((a) => [a.userId, a.ruleName]),
      [["erin", "replaced-2"]],
    );
  });
});
