import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type Comparison, machine, ratio, resultsPath, TABLE_ENV, writeResults } from "../../bench/report.js";

const row: Comparison = {
  measure: "m",
  runnel: 3,
  peer: 2,
  peerName: "p",
  ratio: ratio(3, 2),
  unit: "events/s",
  outputsEqual: true,
  caveat: "c",
};

test("writeResults writes machine, comparisons and details under RUNNEL_BENCH_RESULTS_DIR and hands rows to the table", async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-report-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const saved = { results: process.env.RUNNEL_BENCH_RESULTS_DIR, table: process.env[TABLE_ENV] };
  t.after(() => {
    for (const [k, v] of [
      ["RUNNEL_BENCH_RESULTS_DIR", saved.results],
      [TABLE_ENV, saved.table],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  process.env.RUNNEL_BENCH_RESULTS_DIR = dir;
  process.env[TABLE_ENV] = join(dir, "table.ndjson");
  assert.equal(resultsPath("x"), join(dir, "x.json"));
  await writeResults("x", { comparisons: [row], events: 5 });
  await writeResults("y", { comparisons: [{ ...row, measure: "n" }] });
  const written = JSON.parse(await readFile(join(dir, "x.json"), "utf8")) as Record<string, unknown>;
  assert.deepEqual(written.comparisons, [row]);
  assert.equal(written.events, 5);
  assert.equal((written.machine as { cores: number }).cores, os.cpus().length);
  const lines = (await readFile(join(dir, "table.ndjson"), "utf8")).trim().split("\n");
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as Comparison).measure),
    ["m", "n"],
  );
});

test("ratio is runnel over peer, null without a peer", () => {
  assert.equal(ratio(3, 2), 1.5);
  assert.equal(ratio(3, null), null);
  assert.equal(machine().node, process.version);
});
