/** Bad input gets API.md's JSON error, never a crash or a partial write. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";
import { ADMIN_PASSWORD } from "../helpers/server-process.js";

let t: TestRunnel;
const clock = new ManualClock(Date.parse("2026-11-28T12:00:00Z"));

before(async () => {
  t = await startTestRunnel({ clock, env: { RUNNEL_MAX_BODY_BYTES: "64KiB", RUNNEL_MAX_EVENT_BYTES: "1KiB" } });
  const res = await t.call("POST", "/api/v1/streams", {
    token: t.adminToken,
    body: {
      name: "readings",
      partitions: 2,
      schema: { type: "object", required: ["value"], properties: { value: { type: "number" } } },
    },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
});
after(() => t.close());

function assertError(res: { status: number; body: Record<string, unknown> }, status: number, code: string): void {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.error, code);
  assert.equal(typeof res.body.message, "string");
  assert.ok(!String(res.body.message).includes("    at "), "no stack trace");
}

async function count(): Promise<number> {
  const res = await t.call("POST", "/api/v1/query", {
    token: t.adminToken,
    body: { sql: "SELECT count(*) FROM readings" },
  });
  return (res.body.rows as number[][])[0]![0]!;
}

test("malformed JSON → 400 invalid_json", async () => {
  const res = await t.call("POST", "/api/v1/streams/readings/events", {
    token: t.adminToken,
    raw: '{"value": 1,',
    contentType: "application/json",
  });
  assertError(res, 400, "invalid_json");
});

test("malformed NDJSON line → 400 invalid_json naming the line", async () => {
  const res = await t.call("POST", "/api/v1/streams/readings/events", {
    token: t.adminToken,
    raw: '{"value": 1, "user_id": "a"}\n{oops\n',
    contentType: "application/x-ndjson",
  });
  assertError(res, 400, "invalid_json");
  assert.match(String(res.body.message), /line 2/);
});

test("wrong content type → 415", async () => {
  const res = await t.call("POST", "/api/v1/streams/readings/events", {
    token: t.adminToken,
    raw: "value=1",
    contentType: "text/plain",
  });
  assertError(res, 415, "unsupported_media_type");
});

test("unknown stream → 404", async () => {
  const res = await t.call("POST", "/api/v1/streams/nope/events", {
    token: t.adminToken,
    body: { user_id: "a", value: 1 },
  });
  assertError(res, 404, "stream_not_found");
});

test("body over the limit → 413", async () => {
  const events = Array.from({ length: 2000 }, (_, i) => ({ user_id: "a", value: i, pad: "x".repeat(40) }));
  const res = await t.call("POST", "/api/v1/streams/readings/events", { token: t.adminToken, body: events });
  assertError(res, 413, "payload_too_large");
});

test("event over the limit → 413 and nothing appended", async () => {
  const before = await count();
  const res = await t.call("POST", "/api/v1/streams/readings/events", {
    token: t.adminToken,
    body: [
      { user_id: "a", value: 1 },
      { user_id: "a", value: 2, pad: "x".repeat(2000) },
    ],
  });
  assertError(res, 413, "event_too_large");
  assert.equal(await count(), before);
});

test("invalid UTF-8 → 400 invalid_utf8", async () => {
  const raw = Buffer.concat([
    Buffer.from('{"user_id": "a", "value": 1, "s": "'),
    Buffer.from([0xc3, 0x28]),
    Buffer.from('"}'),
  ]);
  const res = await t.call("POST", "/api/v1/streams/readings/events", {
    token: t.adminToken,
    raw,
    contentType: "application/json",
  });
  assertError(res, 400, "invalid_utf8");
});

test("one invalid event refuses the whole batch with details", async () => {
  const before = await count();
  const res = await t.call("POST", "/api/v1/streams/readings/events", {
    token: t.adminToken,
    body: [{ user_id: "a", value: 1 }, { user_id: "a", value: "high" }, { value: 3 }],
  });
  assertError(res, 400, "invalid_events");
  const details = res.body.details as { index: number; message: string }[];
  assert.deepEqual(
    details.map((d) => d.index),
    [1, 2],
  );
  assert.match(details[0]!.message, /schema/);
  assert.match(details[1]!.message, /user_id/);
  assert.equal(await count(), before);
});

test("missing, malformed and expired tokens → 401", async () => {
  assertError(await t.call("POST", "/api/v1/streams/readings/events", { body: { value: 1 } }), 401, "unauthorized");
  assertError(await t.call("GET", "/api/v1/streams", { token: "not-a-token" }), 401, "unauthorized");
  const token = await t.login("admin", "admin-password-1");
  clock.advance(2 * 3_600_000);
  assertError(await t.call("GET", "/api/v1/streams", { token }), 401, "token_expired");
});

test("unknown routes answer JSON 404", async () => {
  assertError(await t.call("GET", "/api/v1/nothing-here"), 404, "not_found");
});

test("a field name that cannot be a column (empty, NUL) → 400 naming the event; the stream keeps loading", async () => {
  // Earlier tests move the clock past the admin token's lifetime.
  const token = await t.login("admin", ADMIN_PASSWORD);
  const res = await t.call("POST", "/api/v1/streams/readings/events", {
    token,
    raw: '{"user_id":"a","value":1}\n{"user_id":"a","value":2,"":3}\n{"user_id":"a","value":3,"\\u0000x":1}\n',
    contentType: "application/x-ndjson",
  });
  assertError(res, 400, "invalid_events");
  assert.deepEqual(
    (res.body.details as { index: number }[]).map((d) => d.index),
    [1, 2],
  );
});
