/**
 * SIGKILL while a rollup added to a stream is built: the archiver settles it in a process of its
 * own that kills itself at a step (./rollup-add-kill-child.ts): part way through writing the
 * rollup files beside the archive files, before its hot table is built, before its declaration is
 * marked ready. A new process recovers on the same files and control database (a real
 * PostgreSQL), and the rollup then equals the same GROUP BY over the stream's rows in both tiers,
 * with one rollup file beside each archive file, before and after more rows arrive and move.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DuckDbAnalyticsStore } from "../../src/analytics/duckdb/store.js";
import { Archiver, type ArchiveStep } from "../../src/archive/archiver.js";
import { LocalDirLocation, ownerKey, rollupFile } from "../../src/archive/location.js";
import { freshControl } from "../helpers/fresh-control.js";
import { runKilledChild } from "../helpers/kill-child.js";
import { compareDaily, dailyRollup } from "./daily-rollup.js";
import { DAY, definition, events, NOW } from "./fixture.js";
import { scopedControl } from "./scoped-control.js";

const url = process.env.RUNNEL_TEST_DATABASE_URL;
const CHILD = new URL("./rollup-add-kill-child.ts", import.meta.url).pathname;

describe("SIGKILL while an added rollup is built", {
  skip: url === undefined && "RUNNEL_TEST_DATABASE_URL is not set",
}, () => {
  const fresh = freshControl(url!, "rollup_add");

  const cases: [ArchiveStep, number][] = [
    ["backfill", 3],
    ["build", 1],
    ["settle", 1],
  ];
  for (const [step, nth] of cases) {
    it(`at "${step}" (${nth}): the rollup is built once, and equals the raw GROUP BY`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "runnel-sigkill-rollup-add-"));
      const stream = `added_${randomBytes(4).toString("hex")}`;
      const def = definition(stream, 1);
      const open = async () => {
        const store = new DuckDbAnalyticsStore({
          path: join(dir, "analytics.duckdb"),
          archiveDir: join(dir, "archive"),
        });
        await store.open();
        const declared = await fresh.control.getStream(stream);
        if (declared !== undefined) await store.ensureTable(declared);
        return store;
      };
      const location = new LocalDirLocation(join(dir, "archive"));
      const archiverOf = (store: DuckDbAnalyticsStore) =>
        new Archiver({
          control: scopedControl(fresh.control, stream),
          analytics: store,
          location,
          now: () => NOW,
          maxRowsPerFile: 60,
        });
      try {
        await fresh.control.createStream(def);
        let store = await open();
        const all = events(1, 600)[0]!;
        await store.apply(stream, 0, all.slice(0, 480));
        // Rows in both tiers first: files of at most 60 rows, the rest hot.
        const first = archiverOf(store);
        await first.recover();
        await first.runOnce();
        const files = await fresh.control.listArchiveFiles(stream);
        assert.ok(files.length >= nth + 1, `${files.length} archive files`);
        const rollup = dailyRollup(stream);
        await fresh.control.updateStreamRollups(stream, () => [{ ...rollup, state: "building" }]);
        await store.close();

        assert.equal(
          await runKilledChild(CHILD, [dir, stream, step, String(nth)], { RUNNEL_TEST_DATABASE_URL: fresh.url }),
          "SIGKILL",
          "killed at the step",
        );

        store = await open();
        try {
          const archiver = archiverOf(store);
          await archiver.recover();
          assert.equal(archiver.stats.failures, 0);
          assert.equal((await fresh.control.getStream(stream))?.rollups?.[0]?.state, undefined, "ready");
          assert.deepEqual(await compareDaily(store, stream), [[0, 0, 480, 480]], "after the restart");
          const committed = (await fresh.control.listArchiveFiles(stream)).map((f) => f.path);
          const keys = (await location.list(stream)).sort();
          assert.deepEqual(
            keys.filter((k) => !committed.includes(ownerKey(k))),
            [],
            "no uncommitted file left",
          );
          assert.deepEqual(keys, committed.flatMap((p) => [p, rollupFile(p, rollup.name)]).sort());

          // Kept live from then on: more rows, moved by a later run with the rollup's files.
          await store.apply(stream, 0, all.slice(480));
          const later = new Archiver({
            control: scopedControl(fresh.control, stream),
            analytics: store,
            location,
            now: () => NOW + 2 * DAY,
            maxRowsPerFile: 60,
          });
          await later.runOnce();
          assert.equal(later.stats.failures, 0);
          assert.deepEqual(await compareDaily(store, stream), [[0, 0, 600, 600]], "after more rows moved");
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
