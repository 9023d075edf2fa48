/**
 * SIGKILL at each step of the archive (write, put, commit, publish, hot-tier delete, a
 * compaction's merge and replace, and a relayout by user range and its commit): the archiver runs in a process of its own that kills itself
 * there; a new one recovers on the same files and control database (a real PostgreSQL), and the
 * archive plus the hot tier hold every event exactly once.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DuckDbAnalyticsStore } from "../../src/analytics/duckdb/store.js";
import { Archiver, type ArchiveStep } from "../../src/archive/archiver.js";
import { LocalDirLocation } from "../../src/archive/location.js";
import { freshControl } from "../helpers/fresh-control.js";
import { runKilledChild } from "../helpers/kill-child.js";
import { definition, events, NOW } from "./fixture.js";
import { scopedControl } from "./scoped-control.js";

const url = process.env.RUNNEL_TEST_DATABASE_URL;
const ALL = { kind: "all" } as const;
const CHILD = new URL("./kill-child.ts", import.meta.url).pathname;

async function census(store: DuckDbAnalyticsStore, table: string): Promise<unknown[][]> {
  const r = await store.query(
    `SELECT count(*), count(DISTINCT (_partition, _offset)), sum(data), user_id FROM ${table} GROUP BY ALL ORDER BY ALL`,
    [],
    ALL,
  );
  return r.rows;
}

describe("SIGKILL during archiving", { skip: url === undefined && "RUNNEL_TEST_DATABASE_URL is not set" }, () => {
  const fresh = freshControl(url!, "archive_sigkill");

  const cases: [ArchiveStep, number][] = [
    ["write", 4],
    ["put", 4],
    ["commit", 4],
    ["publish", 4],
    ["delete", 4],
    ["merge", 1],
    ["replace", 1],
    ["relayout", 1],
    ["relayout-commit", 1],
  ];
  for (const [step, nth] of cases) {
    it(`at "${step}": every event once after a restart`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "runnel-sigkill-"));
      const stream = `killed_${randomBytes(4).toString("hex")}`;
      try {
        const def = definition(stream, 1);
        await fresh.control.createStream(def);
        let store = new DuckDbAnalyticsStore({
          path: join(dir, "analytics.duckdb"),
          archiveDir: join(dir, "archive"),
        });
        await store.open();
        await store.ensureTable(def);
        const [rows] = events(1, 480);
        await store.apply(stream, 0, rows!);
        const before = await census(store, stream);
        await store.close();

        assert.equal(
          await runKilledChild(CHILD, [dir, stream, step, String(nth)], { RUNNEL_TEST_DATABASE_URL: fresh.url }),
          "SIGKILL",
          "the archiver was killed at the step",
        );

        store = new DuckDbAnalyticsStore({ path: join(dir, "analytics.duckdb"), archiveDir: join(dir, "archive") });
        await store.open();
        try {
          const location = new LocalDirLocation(join(dir, "archive"));
          const archiver = new Archiver({
            control: scopedControl(fresh.control, stream),
            analytics: store,
            location,
            now: () => NOW,
            maxRowsPerFile: 60,
          });
          await archiver.recover();
          assert.deepEqual(await census(store, stream), before, "after the restart");
          const committed = (await fresh.control.listArchiveFiles(stream)).map((f) => f.path).sort();
          assert.ok(committed.length > 0, "the killed run had committed files");
          assert.deepEqual((await location.list(stream)).sort(), committed, "no uncommitted file left");
          await archiver.runOnce();
          assert.deepEqual(await census(store, stream), before, "after the next run");
        } finally {
          await store.close();
        }
      } finally {
        await fresh.control.deleteStream(stream);
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
