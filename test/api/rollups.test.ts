/**
 * Rollups through the API on a whole Runnel: declared with the stream, fed by ingest, queried by
 * name and equal to the same GROUP BY over the stream's table; scoped per user when user_id is a
 * dimension and closed to users when it is not; their ratio in the stream and in the metrics;
 * bad declarations refused naming the field. The stream's hot window is an hour and its events
 * span three, so the archiver (every second) moves most of them, and the rollups' rows with them.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";
import { until } from "../helpers/poll.js";

const MINUTE = 60_000;
let t: TestRunnel;
let dir: string;
const tokens: Record<string, string> = {};
const sent: Record<string, number> = {};

const PAYMENTS = {
  name: "payments",
  partitions: 2,
  analytics: { hot: "1h" },
  rollups: [
    {
      name: "payments_10m",
      granularity: "10m",
      dimensions: ["country"],
      metrics: { n: "count", total: "sum(amount)", biggest: "max(amount)", payers: "approx_count_distinct(user_id)" },
    },
    {
      name: "payments_by_user",
      granularity: "1h",
      dimensions: ["user_id", "country"],
      metrics: { n: "count", total: "sum(amount)" },
    },
  ],
};

/** The rollup's rows and the same GROUP BY over the raw table, one statement so both read one snapshot. */
const DIFFERENCES = `WITH r AS (SELECT _time, country, n, total, biggest, payers FROM payments_10m),
  w AS (SELECT time_bucket(INTERVAL 10 MINUTE, _time) AS _time, country, count(*) AS n, sum(amount::DOUBLE) AS total,
          max(amount::DOUBLE) AS biggest, count(DISTINCT user_id) AS payers FROM payments GROUP BY ALL)
  SELECT (SELECT count(*) FROM (SELECT * FROM r EXCEPT ALL SELECT * FROM w)),
         (SELECT count(*) FROM (SELECT * FROM w EXCEPT ALL SELECT * FROM r)),
         (SELECT count(*) FROM payments), (SELECT count(*) FROM r)`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "runnel-rollups-api-"));
  t = await startTestRunnel({ env: { RUNNEL_ARCHIVE_URL: dir, RUNNEL_ARCHIVE_INTERVAL: "1s" } });
  for (const name of ["alice", "bob"]) {
    const signup = await t.call("POST", "/api/v1/auth/signup", {
      body: { username: name, email: `${name}@example.com`, password: `${name}-password-1` },
    });
    assert.equal(signup.status, 201, JSON.stringify(signup.body));
    tokens[name] = await t.login(name, `${name}-password-1`);
  }
  const created = await t.call("POST", "/api/v1/streams", { token: t.adminToken, body: PAYMENTS });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.deepEqual(created.body.rollups, [
    { ...PAYMENTS.rollups[0], dimensions: ["country"], state: "ready" },
    { ...PAYMENTS.rollups[1], dimensions: ["user_id", "country"], state: "ready" },
  ]);
  const start = Date.now() - 3 * 60 * MINUTE + MINUTE;
  for (const [u, name] of ["alice", "bob"].entries()) {
    const events = Array.from({ length: 120 }, (_, i) => ({
      timestamp: new Date(start + i * 90_000 + u * 7_000).toISOString(),
      amount: (i * 7 + u) % 40,
      ...(i % 9 !== 0 && { country: ["fr", "de", "us"][(i + u) % 3] }),
    }));
    const res = await t.call("POST", "/api/v1/streams/payments/events", { token: tokens[name], body: events });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    sent[name] = events.length;
  }
});

after(async () => {
  await t.close();
  await rm(dir, { recursive: true, force: true });
});

async function archived(suffix: string): Promise<string[]> {
  const files = await readdir(join(dir, "payments"), { recursive: true }).catch(() => [] as string[]);
  return files.filter((f) => f.endsWith(suffix));
}

async function query(token: string, sql: string) {
  return t.call("POST", "/api/v1/query", { token, body: { sql } });
}

