/**
 * The archive through the API, on a whole Runnel: a stream with a one-day hot window, events of
 * two users over five days, the archiver running every second into a directory of the test's.
 * Queries answer the same whichever tier holds the rows, a user still sees only their own, the
 * archive's files cannot be named in SQL, and deleting the stream deletes its files.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";
import { until } from "../helpers/poll.js";

const HOUR = 3_600_000;
let t: TestRunnel;
let dir: string;
const tokens: Record<string, string> = {};
const expected: Record<string, { all: number; day: number; count: number }> = {};

async function files(stream: string): Promise<string[]> {
  const out = await readdir(join(dir, stream), { recursive: true }).catch(() => [] as string[]);
  return out.filter((f) => f.endsWith(".parquet"));
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "runnel-archive-api-"));
  t = await startTestRunnel({ env: { RUNNEL_ARCHIVE_URL: dir, RUNNEL_ARCHIVE_INTERVAL: "1s" } });
  for (const name of ["alice", "bob"]) {
    const signup = await t.call("POST", "/api/v1/auth/signup", {
      body: { username: name, email: `${name}@example.com`, password: `${name}-password-1` },
    });
    assert.equal(signup.status, 201, JSON.stringify(signup.body));
    tokens[name] = await t.login(name, `${name}-password-1`);
  }
  const created = await t.call("POST", "/api/v1/streams", {
    token: t.adminToken,
    body: { name: "spend", partitions: 2, analytics: { hot: "1d" } },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.analyticsHotMs, 86_400_000);
  // One event every 3 hours over 5 days per user; the last day's stay hot.
  const now = Date.now();
  for (const [u, name] of ["alice", "bob"].entries()) {
    const events = [];
    const e = { all: 0, day: 0, count: 0 };
    for (let i = 0; i < 40; i++) {
      // Half an hour off the 3-hour grid, so no event sits on the 24-hour edge while the test runs.
      const time = now - 5 * 24 * HOUR + i * 3 * HOUR + 30 * 60_000 + u * 60_000;
      const amount = i + u * 100;
      events.push({ timestamp: new Date(time).toISOString(), amount, kind: i % 2 === 0 ? "a" : "b" });
      e.all += amount;
      e.count += 1;
      if (time > now - 24 * HOUR) e.day += amount;
    }
    expected[name] = e;
    const res = await t.call("POST", "/api/v1/streams/spend/events", { token: tokens[name], body: events });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
  await until(
    () => files("spend"),
    (f) => f.length > 0,
    "archive files of spend",
  );
});

after(async () => {
  await t.close();
  await rm(dir, { recursive: true, force: true });
});

async function query(token: string, sql: string) {
  return t.call("POST", "/api/v1/query", { token, body: { sql } });
}

describe("a stream whose old rows are archived", () => {
  it("answers over both tiers: totals, per user, the last 24 hours", async () => {
    const total = await until(
      () => query(t.adminToken, "SELECT count(*) AS n, sum(amount) AS s FROM spend"),
      (r) => r.status === 200 && (r.body.rows as unknown[][])[0]?.[0] === 80,
      "all 80 events queryable",
    );
    assert.deepEqual(total.body.rows, [[80, expected.alice!.all + expected.bob!.all]]);
    for (const name of ["alice", "bob"]) {
      const mine = await query(tokens[name]!, "SELECT count(*), sum(amount) FROM spend");
      assert.deepEqual(mine.body.rows, [[40, expected[name]!.all]], name);
      const day = await query(tokens[name]!, "SELECT sum(amount) FROM spend WHERE _time > now() - INTERVAL 24 HOUR");
      assert.deepEqual(day.body.rows, [[expected[name]!.day]], `${name}'s last day`);
    }
    const perUser = await query(t.adminToken, "SELECT user_id, count(*) FROM spend GROUP BY user_id ORDER BY user_id");
    assert.deepEqual(perUser.body.rows, [
      ["alice", 40],
      ["bob", 40],
    ]);
  });

  it("shows the archive in the metrics", async () => {
    const res = await t.app.inject({ method: "GET", url: "/metrics" });
    const value = (name: string) => Number(new RegExp(`^${name}\\{stream="spend"\\} (\\S+)$`, "m").exec(res.body)?.[1]);
    const onDisk = (await files("spend")).length;
    assert.equal(value("runnel_archive_files"), onDisk);
    assert.ok(value("runnel_archive_size_bytes") > 0);
    assert.ok(value("runnel_archive_rows") > 0 && value("runnel_archive_rows") < 80);
    assert.ok(value("runnel_archive_lag_seconds") >= 0 && value("runnel_archive_lag_seconds") < 60);
    assert.equal(value("runnel_archive_written_files_total"), onDisk);
  });

  it("refuses SQL that names the archive's files", async () => {
    for (const sql of [
      `SELECT * FROM read_parquet('${dir}/spend/**/*.parquet')`,
      `SELECT * FROM '${dir}/spend/**/*.parquet'`,
      `SELECT * FROM glob('${dir}/**')`,
    ]) {
      for (const token of [tokens.alice!, t.adminToken]) {
        const r = await query(token, sql);
        assert.equal(r.status, 403, `${sql}: ${JSON.stringify(r.body)}`);
      }
    }
  });

  it("deleting the stream deletes its archive", async () => {
    assert.ok((await files("spend")).length > 0);
    const res = await t.call("DELETE", "/api/v1/streams/spend", { token: t.adminToken });
    assert.equal(res.status, 204);
    assert.deepEqual(await files("spend"), []);
  });
});

describe("a stream deleted and created again under the same name", () => {
  it("archives and answers with the new stream's columns only", async () => {
    const created = await t.call("POST", "/api/v1/streams", {
      token: t.adminToken,
      body: { name: "spend", partitions: 2, analytics: { hot: "1d" } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const now = Date.now();
    const events = Array.from({ length: 20 }, (_, i) => ({
      user_id: "carol",
      timestamp: new Date(now - (3 * 24 - i) * HOUR).toISOString(),
      other: i,
    }));
    assert.equal(
      (await t.call("POST", "/api/v1/streams/spend/events", { token: t.adminToken, body: events })).status,
      200,
    );
    await until(
      () => files("spend"),
      (f) => f.length > 0,
      "archive files of the new spend",
    );
    const res = await until(
      () => query(t.adminToken, "SELECT count(*), sum(other) FROM spend"),
      (r) => r.status === 200 && (r.body.rows as unknown[][])[0]?.[0] === 20,
      "the new stream's 20 rows",
    );
    assert.deepEqual(res.body.rows, [[20, 190]]);
    const old = await query(t.adminToken, "SELECT amount FROM spend");
    assert.equal(old.status, 400, "the old stream's columns are gone");
  });
});
