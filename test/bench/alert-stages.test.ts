/** bench/lib/alert-stages.ts: a probe's points joined on its last event, each stage over the probes that have both points. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { alertStages, gcEffect } from "../../bench/lib/alert-stages.js";
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
    gcs: [],
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

test("counts the measured window's collections by kind, and the pauses inside the slowest probes", () => {
  const trace: AlertTrace = {
    commits: [],
    reads: [],
    outputs: [],
    sinks: [],
    pushes: [],
    queries: {},
    gcs: [
      { t: 50, ms: 30, kind: "major" }, // before the window: not counted
      { t: 1005, ms: 6, kind: "minor" }, // inside probe a (1000 → 1020)
      { t: 1018, ms: 4, kind: "minor" }, // half inside probe a
      { t: 2000, ms: 12, kind: "major" }, // inside no probe
    ],
  };
  const probes = [
    { key: "a", ack: 1000, arrived: 1020 },
    { key: "b", ack: 1500, arrived: 1503 },
    { key: "c", ack: 1600, arrived: 1610 },
    { key: "d", ack: 1700, arrived: 1701 },
    { key: "e", ack: 1800, arrived: undefined },
  ];
  const effect = gcEffect(trace, probes, 1000, 3000);
  assert.deepEqual(effect.collections, [
    { kind: "minor", count: 2, meanMs: 5, maxMs: 6 },
    { kind: "major", count: 1, meanMs: 12, maxMs: 12 },
  ]);
  // At least three probes, slowest first; one that never arrived has no interval to pause.
  assert.deepEqual(effect.slowest, [
    { latency: 20, paused: 8 },
    { latency: 10, paused: 0 },
    { latency: 3, paused: 0 },
  ]);
});
