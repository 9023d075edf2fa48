/**
 * Which files compaction re-lays by user range (src/archive/relayout.ts) and how users are cut
 * into ranges (src/analytics/duckdb/user-ranges.ts); the archiver doing it is tested in
 * archiver.test.ts and sigkill.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type UserCount, userRanges } from "../../src/analytics/duckdb/user-ranges.js";
import { mondayOf, relayoutGroups, relayoutKey } from "../../src/archive/relayout.js";
import type { ArchiveFileRecord } from "../../src/control/types.js";

function file(partition: number, start: number, end: number, dir: string, part?: number): ArchiveFileRecord {
  const name = part === undefined ? `${start}-${end}.parquet` : `${start}-${end}.u${part}.parquet`;
  return {
    stream: "s",
    partition,
    offsetStart: start,
    offsetEnd: end,
    minTime: 0,
    maxTime: 0,
    minUser: "a",
    maxUser: "z",
    rows: end - start,
    bytes: 1,
    schemaVersion: 6,
    path: `s/${dir}/p${partition}/${name}`,
    ...(part !== undefined && part > 0 ? { userPart: part } : {}),
  };
}

describe("relayoutGroups", () => {
  // 2026-03-07 is a Saturday: days up to Friday the 6th are complete.
  const cutoff = Date.UTC(2026, 2, 7, 12);

  it("groups a partition's consecutive files of complete days by ISO week", () => {
    assert.equal(mondayOf("2026-03-01"), "2026-02-23", "a Sunday ends its week");
    assert.equal(mondayOf("2026-03-02"), "2026-03-02");
    const files = [
      file(0, 0, 10, "2026-02-28"),
      file(0, 10, 20, "2026-03-01"),
      file(0, 20, 30, "2026-03-02"),
      file(0, 30, 40, "2026-03-05"),
      file(0, 40, 50, "2026-03-07"),
      file(1, 0, 10, "2026-03-03"),
    ];
    const groups = relayoutGroups(files, cutoff);
    assert.deepEqual(
      groups.map((g) => [g.partition, g.week, g.offsetStart, g.offsetEnd, g.files.length]),
      [
        [0, "2026-02-23", 0, 20, 2],
        [0, "2026-03-02", 20, 40, 2],
      ],
      "the incomplete day stays; a lone file is not rewritten",
    );
    assert.equal(relayoutKey("s", groups[1]!), "s/w2026-03-02/p0/20-40.parquet");
  });

  it("takes a week's parts with its newly complete days, and leaves parts alone otherwise", () => {
    const parts = [file(0, 0, 30, "w2026-03-02", 0), file(0, 0, 30, "w2026-03-02", 1)];
    assert.deepEqual(relayoutGroups(parts, cutoff), []);
    const late = [...parts, file(0, 30, 35, "2026-03-06")];
    assert.deepEqual(
      relayoutGroups(late, cutoff).map((g) => [g.offsetStart, g.offsetEnd, g.files.map((f) => f.path)]),
      [[0, 35, late.map((f) => f.path)]],
    );
    // A gap in offsets (a file not yet compacted in between) splits a group.
    const gap = [file(0, 0, 10, "2026-03-02"), file(0, 20, 30, "2026-03-03"), file(0, 30, 40, "2026-03-04")];
    assert.deepEqual(
      relayoutGroups(gap, cutoff).map((g) => [g.offsetStart, g.offsetEnd]),
      [[20, 40]],
    );
  });
});

describe("userRanges", () => {
  const u = (userId: string | null, rows: number, t = 0): UserCount => ({ userId, rows, minTime: t, maxTime: t + 1 });

  it("cuts users in order into ranges of about equal rows, never splitting a user", () => {
    const ranges = userRanges([u("a", 30, 5), u("b", 30, 1), u("c", 30, 9), u("d", 30, 2)], 60);
    assert.deepEqual(
      ranges.map((r) => [r.minUser, r.maxUser, r.rows, r.minTime, r.maxTime]),
      [
        ["a", "b", 60, 1, 6],
        ["c", "d", 60, 2, 10],
      ],
    );
    // 130 rows make three ranges of at most 44, as near as whole users allow.
    assert.deepEqual(
      userRanges([u("a", 30), u("b", 30), u("c", 30), u("d", 30), u("e", 10)], 60).map((r) => r.rows),
      [30, 30, 30, 40],
    );
    // One user over the bound is one range of its own.
    assert.deepEqual(
      userRanges([u("a", 5), u("b", 500), u("c", 5)], 60).map((r) => [r.minUser, r.maxUser, r.rows]),
      [
        ["a", "a", 5],
        ["b", "b", 500],
        ["c", "c", 5],
      ],
    );
  });

  it("puts rows without a user in the last range, and makes none of them alone", () => {
    const ranges = userRanges([u("a", 40), u("b", 40), u(null, 3)], 50);
    assert.deepEqual(
      ranges.map((r) => [r.minUser, r.maxUser, r.withoutUser, r.rows]),
      [
        ["a", "a", false, 40],
        ["b", "b", true, 43],
      ],
    );
    assert.deepEqual(userRanges([u(null, 3)], 50), []);
  });
});
