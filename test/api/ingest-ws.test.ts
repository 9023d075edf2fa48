/** The WebSocket producer endpoint: one answer per batch, in order, after durability; errors append nothing. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { WebSocket } from "ws";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

let t: TestRunnel;

before(async () => {
  t = await startTestRunnel({ env: { RUNNEL_MAX_BODY_BYTES: "4KiB" } });
  const res = await t.call("POST", "/api/v1/streams", {
    token: t.adminToken,
    body: { name: "ticks", partitions: 2, schema: { type: "object", required: ["v"] } },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
});
after(() => t.close());

function connect(token = t.adminToken): Promise<WebSocket> {
  return t.app.injectWS("/api/v1/streams/ticks/ws", { headers: { authorization: `Bearer ${token}` } });
}

function answers(ws: WebSocket, n: number): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  return new Promise((resolve) => {
    ws.on("message", (data) => {
      out.push(JSON.parse(String(data)) as Record<string, unknown>);
      if (out.length === n) resolve(out);
    });
  });
}

test("each batch gets one ack with its sequence number; an invalid batch gets an error and is not appended", async () => {
  const ws = await connect();
  const got = answers(ws, 4);
  ws.send('{"user_id":"a","v":1}');
  ws.send(
    JSON.stringify([
      { user_id: "a", v: 2 },
      { user_id: "b", v: 3 },
    ]),
  );
  ws.send('{"user_id":"a","v":4}\n{"user_id":"b"}');
  ws.send('{"user_id":"c","v":5}\n{"user_id":"c","v":6}\n');
  const frames = await got;
  assert.deepEqual(
    frames.map((f) => [f.type, f.seq]),
    [
      ["ack", 1],
      ["ack", 2],
      ["error", 3],
      ["ack", 4],
    ],
  );
  assert.equal(frames[0]!.accepted, 1);
  assert.equal(frames[1]!.accepted, 2);
  assert.equal(frames[2]!.error, "invalid_events");
  assert.deepEqual(
    (frames[2]!.details as { index: number }[]).map((d) => d.index),
    [1],
  );
  assert.equal(frames[3]!.accepted, 2);
  ws.close();

  let n = 0;
  for (let i = 0; i < 100 && n !== 5; i++) {
    const res = await t.call("POST", "/api/v1/query", {
      token: t.adminToken,
      body: { sql: "SELECT count(*) FROM ticks" },
    });
    n = (res.body.rows as number[][])[0]![0]!;
    if (n !== 5) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(n, 5);
});

test("malformed JSON gets an error frame and the connection stays usable", async () => {
  const ws = await connect();
  const got = answers(ws, 2);
  ws.send("{nope");
  ws.send('{"user_id":"a","v":1}');
  const frames = await got;
  assert.equal(frames[0]!.error, "invalid_json");
  assert.equal(frames[1]!.type, "ack");
  ws.close();
});

test("an over-size frame closes the connection with 1009 and nothing else", async () => {
  const ws = await connect();
  const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
  ws.send(JSON.stringify({ user_id: "a", v: 1, pad: "x".repeat(8000) }));
  assert.equal(await closed, 1009);
  const again = await connect();
  const got = answers(again, 1);
  again.send('{"user_id":"a","v":1}');
  assert.equal((await got)[0]!.type, "ack");
  again.close();
});

test("without credentials the upgrade is refused", async () => {
  await assert.rejects(t.app.injectWS("/api/v1/streams/ticks/ws"));
});
