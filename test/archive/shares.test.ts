/**
 * A query over a share of the partitions (PartitionShare), in both tiers: the shares of a slot
 * count, each answered on its own, hold every row of the whole exactly once, hot or archived, for
 * every scope; a share reads no row of another share's partitions.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PartitionShare, QueryScope } from "../../src/analytics/types.js";
import { isRunnelError } from "../../src/core/errors.js";
import { archiveFixture, definition, events, loadStream } from "./fixture.js";

const ALL: QueryScope = { kind: "all" };
const ROWS = "SELECT _partition, _offset, user_id, data, region FROM clicks";
const SORT = (a: unknown[], b: unknown[]) => JSON.stringify(a).localeCompare(JSON.stringify(b));

describe("a query over a share of the partitions", () => {
  it("the shares of a slot count hold every row once, in both tiers and every scope", async () => {
    const f = await archiveFixture();
    try {
      // Five partitions over three slots: partition 3 is slot 0's, 4 is slot 1's.
      await loadStream(f, definition("clicks", 5), events(5, 120));
      const archiver = f.archiver({ maxRowsPerFile: 50 });
      await archiver.recover();
      await archiver.runOnce();
      const archived = (await f.control.listArchiveFiles("clicks")).reduce((n, r) => n + r.rows, 0);
      assert.ok(archived > 0 && archived < 600, `${archived} of 600 rows archived: both tiers hold rows`);
      const scopes: QueryScope[] = [ALL, { kind: "user", userId: "bob" }];
      for (const scope of scopes) {
        const whole = (await f.store.query(ROWS, [], scope)).rows;
        for (const split of [[[0], [1], [2]], [[0, 2], [1]], [[0, 1, 2]]]) {
          const parts: unknown[][] = [];
          for (const owned of split) {
            const share: PartitionShare = { slots: 3, owned };
            const rows = (await f.store.query(ROWS, [], scope, share)).rows;
            for (const row of rows) assert.ok(owned.includes(Number(row[0]) % 3), `row ${row} outside ${owned}`);
            parts.push(...rows);
          }
          assert.deepEqual(parts.sort(SORT), [...whole].sort(SORT), `${JSON.stringify(scope)} split ${split}`);
        }
      }
      // A share owning nothing answers nothing; an aggregate of a share is the aggregate of its partitions.
      const none = await f.store.query("SELECT count(*) FROM clicks", [], ALL, { slots: 3, owned: [] });
      assert.deepEqual(none.rows, [[0]]);
      const ofSlot1 = await f.store.query("SELECT count(*) FROM clicks", [], ALL, { slots: 3, owned: [1] });
      const expected = await f.store.query("SELECT count(*) FROM clicks WHERE _partition IN (1, 4)", [], ALL);
      assert.deepEqual(ofSlot1.rows, expected.rows);
      // The view a share made does not stay behind for a later query over everything.
      assert.deepEqual((await f.store.query("SELECT count(*) FROM clicks", [], ALL)).rows, [[600]]);
    } finally {
      await f.close();
    }
  });

  it("refuses a share naming a slot outside its slot count", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 2), events(2, 10));
      await assert.rejects(
        f.store.query("SELECT count(*) FROM clicks", [], ALL, { slots: 2, owned: [2] }),
        (e) => isRunnelError(e) && e.code === "invalid_input" && /share\.owned/.test(e.message),
      );
    } finally {
      await f.close();
    }
  });
});
