/** Idempotency-Key and backpressure on HTTP ingest, through the real app. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

let t: TestRunnel;

before(async () => {
  t = await startTestRunnel({ env: { RUNNEL_INGEST_MAX_PENDING: "1" } });
  const res = await t.call("POST", "/api/v1/streams", { token: t.adminToken, body: { name: "orders", partitions: 2 } });
  assert.equal(res.status, 201, JSON.stringify(res.body));
});
after(() => t.close());

async function send(body: string, key?: string) {
  const res = await t.app.inject({
    method: "POST",
    url: "/api/v1/streams/orders/events",
    headers: {
      authorization: `Bearer ${t.adminToken}`,
      "content-type": "application/x-ndjson",
      ...(key !== undefined && { "idempotency-key": key }),
    },
    payload: body,
  });
  return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown>, headers: res.headers };
}

async function count(where: string): Promise<number> {
  const res = await t.call("POST", "/api/v1/query", {
    token: t.adminToken,
    body: { sql: `SELECT count(*) FROM orders WHERE ${where}` },
  });
  // Before the first event carrying a column is loaded, the column does not exist yet.
  if (res.status !== 200) return -1;
  return (res.body.rows as number[][])[0]![0]!;
}

async function countWhenLoaded(where: string, expected: number): Promise<number> {
  let n = -1;
  for (let i = 0; i < 100 && n !== expected; i++) {
    n = await count(where);
    if (n !== expected) await new Promise((r) => setTimeout(r, 50));
  }
  return n;
}

test("a retry with the same Idempotency-Key and body appends nothing twice and returns the first answer", async () => {
  const body = '{"user_id":"ann","n":1,"batch":"k1"}\n{"user_id":"bob","n":2,"batch":"k1"}\n';
  const first = await send(body, "order-batch-1");
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.deepEqual(first.body, { accepted: 2 });
  const [second, third] = await Promise.all([send(body, "order-batch-1"), send(body, "order-batch-1")]);
  assert.deepEqual(second.body, { accepted: 2 });
  assert.deepEqual(third.body, { accepted: 2 });
  assert.equal(second.headers["idempotent-replayed"], "true");
  assert.equal(await countWhenLoaded("batch = 'k1'", 2), 2);
});

test("concurrent first attempts with one key append once", async () => {
  const body = '{"user_id":"ann","batch":"k2"}\n';
  const replies = await Promise.all(Array.from({ length: 5 }, () => send(body, "order-batch-2")));
  for (const r of replies) assert.ok(r.status === 200 || r.status === 429, JSON.stringify(r.body));
  assert.ok(replies.some((r) => r.status === 200));
  assert.equal(await countWhenLoaded("batch = 'k2'", 1), 1);
});

test("the same key with another body is a conflict and appends nothing", async () => {
  const first = await send('{"user_id":"ann","batch":"k3"}', "order-batch-3");
  assert.equal(first.status, 200);
  const other = await send('{"user_id":"ann","batch":"k3","changed":true}', "order-batch-3");
  assert.equal(other.status, 409);
  assert.equal(other.body.error, "conflict");
  assert.match(String(other.body.message), /different request body/);
});

test("a bad Idempotency-Key is refused with 400 naming the header", async () => {
  const res = await send('{"user_id":"ann"}', "has space");
  assert.equal(res.status, 400);
  assert.match(String(res.body.message), /Idempotency-Key/);
});

test("past the pending-bytes bound, ingest answers 429 with Retry-After, never a partial write", async () => {
  const replies = await Promise.all(
    Array.from({ length: 30 }, (_, i) => send(`{"user_id":"u${i}","batch":"bp"}\n{"user_id":"v${i}","batch":"bp"}`)),
  );
  let accepted = 0;
  for (const r of replies) {
    if (r.status === 200) {
      accepted += r.body.accepted as number;
      continue;
    }
    assert.equal(r.status, 429, JSON.stringify(r.body));
    assert.equal(r.body.error, "overloaded");
    assert.ok(Number(r.headers["retry-after"]) >= 1);
  }
  assert.ok(accepted >= 2, "an idle log always takes one batch");
  assert.equal(await countWhenLoaded("batch = 'bp'", accepted), accepted);
});