describe("a stream with rollups", () => {
  it("answers a rollup by name with what the same GROUP BY over the raw rows answers, over both tiers", async () => {
    // A file is put after its rollups' files: any file there has them beside it.
    const files = await until(
      () => archived(".parquet"),
      (f) => f.some((name) => !name.includes(".rollup_")),
      "the stream's rows archived",
    );
    for (const file of files.filter((name) => !name.includes(".rollup_"))) {
      for (const rollup of ["payments_10m", "payments_by_user"]) {
        assert.ok(files.includes(file.replace(/\.parquet$/, `.rollup_${rollup}.parquet`)), `${rollup} beside ${file}`);
      }
    }
    const res = await until(
      () => query(t.adminToken, DIFFERENCES),
      (r) => r.status === 200 && (r.body.rows as unknown[][])[0]?.[2] === 240,
      "all 240 events loaded",
    );
    const [missing, extra, rows, groups] = (res.body.rows as [number, number, number, number][])[0]!;
    assert.deepEqual([missing, extra, rows], [0, 0, 240]);
    assert.ok(groups > 30, `${groups} groups`);
  });

  it("shows a user only their rows of a rollup by user_id, and refuses them one that mixes users", async () => {
    const mine = await query(tokens.alice!, "SELECT user_id, sum(n), sum(total) FROM payments_by_user GROUP BY ALL");
    const raw = await query(
      t.adminToken,
      "SELECT user_id, count(*), sum(amount::DOUBLE) FROM payments WHERE user_id = 'alice' GROUP BY ALL",
    );
    assert.equal(mine.status, 200, JSON.stringify(mine.body));
    assert.deepEqual(mine.body.rows, raw.body.rows);
    assert.equal((mine.body.rows as unknown[][])[0]?.[1], sent.alice);
    const mixed = await query(tokens.bob!, "SELECT sum(n) FROM payments_10m");
    assert.equal(mixed.status, 403, JSON.stringify(mixed.body));
    assert.equal(mixed.body.error, "query_forbidden");
    assert.match(mixed.body.message as string, /payments_10m has no user_id dimension/);
    const all = await query(t.adminToken, "SELECT count(DISTINCT user_id) FROM payments_by_user");
    assert.deepEqual(all.body.rows, [[2]]);
  });

  it("reports each rollup's ratio in the stream and in the metrics", async () => {
    const res = await t.call("GET", "/api/v1/streams/payments", { token: t.adminToken });
    const rollups = res.body.rollups as { name: string; rowsIn: number; rowsKept: number }[];
    assert.deepEqual(
      rollups.map((r) => [r.name, r.rowsIn]),
      [
        ["payments_10m", 240],
        ["payments_by_user", 240],
      ],
    );
    for (const r of rollups) assert.ok(r.rowsKept > 0 && r.rowsKept < r.rowsIn, `${r.name} keeps ${r.rowsKept}`);
    const metrics = await t.app.inject({ method: "GET", url: "/metrics" });
    const value = (name: string, rollup: string) =>
      Number(new RegExp(`^${name}\\{stream="payments",rollup="${rollup}"\\} (\\S+)$`, "m").exec(metrics.body)?.[1]);
    assert.equal(value("runnel_rollup_input_rows", "payments_10m"), 240);
    assert.equal(value("runnel_rollup_kept_rows", "payments_10m"), rollups[0]!.rowsKept);
  });

  it("refuses bad declarations naming the field", async () => {
    const rollup = { name: "r1", granularity: "1m", metrics: { n: "count" } };
    const cases: [unknown, RegExp][] = [
      [{ ...rollup, granularity: "fortnightly" }, /rollups\[0\]\.granularity must be a duration/],
      [{ ...rollup, granularity: "10ms" }, /rollups\[0\]\.granularity must be a duration from "1s"/],
      [{ ...rollup, metrics: { total: "avg(amount)" } }, /rollups\[0\]\.metrics\.total must be "count"/],
      [{ ...rollup, metrics: { total: "sum()" } }, /rollups\[0\]\.metrics\.total: sum needs a field/],
      [{ ...rollup, metrics: {} }, /rollups\[0\]\.metrics must be an object of 1 to 32 metrics/],
      [{ ...rollup, dimensions: ["_offset"] }, /rollups\[0\]\.dimensions\[0\] cannot be _offset/],
      [{ ...rollup, dimensions: ["n"] }, /rollups\[0\]\.metrics\.n: the rollup already has a column "n"/],
      [{ ...rollup, extra: 1 }, /unknown field "rollups\[0\]\.extra"/],
      [{ ...rollup, name: "Bad-Name" }, /rollups\[0\]\.name must be 1–64 of/],
      [{ ...rollup, name: "pg_rollup" }, /rollups\[0\]\.name "pg_rollup" is reserved/],
      [{ ...rollup, name: "fresh" }, /rollups\[0\]\.name is the stream's own name/],
      [{ ...rollup, name: "orders_dead_letter" }, /rollups\[0\]\.name cannot end in "_dead_letter"/],
    ];
    for (const [declaration, message] of cases) {
      const res = await t.call("POST", "/api/v1/streams", {
        token: t.adminToken,
        body: { name: "fresh", rollups: [declaration] },
      });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error, "invalid_input");
      assert.match(res.body.message as string, message);
    }
    const twice = await t.call("POST", "/api/v1/streams", {
      token: t.adminToken,
      body: { name: "fresh", rollups: [rollup, rollup] },
    });
    assert.match(twice.body.message as string, /rollups\[1\]\.name: another rollup/);
    const logOnly = await t.call("POST", "/api/v1/streams", {
      token: t.adminToken,
      body: { name: "fresh", analytics: false, rollups: [rollup] },
    });
    assert.equal(logOnly.status, 400);
    assert.match(logOnly.body.message as string, /rollups need the analytics table/);
  });

  it("keeps streams and rollups apart in the one namespace queries name", async () => {
    const asStream = await t.call("POST", "/api/v1/streams", {
      token: t.adminToken,
      body: { name: "payments_10m" },
    });
    assert.equal(asStream.status, 409, JSON.stringify(asStream.body));
    assert.match(asStream.body.message as string, /a rollup of stream "payments"/);
    const asRollup = await t.call("POST", "/api/v1/streams", {
      token: t.adminToken,
      body: { name: "other", rollups: [{ name: "payments", granularity: "1h", metrics: { n: "count" } }] },
    });
    assert.equal(asRollup.status, 409, JSON.stringify(asRollup.body));
    assert.match(asRollup.body.message as string, /rollups\[0\]\.name: "payments" is taken by a stream/);
  });

  it("adds a rollup to the stream with its data, backfilled from both tiers, and removes it", async () => {
    const declaration = {
      name: "payments_hourly",
      granularity: "1h",
      dimensions: ["country"],
      metrics: { n: "count", total: "sum(amount)", payers: "approx_count_distinct(user_id)" },
    };
    const cases: [unknown, number, RegExp][] = [
      [{ ...declaration, granularity: "fortnightly" }, 400, /^granularity must be a duration/],
      [{ ...declaration, metrics: { total: "avg(amount)" } }, 400, /^metrics\.total must be "count"/],
      [{ ...declaration, dimensions: ["_offset"] }, 400, /^dimensions\[0\] cannot be _offset/],
      [{ ...declaration, extra: 1 }, 400, /^unknown field "extra"/],
      [{ ...declaration, name: "Bad-Name" }, 400, /^name must be 1–64 of/],
      [{ ...declaration, name: "payments" }, 400, /^name is the stream's own name/],
      [[declaration], 400, /^the body must be an object/],
      [{ ...declaration, name: "payments_10m" }, 409, /already has a rollup "payments_10m"/],
    ];
    for (const [body, status, message] of cases) {
      const res = await t.call("POST", "/api/v1/streams/payments/rollups", { token: t.adminToken, body });
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.match(res.body.message as string, message);
    }
    const other = await t.call("POST", "/api/v1/streams", { token: t.adminToken, body: { name: "other_stream" } });
    assert.equal(other.status, 201);
    const taken = await t.call("POST", "/api/v1/streams/other_stream/rollups", {
      token: t.adminToken,
      body: { ...declaration, name: "payments_by_user" },
    });
    assert.equal(taken.status, 409, JSON.stringify(taken.body));
    assert.match(taken.body.message as string, /is taken by a rollup of stream "payments"/);
    const asUser = await t.call("POST", "/api/v1/streams/payments/rollups", { token: tokens.alice, body: declaration });
    assert.equal(asUser.status, 403);

    const added = await t.call("POST", "/api/v1/streams/payments/rollups", { token: t.adminToken, body: declaration });
    assert.equal(added.status, 202, JSON.stringify(added.body));
    assert.deepEqual(added.body, { ...declaration, state: "building" });
    const ready = await until(
      () => t.call("GET", "/api/v1/streams/payments", { token: t.adminToken }),
      (r) => (r.body.rollups as { name: string; state: string }[]).at(-1)?.state === "ready",
      "the added rollup is backfilled",
    );
    const described = (ready.body.rollups as { name: string; rowsIn: number }[]).at(-1);
    assert.equal(described?.name, "payments_hourly");
    assert.equal(described?.rowsIn, 240, "every event of both tiers");
    assert.ok((await archived(".rollup_payments_hourly.parquet")).length > 0, "files beside the archived ones");
    const differences = await query(
      t.adminToken,
      `WITH r AS (SELECT _time, country, n, total, payers FROM payments_hourly),
         w AS (SELECT time_bucket(INTERVAL 1 HOUR, _time) AS _time, country, count(*) AS n,
                 sum(amount::DOUBLE) AS total, count(DISTINCT user_id) AS payers FROM payments GROUP BY ALL)
       SELECT (SELECT count(*) FROM (SELECT * FROM r EXCEPT ALL SELECT * FROM w)),
              (SELECT count(*) FROM (SELECT * FROM w EXCEPT ALL SELECT * FROM r)), (SELECT sum(n) FROM r)`,
    );
    assert.deepEqual(differences.body.rows, [[0, 0, 240]]);

    const missing = await t.call("DELETE", "/api/v1/streams/payments/rollups/nothing_here", { token: t.adminToken });
    assert.equal(missing.status, 404);
    const removed = await t.call("DELETE", "/api/v1/streams/payments/rollups/payments_hourly", {
      token: t.adminToken,
    });
    assert.equal(removed.status, 202, JSON.stringify(removed.body));
    assert.equal(removed.body.state, "dropping");
    await until(
      () => t.call("GET", "/api/v1/streams/payments", { token: t.adminToken }),
      (r) => ((r.body.rollups ?? []) as { name: string }[]).every((x) => x.name !== "payments_hourly"),
      "the rollup is dropped",
    );
    assert.deepEqual(await archived(".rollup_payments_hourly.parquet"), []);
    assert.equal((await query(t.adminToken, "SELECT count(*) FROM payments_hourly")).status, 404);
    assert.equal((await t.call("DELETE", "/api/v1/streams/other_stream", { token: t.adminToken })).status, 204);
  });

  it("goes with its stream", async () => {
    const res = await t.call("DELETE", "/api/v1/streams/payments", { token: t.adminToken });
    assert.equal(res.status, 204);
    assert.deepEqual(await archived(".parquet"), []);
    const gone = await query(t.adminToken, "SELECT * FROM payments_10m");
    assert.equal(gone.status, 404, JSON.stringify(gone.body));
    const again = await t.call("POST", "/api/v1/streams", {
      token: t.adminToken,
      body: { name: "reborn", rollups: [{ name: "payments_10m", granularity: "1h", metrics: { n: "count" } }] },
    });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.deepEqual((await query(t.adminToken, "SELECT count(*) FROM payments_10m")).body.rows, [[0]]);
  });
});
