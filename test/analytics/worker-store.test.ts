import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { createWorkerAnalyticsStore } from "../../src/analytics/index.js";
import { AnalyticsLoader } from "../../src/analytics/loader.js";
import { RunnelError } from "../../src/core/errors.js";
import { event, FakeEventLog } from "./fake-log.js";
import { row, streamDef } from "./helpers.js";

const ALL = { kind: "all" } as const;

async function openWorkerStore(t: TestContext, path?: string) {
  const store = createWorkerAnalyticsStore({ sandbox: { warm: 1 }, ...(path !== undefined && { path }) });
  await store.open();
  t.after(() => store.close());
  return store;
}

test("the worker store loads through the loader exactly once and answers scoped queries", async (t) => {
  const log = new FakeEventLog();
  await log.createStream("clicks", { partitions: 3 });
  const store = await openWorkerStore(t);
  const loader = new AnalyticsLoader({ log, store, batchSize: 50 });
  t.after(() => loader.stop());
  loader.follow(streamDef("clicks", 3));
  const records = Array.from({ length: 500 }, (_, i) => event(`u${i % 5}`, { i, é: `ü${i}` }, 1000 + i));
  const positions = await log.append("clicks", records);
  await loader.waitFor("clicks", positions, 10_000);
  const all = await store.query(
    'SELECT count(*), count(DISTINCT i), sum(i), min("é"), min(epoch_ms(_time)) FROM clicks',
    [],
    ALL,
  );
  assert.deepEqual(all.rows, [[500, 500, (499 * 500) / 2, "ü0", 1000]]);
  const mine = await store.query("SELECT count(*), min(user_id), max(user_id) FROM clicks", [], {
    kind: "user",
    userId: "u3",
  });
  assert.deepEqual(mine.rows, [[100, "u3", "u3"]]);
  const applied = await store.appliedOffsets("clicks");
  assert.ok(applied instanceof Map);
  assert.equal(
    [...applied.values()].reduce((a, b) => a + b, 0),
    500,
  );
});

test("errors cross the thread with their code and details", async (t) => {
  const store = await openWorkerStore(t);
  await store.ensureTable(streamDef("events"));
  await assert.rejects(store.query("DROP TABLE events", [], ALL), (e: unknown) => {
    assert.ok(e instanceof RunnelError);
    assert.ok(["invalid_query", "query_forbidden", "unsupported_sql"].includes(e.code), e.code);
    return true;
  });
  await assert.rejects(store.apply("nope", 0, [row(0, "A", { x: 1 })]), { code: "stream_not_found" });
  assert.equal(await store.ping(), true);
});

test("rows applied through the worker survive a reopen, and a closed store refuses calls", async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-worker-store-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "a.duckdb");
  const first = createWorkerAnalyticsStore({ path, sandbox: { warm: 1 } });
  await first.open();
  await first.ensureTable(streamDef("events"));
  await first.applyRecords("events", [
    {
      partition: 0,
      records: [
        { partition: 0, offset: 0, key: "A", timestamp: 5, ingestTime: 6, value: new TextEncoder().encode('{"n":1}') },
        { partition: 0, offset: 1, key: "B", timestamp: 7, ingestTime: 8, value: new TextEncoder().encode("not json") },
      ],
    },
  ]);
  await first.close();
  await assert.rejects(first.query("SELECT 1", [], ALL), { code: "not_ready" });
  assert.equal(await first.ping(), false);

  const second = await openWorkerStore(t, path);
  assert.deepEqual(await second.appliedOffsets("events"), new Map([[0, 2]]));
  const r = await second.query("SELECT user_id, n, epoch_ms(_ingest_time) FROM events ORDER BY _offset", [], ALL);
  assert.deepEqual(r.rows, [
    ["A", 1, 6],
    ["B", null, 8],
  ]);
});
