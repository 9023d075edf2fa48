import assert from "node:assert/strict";
import { test } from "node:test";
import { formatNumber, formatOutputsEqual, formatTable, recordedRows, type TableRow } from "../../bench/lib/table.js";

const row = (over: Partial<TableRow>): TableRow => ({
  measure: "log append",
  runnel: 2_686_760,
  peer: 698_324,
  peerName: "Kafka producer",
  ratio: 3.848,
  unit: "events/s",
  outputsEqual: true,
  caveat: "broker does not fsync",
  ...over,
});

test("numbers: grouped thousands from 100 up, two decimals below, a dash for none", () => {
  assert.equal(formatNumber(2_686_760.4), "2,686,760");
  assert.equal(formatNumber(100), "100");
  assert.equal(formatNumber(11.004), "11");
  assert.equal(formatNumber(9.756), "9.76");
  assert.equal(formatNumber(null), "-");
});

test("outputs equal: yes when compared and equal, NO when they differed, no check when nothing was compared", () => {
  assert.equal(formatOutputsEqual(true), "yes");
  assert.equal(formatOutputsEqual(false), "NO");
  assert.equal(formatOutputsEqual(null), "no check");
});

test("the table: one aligned row per comparison, recorded rows marked, caveats numbered under it", () => {
  const text = formatTable([
    row({}),
    row({
      measure: "alert p99",
      runnel: 9.7,
      peer: null,
      peerName: "none",
      ratio: null,
      unit: "ms",
      outputsEqual: null,
      caveat: "no peer",
    }),
    row({ measure: "ingest", outputsEqual: false, recorded: "recorded 2026-12-06 22:23, load 5.39", caveat: "c" }),
  ]);
  const lines = text.split("\n");
  assert.equal(
    lines[0],
    "| measure    |    Runnel |    peer | Runnel/peer | outputs equal | unit     | peer is        | measured                             |",
  );
  assert.match(lines[1]!, /^\|-+\|-+\|/);
  assert.equal(
    lines[2],
    "| log append | 2,686,760 | 698,324 |        3.85 | yes           | events/s | Kafka producer | this run                             |",
  );
  assert.equal(
    lines[3],
    "| alert p99  |       9.7 |       - |           - | no check      | ms       | none           | this run                             |",
  );
  assert.match(lines[4]!, /^\| ingest +\| .*\| NO +\| .*\| recorded 2026-12-06 22:23, load 5\.39 \|$/);
  assert.deepEqual(lines.slice(5), [
    "",
    "caveats:",
    "1. log append: broker does not fsync",
    "2. alert p99: no peer",
    "3. ingest: c",
  ]);
  assert.equal(new Set(lines.slice(0, 5).map((l) => l.length)).size, 1, "every row as wide as the header");
});

test("an empty run says so instead of printing an empty table", () => {
  assert.equal(formatTable([]), "(no comparisons reported)");
});

test("recorded rows carry the file's date and load; a file from before report.ts gives none", () => {
  const text = JSON.stringify({
    benchmark: "ingest",
    machine: { loadAverage1m: 5.39 },
    comparisons: [row({ measure: "ingest" })],
    measuredAt: "2026-12-06T22:23:14.198Z",
  });
  const rows = recordedRows(text);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.recorded, "recorded 2026-12-06 22:23, load 5.39");
  assert.equal(rows[0]!.measure, "ingest");
  assert.deepEqual(recordedRows(JSON.stringify({ benchmark: "bench/startup.ts", results: [] })), []);
});
