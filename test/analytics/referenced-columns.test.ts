/**
 * Which columns a query can read (src/analytics/sql/referenced-columns.ts): every name it refers
 * to columns by, or none at all (every column) when it can read a column without naming it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { copiedColumns } from "../../src/analytics/duckdb/store.js";
import { parseSelects } from "../../src/analytics/sql/parse.js";
import { referencedColumns } from "../../src/analytics/sql/referenced-columns.js";

async function named(sql: string): Promise<string[] | undefined> {
  const [statement] = await parseSelects(sql);
  const set = referencedColumns(statement!);
  return set === undefined ? undefined : [...set].sort();
}

describe("referenced columns", () => {
  it("collects every part of every column reference, wherever it is", async () => {
    assert.deepEqual(await named("SELECT sum(data) FROM clicks WHERE _time > now() - INTERVAL 1 DAY"), [
      "_time",
      "data",
    ]);
    assert.deepEqual(await named("SELECT count(*) FROM clicks"), []);
    assert.deepEqual(await named("SELECT c.kind, o.Total FROM clicks c JOIN orders o USING (user_id) ORDER BY 1"), [
      "c",
      "kind",
      "o",
      "total",
      "user_id",
    ]);
    assert.deepEqual(
      await named("SELECT list_transform(tags, x -> x || region) AS t FROM clicks GROUP BY ALL HAVING t IS NOT NULL"),
      ["region", "t", "tags", "x"],
    );
    assert.deepEqual(await named("SELECT (SELECT max(v) FROM orders WHERE orders.k = clicks.k) FROM clicks"), [
      "clicks",
      "k",
      "orders",
      "v",
    ]);
  });

  it("gives up where a column can be read without being named", async () => {
    for (const sql of [
      "SELECT * FROM clicks",
      "SELECT * EXCLUDE (data) FROM clicks",
      "SELECT c.* FROM clicks c",
      "SELECT COLUMNS('d.*') FROM clicks",
      "SELECT count(*) FROM (SELECT * FROM clicks)",
      "SELECT #2 FROM clicks",
      "SELECT clicks FROM clicks",
      "SELECT c FROM clicks c",
      "WITH w AS (SELECT user_id FROM clicks) SELECT w FROM w",
      "SELECT kind FROM clicks NATURAL JOIN orders",
      "SELECT a FROM clicks AS c(a, b)",
    ]) {
      assert.equal(await named(sql), undefined, sql);
    }
  });

  it("keeps at least one column, so counting rows still works", () => {
    const columns = [
      { name: "user_id", type: "VARCHAR" },
      { name: "_partition", type: "INTEGER" },
      { name: "Data", type: "DOUBLE" },
    ];
    assert.deepEqual(copiedColumns(columns, undefined), columns);
    assert.deepEqual(
      copiedColumns(columns, new Set(["data"])).map((c) => c.name),
      ["Data"],
    );
    assert.deepEqual(
      copiedColumns(columns, new Set()).map((c) => c.name),
      ["_partition"],
    );
  });
});
