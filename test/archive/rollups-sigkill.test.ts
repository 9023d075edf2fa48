/**
 * SIGKILL at each step of the archive for a stream with rollups: the archiver runs in a process
 * of its own that kills itself there (./kill-child.ts); a new one recovers on the same files and
 * control database (a real PostgreSQL), and every rollup still equals the same GROUP BY over the
 * stream's rows, before and after the next run.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DuckDbAnalyticsStore } from "../../src/analytics/duckdb/store.js";
import { Archiver, type ArchiveStep } from "../../src/archive/archiver.js";
import { LocalDirLocation, ownerKey } from "../../src/archive/location.js";
import type { StreamDefinition } from "../../src/control/types.js";
import { freshControl } from "../helpers/fresh-control.js";
import { runKilledChild } from "../helpers/kill-child.js";
import { compareDaily, dailyRollup } from "./daily-rollup.js";
import { definition, events, NOW } from "./fixture.js";
import { scopedControl } from "./scoped-control.js";

const url = process.env.RUNNEL_TEST_DATABASE_URL;
const CHILD = new URL("./kill-child.ts", import.meta.url).pathname;

function withRollups(stream: string): StreamDefinition {
  return { ...definition(stream, 1), rollups: [dailyRollup(stream)] };
}

describe("SIGKILL during archiving, with rollups", {
  skip: url === undefined && "RUNNEL_TEST_DATABASE_URL is not set",
}, () => {
  const fresh = freshControl(url!, "rollups_sigkill");

  const cases: [ArchiveStep, number][] = [
    ["write", 4],
    ["put", 4],
    ["commit", 4],
    ["publish", 4],
    ["delete", 4],
    ["merge", 1],
    ["replace", 1],
  ];
  for (const [step, nth] of cases) {
    it(`at "${step}": every rollup equals the raw GROUP BY after a restart`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "runnel-sigkill-rollups-"));
      const stream = `rolled_${randomBytes(4).toString("hex")}`;
      const open = async () => {
        const store = new DuckDbAnalyticsStore({
          path: join(dir, "analytics.duckdb"),
          archiveDir: join(dir, "archive"),
        });
        await store.open();
        await store.ensureTable(def);
        return store;
      };
      const def = withRollups(stream);
      try {
        await fresh.control.createStream(def);
        let store = await open();
        const [rows] = events(1, 480);
        await store.apply(stream, 0, rows!);
        const expected = [[0, 0, 480, 480]];
        assert.deepEqual(await compareDaily(store, stream), expected);
        await store.close();

        assert.equal(
          await runKilledChild(CHILD, [dir, stream, step, String(nth)], { RUNNEL_TEST_DATABASE_URL: fresh.url }),
          "SIGKILL",
          "the archiver was killed at the step",
        );

        store = await open();
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
          assert.deepEqual(await compareDaily(store, stream), expected, "after the restart");
          const committed = (await fresh.control.listArchiveFiles(stream)).map((f) => f.path);
          assert.ok(committed.length > 0, "the killed run had committed files");
          const keys = await location.list(stream);
          assert.deepEqual(
            keys.filter((k) => !committed.includes(ownerKey(k))),
            [],
            "no uncommitted file left",
          );
          assert.equal(keys.length, 2 * committed.length, "each committed file has its rollup's beside it");
          await archiver.runOnce();
          assert.deepEqual(await compareDaily(store, stream), expected, "after the next run");
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
