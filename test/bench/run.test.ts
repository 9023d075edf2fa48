import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { test } from "node:test";

const ROOT = join(import.meta.dirname, "..", "..");

/** A benchmark that reports one comparison row through bench/report.ts, as real ones do. */
function fakeBench(measure: string, outputsEqual: boolean): string {
  return `import { ratio, writeResults } from ${JSON.stringify(join(ROOT, "bench", "report.ts"))};
await writeResults("fake-${measure}", { comparisons: [{ measure: ${JSON.stringify(measure)}, runnel: 2000, peer: 1000,
  peerName: "Peer 1.0", ratio: ratio(2000, 1000), unit: "events/s", outputsEqual: ${outputsEqual}, caveat: "one line" }] });
`;
}

test("npm run bench ends with one table of the rows every benchmark reported, and the machine", async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-run-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "a.mts"), fakeBench("alpha", true));
  await writeFile(join(dir, "b.mts"), fakeBench("beta", false));
  const r = spawnSync(process.execPath, ["--import", "tsx", "bench/run.ts", join(dir, "a.mts"), join(dir, "b.mts")], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, RUNNEL_BENCH_RESULTS_DIR: dir },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\| alpha +\| +2,000 \| +1,000 \| +2\.00 \| yes +\| events\/s \| Peer 1\.0 \|/);
  assert.match(r.stdout, /\| beta +\| +2,000 \| +1,000 \| +2\.00 \| NO +\|/);
  assert.match(r.stdout, /1\. alpha: one line/);
  assert.match(r.stdout, /machine: .*cores/);
  const written = JSON.parse(await readFile(join(dir, "fake-alpha.json"), "utf8")) as { comparisons: unknown[] };
  assert.equal(written.comparisons.length, 1);
});

test("a failing benchmark fails the run, and the rows of the others are still tabled", async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-run-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "a.mts"), fakeBench("alpha", true));
  await writeFile(join(dir, "bad.mts"), "process.exit(3);\n");
  const r = spawnSync(process.execPath, ["--import", "tsx", "bench/run.ts", join(dir, "bad.mts"), join(dir, "a.mts")], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, RUNNEL_BENCH_RESULTS_DIR: dir },
  });
  assert.equal(r.status, 1);
  assert.match(r.stdout, /\| alpha /);
  assert.match(r.stderr, /failed: .*bad\.mts \(exit 3\)/);
});
