/**
 * Rollups under SIGKILL: producers post while the server loads their events into the stream's
 * table and rollups, and the server is killed in the middle. After a restart on the same data,
 * while and after the loader replays the log, every rollup equals the same GROUP BY over the raw
 * table: the rollup is kept in the transaction that applies the rows, so nothing is counted twice
 * or lost.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Client } from "../helpers/http.js";
import { ADMIN_PASSWORD, startServerProcess, tempDataDir } from "../helpers/server-process.js";

const BATCH = 20;

const STREAM = {
  name: "orders",
  partitions: 4,
  rollups: [
    {
      name: "orders_per_second",
      granularity: "1s",
      dimensions: ["country", "user_id"],
      metrics: { n: "count", total: "sum(amount)", lo: "min(amount)", buyers: "approx_count_distinct(buyer)" },
    },
  ],
};

/** Rows of the rollup and of the raw GROUP BY that the other lacks, and the raw rows, in one snapshot. */
const DIFFERENCES = `WITH r AS (SELECT _time, country, user_id, n, total, lo, buyers FROM orders_per_second),
  w AS (SELECT time_bucket(INTERVAL 1 SECOND, _time) AS _time, country, user_id, count(*) AS n,
          sum(amount::DOUBLE) AS total, min(amount::DOUBLE) AS lo, count(DISTINCT buyer) AS buyers FROM orders GROUP BY ALL)
  SELECT (SELECT count(*) FROM (SELECT * FROM r EXCEPT ALL SELECT * FROM w)),
         (SELECT count(*) FROM (SELECT * FROM w EXCEPT ALL SELECT * FROM r)),
         (SELECT count(*) FROM orders)`;

test("rollups equal the raw GROUP BY after a SIGKILL in the middle of loading", async () => {
  const data = await tempDataDir();
  try {
    let server = await startServerProcess(data.dir);
    let admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
    const created = await admin.post("/api/v1/streams", STREAM);
    assert.equal(created.status, 201, JSON.stringify(created.body));

    let acked = 0;
    let stop = false;
    let next = 0;
    const producer = async (): Promise<void> => {
      while (!stop) {
        const batch = next++;
        const events = Array.from({ length: BATCH }, (_, i) => ({
          user_id: `u${(batch + i) % 7}`,
          country: ["fr", "de", "us", "jp"][(batch * 3 + i) % 4],
          amount: (batch * BATCH + i) % 97,
          buyer: `b${(batch * 31 + i) % 113}`,
        }));
        try {
          const res = await admin.post("/api/v1/streams/orders/events", events);
          if (res.status === 200) acked += BATCH;
        } catch {
          return; // the connection died with the server
        }
      }
    };
    const producers = Array.from({ length: 6 }, () => producer());
    while (acked < 6000) await new Promise((r) => setTimeout(r, 10));
    await server.kill("SIGKILL");
    stop = true;
    await Promise.all(producers);

    server = await startServerProcess(data.dir);
    try {
      admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
      let rows = 0;
      const deadline = Date.now() + 30_000;
      // Checked at every poll: while the loader replays the log, and once it has caught up.
      while (rows < acked && Date.now() < deadline) {
        const res = await admin.post<{ rows: number[][] }>("/api/v1/query", { sql: DIFFERENCES });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const [missing, extra, raw] = res.body.rows[0] as [number, number, number];
        assert.deepEqual([missing, extra], [0, 0], `rollup differs from the raw rows at ${raw} rows`);
        rows = raw;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(rows >= acked, `${rows} rows loaded of ${acked} acknowledged`);
      const stream = await admin.get<{ rollups: { rowsIn: number }[] }>("/api/v1/streams/orders");
      assert.equal(stream.body.rollups[0]?.rowsIn, rows);
    } finally {
      await server.kill();
    }
  } finally {
    await data.remove();
  }
});
