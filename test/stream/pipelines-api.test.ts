/** Windowed pipelines through the HTTP API: creation with options, refusals, results as a queryable stream, drop. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

const T0 = Date.UTC(2024, 0, 1);
const SQL = `SELECT user_id, window_start, window_end, count(*) AS n, sum(amount) AS total
  FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`;

describe("windowed pipelines over HTTP", () => {
  let r: TestRunnel;
  before(async () => {
    r = await startTestRunnel();
    const res = await r.call("POST", "/api/v1/streams", {
      token: r.adminToken,
      body: { name: "transactions", partitions: 1 },
    });
    assert.equal(res.status, 201);
  });
  after(async () => {
    await r.close();
  });

  it("refuses unsupported SQL with 400 unsupported_sql naming the construct", async () => {
    const cases: [string, RegExp][] = [
      [`SELECT user_id, count(*) FROM TUMBLE(transactions, ts, INTERVAL '1 minute') GROUP BY ALL`, /_time/],
      [`SELECT user_id, count(*) FROM TUMBLE(transactions, _time, INTERVAL '1 month') GROUP BY ALL`, /MONTH/],
      [`SELECT user_id, amount FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY user_id`, /amount/],
      [`SELECT user_id, median(amount) FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`, /median/],
      [`SELECT user_id, count(*) FROM transactions GROUP BY user_id`, /GROUP BY without a window/],
      [`SELECT * FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`, /SELECT \*/],
      [`SELECT user_id, count(*) FROM HOP(transactions, _time, INTERVAL '1 hour') GROUP BY ALL`, /HOP takes/],
    ];
    for (const [sql, message] of cases) {
      const res = await r.call("POST", "/api/v1/pipelines", { token: r.adminToken, body: { name: "bad", sql } });
      assert.equal(res.status, 400, sql);
      assert.equal(res.body.error, "unsupported_sql", sql);
      assert.match(String(res.body.message), message, sql);
    }
    const badOption = await r.call("POST", "/api/v1/pipelines", {
      token: r.adminToken,
      body: { name: "bad", sql: SQL, options: { outOfOrderness: "soon" } },
    });
    assert.equal(badOption.status, 400);
    assert.match(String(badOption.body.message), /outOfOrderness/);
  });

  it("creates a windowed pipeline whose results and late events are queryable streams", async () => {
    const created = await r.call("POST", "/api/v1/pipelines", {
      token: r.adminToken,
      body: { name: "per_minute", sql: SQL, startFrom: "earliest", options: { outOfOrderness: "0s", idleTimeout: 0 } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.kind, "window");
    assert.equal(created.body.lateOutput, "per_minute_late");
    assert.equal(created.body.sql, SQL);
    assert.deepEqual(created.body.options, {
      outOfOrderness: "0s",
      idleTimeout: "0s",
      allowedLateness: "0s",
      checkpointInterval: "10s",
    });
    const ingest = await r.call("POST", "/api/v1/streams/transactions/events", {
      token: r.adminToken,
      body: [
        { user_id: "A", amount: 2, timestamp: T0 + 1 },
        { user_id: "A", amount: 3, timestamp: T0 + 2 },
        { user_id: "B", amount: 5, timestamp: T0 + 3 },
        { user_id: "B", amount: 1, timestamp: T0 + 2 * 60_000 },
        { user_id: "A", amount: 9, timestamp: T0 + 4 },
      ],
    });
    assert.equal(ingest.status, 200);
    const query = async (sql: string) =>
      (await r.call("POST", "/api/v1/query", { token: r.adminToken, body: { sql } })).body as { rows?: unknown[][] };
    let rows: unknown[][] = [];
    for (let i = 0; i < 100 && rows.length < 2; i++) {
      await new Promise((res) => setTimeout(res, 50));
      rows = (await query("SELECT user_id, n, total FROM per_minute ORDER BY user_id")).rows ?? [];
    }
    assert.deepEqual(rows, [
      ["A", 2, 5],
      ["B", 1, 5],
    ]);
    let late: unknown[][] = [];
    for (let i = 0; i < 100 && late.length < 1; i++) {
      await new Promise((res) => setTimeout(res, 50));
      late = (await query("SELECT user_id, amount FROM per_minute_late")).rows ?? [];
    }
    assert.deepEqual(late, [["A", 9]]);
    // The output's columns are typed from the SQL: window bounds are timestamps, counts integers.
    const typed = await r.call("POST", "/api/v1/query", {
      token: r.adminToken,
      body: { sql: "SELECT window_start, window_end, n FROM per_minute LIMIT 1" },
    });
    assert.deepEqual(
      (typed.body.columns as { type: string }[]).map((c) => c.type),
      ["TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITH TIME ZONE", "BIGINT"],
    );
    const got = await r.call("GET", "/api/v1/pipelines/per_minute", { token: r.adminToken });
    assert.equal((got.body.stats as { late: number }).late, 1);
  });

  it("drops the pipeline with its output and late streams", async () => {
    assert.equal((await r.call("DELETE", "/api/v1/pipelines/per_minute", { token: r.adminToken })).status, 204);
    assert.equal((await r.call("GET", "/api/v1/streams/per_minute", { token: r.adminToken })).status, 404);
    assert.equal((await r.call("GET", "/api/v1/streams/per_minute_late", { token: r.adminToken })).status, 404);
    const again = await r.call("POST", "/api/v1/pipelines", {
      token: r.adminToken,
      body: { name: "per_minute", sql: SQL, startFrom: "earliest" },
    });
    assert.equal(again.status, 201);
  });
});
