import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeTaskCheckpoint,
  encodeTaskCheckpoint,
  joinState,
  type TaskCheckpointHeader,
} from "../../src/runtime/task-checkpoint.js";

const header: TaskCheckpointHeader = {
  v: 2,
  partitions: [0],
  positions: [7],
  maxTimestamps: [null],
  watermark: null,
  outputEnds: [],
  lateEnds: [],
  timers: { eventTime: [], processingTime: [] },
  takenAt: 1,
};

const decoder = new TextDecoder();

describe("a task checkpoint's state given in parts", () => {
  // Multi-byte characters: a part's length in characters is not its length in bytes.
  const parts = ['{"k":"Zürich ', "東京 🚀", new TextEncoder().encode(" bytes é"), '"}'];
  const whole = '{"k":"Zürich 東京 🚀 bytes é"}';

  it("is written as the UTF-8 of its parts one after the other, and read back whole", () => {
    const cp = decodeTaskCheckpoint("t/0", encodeTaskCheckpoint(header, parts), []);
    assert.deepEqual(cp.header, header);
    assert.equal(decoder.decode(cp.state), whole);
    assert.deepEqual(JSON.parse(decoder.decode(cp.state)), { k: "Zürich 東京 🚀 bytes é" });
  });

  it("encodes to the same bytes as the state given whole", () => {
    const fromWhole = encodeTaskCheckpoint(header, new TextEncoder().encode(whole));
    assert.deepEqual(encodeTaskCheckpoint(header, parts), fromWhole);
    assert.deepEqual(joinState(parts), new TextEncoder().encode(whole));
  });
});
