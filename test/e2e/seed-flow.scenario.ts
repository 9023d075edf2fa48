/**
 * The seed's user_data flow end to end over HTTP against the real server: admin creates the stream,
 * a service key ingests for users A and B (object, array, NDJSON), a pipeline enriches the events,
 * and A and B each get their own numbers, from the raw and the enriched stream.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "../helpers/http.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";

/** The scenario, against a server started with `env` (the Kafka variant sets RUNNEL_KAFKA_BROKERS). */
export function seedFlowSuite(name: string, env: () => Promise<Record<string, string>>): void {
  describe(name, () => {
    let server: ServerProcess;
    let removeDir: () => Promise<void>;
    let admin: Client;
    let service: Client;
    let userA: Client;
    let userB: Client;

    const HOUR = 3_600_000;

    before(async () => {
      const data = await tempDataDir();
      removeDir = data.remove;
      server = await startServerProcess(data.dir, await env());
      const anon = new Client(server.url);
      admin = await anon.login("admin", ADMIN_PASSWORD);

      const key = await admin.post<{ key: string }>("/api/v1/api-keys", { name: "producer", role: "service" });
      assert.equal(key.status, 201);
      service = anon.as(key.body.key);

      for (const name of ["A", "B"]) {
        const signup = await anon.post("/api/v1/auth/signup", {
          username: name,
          email: `${name}@example.com`,
          password: "password-123",
        });
        assert.equal(signup.status, 201, JSON.stringify(signup.body));
      }
      userA = await anon.login("A", "password-123");
      userB = await anon.login("B", "password-123");
    });

    after(async () => {
      await server?.kill();
      await removeDir?.();
    });

    test("the seed's flow: ingest, enrich, and per-user answers", async () => {
      const created = await admin.post("/api/v1/streams", { name: "user_data" });
      assert.equal(created.status, 201, JSON.stringify(created.body));

      const now = Date.now();
      // One object, as in the seed.
      let res = await service.post("/api/v1/streams/user_data/events", { data: "1", user_id: "A" });
      assert.deepEqual([res.status, res.body], [200, { accepted: 1 }]);
      // A JSON array: A has 2 and 3 within the hour, 10 two hours ago; B has 100.
      res = await service.post("/api/v1/streams/user_data/events", [
        { data: "2", user_id: "A" },
        { data: "3", user_id: "A", timestamp: new Date(now - 10 * 60_000).toISOString() },
        { data: "10", user_id: "A", timestamp: now - 2 * HOUR },
        { data: "100", user_id: "B" },
      ]);
      assert.deepEqual([res.status, res.body], [200, { accepted: 4 }]);
      // NDJSON: one more for each; A's is older than a day and must not count in the 24 h sum.
      const ndjson = [
        JSON.stringify({ data: "1000", user_id: "A", timestamp: now - 30 * HOUR }),
        JSON.stringify({ data: "200", user_id: "B" }),
      ].join("\n");
      res = await service.request("POST", "/api/v1/streams/user_data/events", undefined, {
        raw: `${ndjson}\n`,
        contentType: "application/x-ndjson",
      });
      assert.deepEqual([res.status, res.body], [200, { accepted: 2 }]);

      const pipeline = await admin.post("/api/v1/pipelines", {
        name: "user_data_enriched",
        sql: 'SELECT user_id AS "user", CAST(data AS DOUBLE) AS data, epoch(_time) AS "timestamp" FROM user_data',
        startFrom: "earliest",
      });
      assert.equal(pipeline.status, 201, JSON.stringify(pipeline.body));

      // "What is the sum of data for me in the last 24 hours?"
      const sum24Raw =
        "SELECT sum(CAST(data AS DOUBLE)) AS total FROM user_data WHERE _time > now() - INTERVAL 24 HOUR";
      const sum24Enriched = "SELECT sum(data) AS total FROM user_data_enriched WHERE _time > now() - INTERVAL 24 HOUR";
      // "How many events, and the average over the last hour?"
      const hourRaw =
        "SELECT count(*) AS n, avg(CAST(data AS DOUBLE)) AS average FROM user_data WHERE _time > now() - INTERVAL 1 HOUR";
      const hourEnriched =
        "SELECT count(*) AS n, avg(data) AS average FROM user_data_enriched WHERE _time > now() - INTERVAL 1 HOUR";

      const a24 = await userA.queryUntil(sum24Raw, (rows) => rows[0]?.[0] === 16);
      assert.deepEqual(a24.rows, [[16]]);
      assert.deepEqual((await userA.queryUntil(sum24Enriched, (rows) => rows[0]?.[0] === 16)).rows, [[16]]);
      assert.deepEqual((await userA.queryUntil(hourRaw, (rows) => rows[0]?.[0] === 3)).rows, [[3, 2]]);
      assert.deepEqual((await userA.queryUntil(hourEnriched, (rows) => rows[0]?.[0] === 3)).rows, [[3, 2]]);

      assert.deepEqual((await userB.queryUntil(sum24Raw, (rows) => rows[0]?.[0] === 300)).rows, [[300]]);
      assert.deepEqual((await userB.queryUntil(hourEnriched, (rows) => rows[0]?.[0] === 2)).rows, [[2, 150]]);

      // The enriched events have the seed's shape, and A sees only A's.
      const enriched = await userA.queryUntil(
        'SELECT "user", data, "timestamp" FROM user_data_enriched ORDER BY data',
        (rows) => rows.length === 5,
      );
      assert.deepEqual(
        enriched.rows.map((r) => [r[0], r[1]]),
        [
          ["A", 1],
          ["A", 2],
          ["A", 3],
          ["A", 10],
          ["A", 1000],
        ],
      );
      for (const row of enriched.rows) assert.equal(typeof row[2], "number");

      // An analyst or admin sees everyone's.
      const all = await admin.queryUntil(
        "SELECT user_id, count(*) FROM user_data GROUP BY ALL ORDER BY 1",
        (rows) => rows.length === 2,
      );
      assert.deepEqual(all.rows, [
        ["A", 5],
        ["B", 2],
      ]);
    });

    test("a user ingesting names only themselves", async () => {
      let res = await userA.post("/api/v1/streams/user_data/events", { data: "5" });
      assert.equal(res.status, 200);
      res = await userA.post("/api/v1/streams/user_data/events", [{ data: "5" }, { data: "6", user_id: "B" }]);
      assert.equal(res.status, 403);
      assert.equal(res.body.error, "forbidden");
      const mine = await userA.queryUntil(
        "SELECT count(*) FROM user_data WHERE data = '5'",
        (rows) => rows[0]?.[0] === 1,
      );
      assert.deepEqual(mine.rows, [[1]]);
      const bs = await userB.queryUntil("SELECT count(*) FROM user_data WHERE data = '6'", () => true, 300);
      assert.deepEqual(bs.rows, [[0]]);
    });
  });
}
