/**
 * Durability under SIGKILL: concurrent producers post batches; the server is killed in the middle.
 * After a restart on the same data, every acknowledged batch is present exactly once (in queries,
 * which are loaded from the log), every batch is all-or-nothing, and no refused request left a trace.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Client } from "../helpers/http.js";
import { ADMIN_PASSWORD, startServerProcess, tempDataDir } from "../helpers/server-process.js";

const BATCH = 5;

test("acknowledged events survive SIGKILL exactly once; refused ones never appear", async () => {
  const data = await tempDataDir();
  try {
    let server = await startServerProcess(data.dir);
    let admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
    assert.equal((await admin.post("/api/v1/streams", { name: "orders", partitions: 4 })).status, 201);

    const acked = new Set<number>();
    const sent = new Set<number>();
    let refusedSeen = 0;
    let stop = false;
    let next = 0;
    const producer = async (): Promise<void> => {
      while (!stop) {
        const batch = next++;
        // Every 7th batch carries one invalid event: it must be refused whole.
        const invalid = batch % 7 === 3;
        const events = Array.from({ length: BATCH }, (_, i) => ({
          user_id: `u${(batch * BATCH + i) % 13}`,
          batch,
          i,
          ...(invalid && i === 2 && { timestamp: "not a time" }),
        }));
        sent.add(batch);
        try {
          const res = await admin.post("/api/v1/streams/orders/events", events);
          if (res.status === 200) {
            assert.ok(!invalid, `invalid batch ${batch} was accepted`);
            acked.add(batch);
          } else if (res.status === 400 && invalid) {
            refusedSeen++;
          }
        } catch {
          return; // the connection died with the server
        }
      }
    };
    const producers = Array.from({ length: 8 }, () => producer());
    while (acked.size < 150) await new Promise((r) => setTimeout(r, 10));
    await server.kill("SIGKILL");
    stop = true;
    await Promise.all(producers);
    assert.ok(refusedSeen > 0, "some invalid batches were refused");

    server = await startServerProcess(data.dir);
    try {
      admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
      const expectedAtLeast = acked.size * BATCH;
      const result = await admin.queryUntil(
        "SELECT batch, count(*) AS n, count(DISTINCT i) AS d FROM orders GROUP BY batch ORDER BY batch",
        (rows) => rows.reduce((s: number, r) => s + Number(r[1]), 0) >= expectedAtLeast,
        20_000,
      );
      const present = new Map(result.rows.map((r) => [Number(r[0]), [Number(r[1]), Number(r[2])] as const]));
      for (const batch of acked) {
        assert.deepEqual(present.get(batch), [BATCH, BATCH], `acknowledged batch ${batch} is whole and not duplicated`);
      }
      for (const [batch, [n, distinct]] of present) {
        assert.ok(sent.has(batch), `batch ${batch} was sent`);
        assert.notEqual(batch % 7, 3, `refused batch ${batch} left events`);
        assert.deepEqual([n, distinct], [BATCH, BATCH], `batch ${batch} is all-or-nothing`);
      }
    } finally {
      await server.kill();
    }
  } finally {
    await data.remove();
  }
});
