/**
 * A query planned while another connection commits rows (the CI failure of
 * test/api/log-only-stream.test.ts, where 500 and 5000 read back as 244 and 136): the commit is
 * put between the statement's planning and its run through the connection seam, as a loaded
 * machine put it there.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { inSnapshot, type QueryLimits, runSelect } from "../../src/analytics/duckdb/query-runner.js";

const LIMITS: QueryLimits = { maxRows: 1000, maxBytes: 1 << 20, timeoutMs: 10_000 };

/** `reader`, whose every prepare returns only once `commit` has run on another connection. */
function committingAfterPrepare(reader: DuckDBConnection, commit: () => Promise<void>): DuckDBConnection {
  return new Proxy(reader, {
    get(target, prop) {
      if (prop === "prepare") {
        return async (sql: string) => {
          const prepared = await target.prepare(sql);
          await commit();
          return prepared;
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe("a query planned before another connection commits", () => {
  let instance: DuckDBInstance;
  let writer: DuckDBConnection;
  let reader: DuckDBConnection;
  before(async () => {
    instance = await DuckDBInstance.create(":memory:");
    writer = await instance.connect();
    reader = await instance.connect();
  });
  after(() => {
    reader.closeSync();
    writer.closeSync();
    instance.closeSync();
  });

  // `during`: the rows of the snapshot begun before the commit; `all`: those after it.
  const cases = [
    {
      name: "an ordered select",
      sql: "SELECT user_id, amount FROM t ORDER BY user_id",
      during: [["a", 1]],
      all: [
        ["a", 1],
        ["b", 500],
        ["c", 5000],
      ],
    },
    {
      name: "a filter",
      sql: "SELECT (SELECT count(*) FROM t) AS n, (SELECT count(*) FROM t WHERE amount > 100) AS big",
      during: [[1, 0]],
      all: [[3, 2]],
    },
  ];
  for (const { name, sql, during: before, all } of cases) {
    it(`${name} reads one snapshot whole, and the rows committed meanwhile exactly afterwards`, async () => {
      await writer.run("CREATE OR REPLACE TABLE t (user_id VARCHAR, amount BIGINT)");
      await writer.run("INSERT INTO t VALUES ('a', 1)");
      const racing = committingAfterPrepare(reader, async () => {
        await writer.run("INSERT INTO t VALUES ('b', 500), ('c', 5000)");
      });
      const during = await inSnapshot(reader, () => runSelect(racing, sql, [], LIMITS));
      // The snapshot began before the commit: the rows before it, as they were written.
      assert.deepEqual(during.rows, before);
      const afterwards = await inSnapshot(reader, () => runSelect(reader, sql, [], LIMITS));
      assert.deepEqual(afterwards.rows, all);
    });
  }

  it("ends its transaction when the work fails, so the connection takes the next query", async () => {
    await assert.rejects(
      inSnapshot(reader, () => runSelect(reader, "SELECT nope FROM t", [], LIMITS)),
      (e: Error & { code?: string }) => e.code === "invalid_query",
    );
    const next = await inSnapshot(reader, () => runSelect(reader, "SELECT 1 AS one", [], LIMITS));
    assert.deepEqual(next.rows, [[1]]);
  });
});
