/** `GET /api/v1/stats`: the dashboard's numbers as JSON, cumulative, moving with ingest. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { StatsBody } from "../../src/api/routes/stats.js";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

let t: TestRunnel;

before(async () => {
  t = await startTestRunnel();
  assert.equal(
    (await t.call("POST", "/api/v1/streams", { token: t.adminToken, body: { name: "clicks" } })).status,
    201,
  );
});
after(() => t.close());

describe("GET /api/v1/stats", () => {
  it("counts each stream's events and bytes, and merges latency histograms", async () => {
    const first = (await t.call("GET", "/api/v1/stats", { token: t.adminToken })).body as unknown as StatsBody;
    const events = [1, 2, 3].map((n) => ({ user_id: "u1", n }));
    const ingest = await t.call("POST", "/api/v1/streams/clicks/events", { token: t.adminToken, body: events });
    assert.equal(ingest.status, 200);
    const res = await t.call("GET", "/api/v1/stats", { token: t.adminToken });
    assert.equal(res.status, 200);
    const second = res.body as unknown as StatsBody;
    assert.ok(second.at >= first.at);
    assert.equal(second.streams.clicks!.events - (first.streams.clicks?.events ?? 0), 3);
    assert.ok(second.streams.clicks!.bytes > 0);
    const ingestLatency = second.latencies.ingest;
    assert.ok(ingestLatency.count >= 1);
    // Cumulative buckets, bounds ascending, none above the total.
    for (let i = 1; i < ingestLatency.buckets.length; i++) {
      assert.ok(ingestLatency.buckets[i]![0] > ingestLatency.buckets[i - 1]![0]);
      assert.ok(ingestLatency.buckets[i]![1] >= ingestLatency.buckets[i - 1]![1]);
    }
    assert.ok(ingestLatency.buckets.every(([, n]) => n <= ingestLatency.count));
  });

  it("shows each stream's archive, and rows an import committed (which are not ingest)", async () => {
    const before = (await t.call("GET", "/api/v1/stats", { token: t.adminToken })).body as unknown as StatsBody;
    const ndjson = [0, 1, 2, 3, 4]
      .map((i) => JSON.stringify({ user_id: "u1", n: i, timestamp: `2025-06-0${i + 1}T12:00:00Z` }))
      .join("\n");
    const started = await t.call("POST", "/api/v1/streams/clicks/imports?format=ndjson&id=june", {
      token: t.adminToken,
      raw: ndjson,
      contentType: "application/x-ndjson",
    });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    assert.equal(started.headers.location, "/api/v1/streams/clicks/imports/june");
    let status = started.body;
    for (let i = 0; i < 200 && status.state === "running"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      status = (await t.call("GET", "/api/v1/streams/clicks/imports/june", { token: t.adminToken })).body;
    }
    assert.equal(status.state, "done", JSON.stringify(status));
    const stats = (await t.call("GET", "/api/v1/stats", { token: t.adminToken })).body as unknown as StatsBody;
    const clicks = stats.archive.streams.clicks!;
    // One file per day of June the import covered.
    assert.deepEqual([clicks.files, clicks.rows, clicks.imported, clicks.failures], [5, 5, 5, 0]);
    assert.ok(clicks.bytes > 0);
    assert.equal(stats.archive.importsRunning, 0);
    // Imported events never passed through the log: ingest's counters did not move.
    assert.equal(stats.streams.clicks?.events, before.streams.clicks?.events);
  });

  it("is for admins and analysts only", async () => {
    await t.call("POST", "/api/v1/auth/signup", {
      body: { username: "plain", email: "plain@ex.com", password: "password-1" },
    });
    const token = await t.login("plain", "password-1");
    const res = await t.call("GET", "/api/v1/stats", { token });
    assert.equal(res.status, 403);
    assert.equal(res.body.error, "forbidden");
  });
});
