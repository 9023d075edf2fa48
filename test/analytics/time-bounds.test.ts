/**
 * Which queries bound a table's event times (src/analytics/sql/time-bounds.ts): only a single
 * SELECT over the table alone, through top-level conjuncts of its WHERE comparing the table's own
 * `_time` with constant expressions. Everything else yields no bound (the whole user's rows are
 * copied), which is always correct.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { filesFor } from "../../src/analytics/duckdb/tiers.js";
import { parseSelects } from "../../src/analytics/sql/parse.js";
import { type TimeBounds, timeBounds } from "../../src/analytics/sql/time-bounds.js";

async function bounds(sql: string): Promise<TimeBounds> {
  const [statement] = await parseSelects(sql);
  return timeBounds(statement!, "clicks");
}

const count = (b: TimeBounds) => [b.lower.length, b.upper.length];

describe("time bounds", () => {
  it("reads lower and upper bounds from comparisons, BETWEEN and equality, either way round", async () => {
    assert.deepEqual(
      count(await bounds("SELECT sum(data) FROM clicks WHERE _time > now() - INTERVAL 24 HOUR")),
      [1, 0],
    );
    assert.deepEqual(count(await bounds("SELECT 1 FROM clicks WHERE $1 > _time AND data = 2")), [0, 1]);
    assert.deepEqual(count(await bounds("SELECT 1 FROM clicks c WHERE c._time BETWEEN $1 AND $2")), [1, 1]);
    assert.deepEqual(count(await bounds("SELECT 1 FROM clicks WHERE clicks._time = DATE '2026-01-01'")), [1, 1]);
    // DuckDB's parser writes NOT (a > b) as a <= b.
    assert.deepEqual(count(await bounds("SELECT 1 FROM clicks WHERE NOT (_time > now())")), [0, 1]);
    const b = await bounds("SELECT 1 FROM clicks WHERE _time >= '2026-01-01' AND _time < now()");
    assert.deepEqual(
      b.lower.map((x) => x.bare),
      [true],
    );
    assert.deepEqual(
      b.upper.map((x) => x.bare),
      [false],
    );
    assert.match(b.upper[0]!.sql, /now\(\)/);
  });

  it("yields none where leaving rows out could change the answer", async () => {
    for (const sql of [
      "SELECT 1 FROM clicks WHERE _time > now() OR data = 1",
      "SELECT 1 FROM clicks WHERE _time > random()::TIMESTAMPTZ",
      "SELECT 1 FROM clicks WHERE _time > (SELECT max(_time) FROM clicks)",
      "SELECT (SELECT count(*) FROM clicks) FROM clicks WHERE _time > now()",
      "SELECT 1 FROM clicks JOIN orders USING (user_id) WHERE clicks._time > now()",
      "SELECT 1 FROM clicks WHERE _time > now() UNION ALL SELECT 2 FROM clicks",
      "WITH x AS (SELECT 1) SELECT 1 FROM clicks, x WHERE _time > now()",
      "SELECT 1 FROM clicks WHERE _time > now() USING SAMPLE 10%",
      "SELECT 1 FROM clicks TABLESAMPLE 10% WHERE _time > now()",
      "SELECT 1 FROM clicks WHERE other._time > now()",
      "SELECT 1 FROM clicks c WHERE clicks._time > now()",
      "SELECT 1 FROM clicks WHERE _time > current_timestamp",
      "SELECT 1 FROM clicks WHERE _time > data::TIMESTAMPTZ",
      "SELECT 1 FROM (SELECT * FROM clicks) WHERE _time > now()",
      "SELECT 1 FROM orders WHERE _time > now()",
    ]) {
      assert.deepEqual(count(await bounds(sql)), [0, 0], sql);
    }
  });
});

describe("archive files for a user", () => {
  const file = (minUser: string, maxUser: string, minTime = 0, maxTime = 1000) => ({
    partition: 0,
    offsetStart: 0,
    offsetEnd: 1,
    path: `${minUser}-${maxUser}`,
    minUser,
    maxUser,
    minTime,
    maxTime,
  });

  it("keeps files whose user and time ranges can hold the rows", () => {
    const files = [file("a", "c"), file("d", "f"), file("a", "z", 5000, 6000)];
    assert.deepEqual(
      filesFor(files, { userId: "b" }).map((f) => f.path),
      ["a-c", "a-z"],
    );
    assert.deepEqual(
      filesFor(files, { userId: "e", fromUs: 2_000_000n }).map((f) => f.path),
      ["a-z"],
    );
    assert.deepEqual(
      filesFor(files, { userId: "b", toUs: 1_000_000n }).map((f) => f.path),
      ["a-c"],
    );
    // The manifest floors times to milliseconds: a bound inside the file's last millisecond keeps it.
    assert.deepEqual(
      filesFor([file("a", "c", 0, 1000)], { userId: "b", fromUs: 1_000_999n }).map((f) => f.path),
      ["a-c"],
    );
  });

  it("orders user ids as DuckDB does (UTF-8 bytes), not as JavaScript strings", () => {
    // U+FFFF sorts before U+10000 in UTF-8 but after its surrogates in UTF-16.
    const files = [file("\u{FFFF}", "\u{10000}")];
    assert.equal(filesFor(files, { userId: "\u{10000}" }).length, 1);
    assert.equal(filesFor(files, { userId: "\u{FFFF}" }).length, 1);
  });
});
