import assert from "node:assert/strict";
import { test } from "node:test";
import { parseRunArgs, RunArgsError, selectBenchmarks } from "../../bench/lib/run-plan.js";

const entries = ["run.ts", "report.ts", "events.ts", "lib", "results", "README.md", "query.ts", "cep.ts", "ingest.ts"];

test("no arguments: every benchmark in bench/, sorted, not its modules, folders or docs", () => {
  const args = parseRunArgs([]);
  assert.deepEqual(args, { quick: false, named: [], skip: [] });
  assert.deepEqual(selectBenchmarks(args, "/b", entries), ["/b/cep.ts", "/b/ingest.ts", "/b/query.ts"]);
});

test("--quick runs every benchmark too (each in its quick mode)", () => {
  const args = parseRunArgs(["--quick"]);
  assert.equal(args.quick, true);
  assert.deepEqual(selectBenchmarks(args, "/b", entries), ["/b/cep.ts", "/b/ingest.ts", "/b/query.ts"]);
});

test("--skip leaves benchmarks out by file name, given with or without bench/", () => {
  const args = parseRunArgs(["--skip=bench/ingest.ts,cep.ts"]);
  assert.deepEqual(args.skip, ["ingest.ts", "cep.ts"]);
  assert.deepEqual(selectBenchmarks(args, "/b", entries), ["/b/query.ts"]);
});

test("files named run alone, in the order given", () => {
  const args = parseRunArgs(["bench/query.ts", "--quick", "bench/cep.ts"]);
  assert.deepEqual(args, { quick: true, named: ["bench/query.ts", "bench/cep.ts"], skip: [] });
  assert.deepEqual(selectBenchmarks(args, "/b", entries), ["bench/query.ts", "bench/cep.ts"]);
});

test("bad arguments are refused with a message naming them", () => {
  assert.throws(
    () => parseRunArgs(["--quik"]),
    (e: unknown) => e instanceof RunArgsError && /--quik/.test(e.message),
  );
  assert.throws(() => parseRunArgs(["cep"]), /not a benchmark file: cep/);
  assert.throws(() => parseRunArgs(["--skip="]), /--skip needs file names/);
  assert.throws(() => parseRunArgs(["--skip=cep.ts", "bench/query.ts"]), /full run/);
  assert.throws(
    () => selectBenchmarks(parseRunArgs(["--skip=ingets.ts"]), "/b", entries),
    /--skip=ingets\.ts: no such/,
  );
});
