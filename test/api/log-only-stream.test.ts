/**
 * A stream created with "analytics": false lives in the log only: ingest, pipelines and rules
 * work on it, it has no analytics table (a query on it says so), and what a pipeline derives from
 * it is queryable as usual.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";
import { until } from "../helpers/poll.js";

let t: TestRunnel;
before(async () => {
  t = await startTestRunnel();
});
after(() => t.close());

describe("a log-only stream", () => {
  it("is created with analytics false, refused with a clear error for a non-boolean", async () => {
    const bad = await t.call("POST", "/api/v1/streams", { token: t.adminToken, body: { name: "x", analytics: "no" } });
    assert.equal(bad.status, 400);
    assert.match(String(bad.body.message), /analytics must be true or false/);
    const raw = await t.call("POST", "/api/v1/streams", {
      token: t.adminToken,
      body: { name: "raw", partitions: 2, analytics: false },
    });
    assert.equal(raw.status, 201, JSON.stringify(raw.body));
    assert.equal(raw.body.analytics, false);
    const listed = await t.call("GET", "/api/v1/streams", { token: t.adminToken });
    assert.equal((listed.body.streams as Array<{ name: string; analytics: boolean }>)[0]?.analytics, false);
  });

  it("takes events that pipelines and rules read, while a query on it explains why it has no table", async () => {
    const pipeline = await t.call("POST", "/api/v1/pipelines", {
      token: t.adminToken,
      body: { name: "big", sql: "SELECT user_id, amount FROM raw WHERE amount > 100", startFrom: "earliest" },
    });
    assert.equal(pipeline.status, 201, JSON.stringify(pipeline.body));
    const rule = await t.call("POST", "/api/v1/rules", {
      token: t.adminToken,
      body: { name: "huge", stream: "raw", pattern: [{ name: "h", where: "amount > 1000" }] },
    });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));

    const ingest = await t.call("POST", "/api/v1/streams/raw/events", {
      token: t.adminToken,
      body: [
        { user_id: "a", amount: 50 },
        { user_id: "b", amount: 500 },
        { user_id: "c", amount: 5000 },
      ],
    });
    assert.equal(ingest.status, 200, JSON.stringify(ingest.body));

    const query = (sql: string) => t.call("POST", "/api/v1/query", { token: t.adminToken, body: { sql } });
    const derived = await until(
      () => query("SELECT user_id, amount FROM big ORDER BY user_id"),
      (r) => (r.body.rows as unknown[] | undefined)?.length === 2,
      "the pipeline's output",
    );
    assert.deepEqual(derived.body.rows, [
      ["b", 500],
      ["c", 5000],
    ]);
    const alerts = await until(
      () => t.call("GET", `/api/v1/alerts?rule=${rule.body.id}`, { token: t.adminToken }),
      (r) => (r.body.alerts as unknown[]).length === 1,
      "the rule's alert",
    );
    assert.equal((alerts.body.alerts as Array<{ userId: string }>)[0]?.userId, "c");

    const onRaw = await query("SELECT count(*) FROM raw");
    assert.equal(onRaw.status, 404);
    assert.equal(onRaw.body.error, "stream_not_found");
    assert.match(String(onRaw.body.message), /stream raw is not in the analytics store/);
    assert.deepEqual(onRaw.body.details, { stream: "raw" });
    // The stream the checker did not find is the one named, not any log-only name in the text.
    const unknown = await query("SELECT count(*) FROM nowhere WHERE note = 'raw'");
    assert.match(String(unknown.body.message), /no stream named nowhere/, "other unknown names keep their message");
  });
});
