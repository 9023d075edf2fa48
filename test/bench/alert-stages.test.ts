/** bench/lib/alert-stages.ts: a probe's points joined on its last event, each stage over the probes that have both points. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { alertStages } from "../../bench/lib/alert-stages.js";
import type { AlertTrace } from "../../bench/lib/alert-trace.js";

test("joins each probe's stages on its last event and takes the percentiles over the probes", () => {
  const trace: AlertTrace = {
    commits: [
      { t: 100, ends: [10, 0] },
      { t: 200, ends: [12, 5] },
    ],
    reads: [
      { t0: 101, t1: 103, partition: 0, offset: 5, n: 5 },
      { t0: 204, t1: 205, partition: 0, offset: 10, n: 2 },
      { t0: 210, t1: 218, partition: 1, offset: 0, n: 5 },
    ],
    outputs: [
      { t: 104, matches: [{ key: "probe0", partition: 0, offset: 9 }] },
      { t: 220, matches: [{ key: "probe1", partition: 1, offset: 4 }] },
    ],
    sinks: [{ t: 106, matches: [{ key: "probe0", partition: 0, offset: 9 }] }],
    pushes: [
      { t: 110, key: "probe0" },
      { t: 230, key: "probe1" },
    ],
    queries: {},
  };
  const stages = alertStages(trace, [
    { key: "probe0", ack: 102, arrived: 111 },
    { key: "probe1", ack: 201, arrived: undefined },
  ]);
  const by = new Map(stages.map((s) => [s.stage, s]));
  // probe0: commit 100 (first commit past offset 9 of partition 0), read 101–103, output 104, sink 106, pushed 110.
  // probe1: commit 200, read 210–218, output 220, no sink recorded, pushed 230, never arrived.
  // Of two samples the percentiles are the larger (the bench's nearest rank).
  assert.deepEqual(
    [...by.values()].map((s) => [s.stage, s.p50, s.p99, s.samples]),
    [
      ["commit → ack", 2, 2, 2],
      ["commit → read start", 10, 10, 2],
      ["read", 8, 8, 2],
      ["read end → output", 2, 2, 2],
      ["output → store call", 2, 2, 1],
      ["store call → pushed", 4, 4, 1],
      ["pushed → arrived", 1, 1, 1],
      ["ack → arrived", 9, 9, 1],
    ],
  );
});
