/**
 * The task driver under a lease (validUntil) and revocation (issue 19): an instance paused past
 * its session must write nothing until its ownership is confirmed again, and a task whose
 * partition moved stops at once, leaving the next owner to continue exactly once.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import { type CheckpointStore, taskName } from "../../src/runtime/checkpoint/store.js";
import { TaskDriver } from "../../src/runtime/driver.js";
import { ACCEPTED, type OperatorOutput, type ProcessOutcome, type TaskOperator } from "../../src/runtime/operator.js";
import { decodeTaskCheckpoint } from "../../src/runtime/task-checkpoint.js";
import type { StreamEvent } from "../../src/stream/event.js";
import { FakeLog } from "../helpers/fake-log.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const TASK = taskName("counts", 0);

/** A running count per key: each output carries the count, so a replay that double-counts shows. */
class CountOperator implements TaskOperator {
  private counts = new Map<string, number>();

  processEvent(e: StreamEvent, out: OperatorOutput[]): ProcessOutcome {
    const n = (this.counts.get(e.key) ?? 0) + 1;
    this.counts.set(e.key, n);
    out.push({ id: `c:${e.partition}:${e.offset}`, key: e.key, timestamp: e.timestamp, value: { n } });
    return ACCEPTED;
  }

  processWatermark(): void {}

  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify([...this.counts]));
  }

  restore(base: Uint8Array): void {
    this.counts = new Map(JSON.parse(decoder.decode(base)) as [string, number][]);
  }

  stats() {
    return { stateKeys: this.counts.size, openWindows: 0 };
  }
}

async function setup(): Promise<FakeLog> {
  const log = new FakeLog();
  await log.createStream("in", { partitions: 1 });
  await log.createStream("out", { partitions: 1 });
  return log;
}

function driver(log: FakeLog, checkpoints: CheckpointStore, validUntil?: () => number): TaskDriver {
  return new TaskDriver({
    log,
    job: "counts",
    task: TASK,
    inputStream: "in",
    partitions: [0],
    createOperator: () => new CountOperator(),
    outputStream: "out",
    startFrom: "earliest",
    watermarks: { outOfOrdernessMs: 0, idleTimeoutMs: 0 },
    checkpointIntervalMs: 0,
    checkpoints,
    owner: "test",
    group: "pipeline:counts",
    consumer: "pipeline/counts",
    retryDelayMs: 1,
    tickMs: 0,
    ...(validUntil !== undefined && { validUntil }),
  });
}

async function ingest(log: FakeLog, n: number): Promise<void> {
  await log.append(
    "in",
    Array.from({ length: n }, (_, i) => ({ key: "k", timestamp: i, value: encoder.encode("{}") })),
  );
}

function counts(log: FakeLog): unknown[] {
  return log.dump("out").map((r) => (r.value as { n: number }).n);
}

async function position(store: CheckpointStore): Promise<number | undefined> {
  const stored = await store.read(TASK);
  if (stored === undefined) return undefined;
  return decodeTaskCheckpoint(TASK, stored.base, stored.deltas).header.positions[0];
}

it("past validUntil a task appends and checkpoints nothing, then goes on once valid again", async () => {
  const log = await setup();
  const store = new MemoryCheckpointStore();
  let validUntil = Number.POSITIVE_INFINITY;
  const d = driver(log, store, () => validUntil);
  await d.start();
  await ingest(log, 3);
  await d.idle();
  assert.deepEqual(counts(log), [1, 2, 3]);
  assert.equal(await position(store), 3);

  validUntil = Date.now() - 1;
  await ingest(log, 2);
  await sleep(300);
  assert.deepEqual(counts(log), [1, 2, 3], "no output while the lease has run out");
  assert.equal(await position(store), 3, "no checkpoint while the lease has run out");
  assert.equal(d.stats().failures, 0, "waiting is not failing");

  validUntil = Date.now() + 60_000;
  await sleep(150);
  await d.idle();
  assert.deepEqual(counts(log), [1, 2, 3, 4, 5]);
  assert.equal(await position(store), 5);
  await d.stop();
});

it("a task stopped while its lease has run out stops at once and writes nothing", async () => {
  const log = await setup();
  const store = new MemoryCheckpointStore();
  let validUntil = Number.POSITIVE_INFINITY;
  const d = driver(log, store, () => validUntil);
  await d.start();
  validUntil = 0;
  await ingest(log, 2);
  await sleep(100);
  const started = Date.now();
  await d.stop();
  assert.ok(Date.now() - started < 40, "stop does not wait for the lease");
  assert.deepEqual(counts(log), []);
  assert.equal(await position(store), 0);
});

it("a revoked task writes nothing more, and the next owner continues exactly once", async () => {
  const log = await setup();
  const store = new MemoryCheckpointStore();
  let validUntil = Number.POSITIVE_INFINITY;
  const a = driver(log, store, () => validUntil);
  await a.start();
  assert.equal(a.info().restored, true);
  await ingest(log, 2);
  await a.idle();
  // A round in flight holds the outputs of two more events, waiting for the lease: revoked, it drops them.
  validUntil = 0;
  await ingest(log, 2);
  await sleep(100);
  await a.revoke();
  assert.deepEqual(counts(log), [1, 2]);
  assert.equal(await position(store), 2);

  const b = driver(log, store);
  await b.start();
  await ingest(log, 1);
  await b.idle();
  assert.deepEqual(counts(log), [1, 2, 3, 4, 5], "each event counted once, in order");
  assert.deepEqual(b.info(), { task: TASK, partition: 0, lag: 0, restored: true });
  assert.equal(a.stats().failures, 0);
  await b.stop();
});
