/** The task driver: per-partition tasks, checkpoints through the store, fencing, timers, legacy import. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import type { DeadLetter } from "../../src/core/dead-letters.js";
import { partitionForKey } from "../../src/log/types.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import { type CheckpointStore, taskName } from "../../src/runtime/checkpoint/store.js";
import { TaskDriver, type TaskDriverOptions } from "../../src/runtime/driver.js";
import {
  ACCEPTED,
  LATE,
  type OperatorContext,
  type OperatorOutput,
  type ProcessOutcome,
  type SnapshotCapture,
  type TaskOperator,
} from "../../src/runtime/operator.js";
import { decodeTaskCheckpoint, encodeTaskCheckpoint } from "../../src/runtime/task-checkpoint.js";
import type { StreamEvent } from "../../src/stream/event.js";
import { FakeLog } from "../helpers/fake-log.js";

const PARTITIONS = 2;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A running sum per key; each event also arms an event-time timer 10 ms after it, whose firing
 * emits "timer" outputs. Events earlier than the watermark are late.
 */
class SumOperator implements TaskOperator {
  sums = new Map<string, number>();
  private ctx!: OperatorContext;
  private watermark = Number.NEGATIVE_INFINITY;

  open(ctx: OperatorContext): void {
    this.ctx = ctx;
  }

  processEvent(e: StreamEvent, out: OperatorOutput[]): ProcessOutcome {
    if (e.timestamp <= this.watermark) return LATE;
    const amount = e.value.amount;
    if (typeof amount !== "number") throw new Error(`no amount at ${e.offset}`);
    const sum = (this.sums.get(e.key) ?? 0) + amount;
    this.sums.set(e.key, sum);
    out.push({ id: `sum:${e.partition}:${e.offset}`, key: e.key, timestamp: e.timestamp, value: { sum } });
    this.ctx.timers.registerEventTimeTimer(e.key, e.timestamp + 10, "after");
    return ACCEPTED;
  }

  processWatermark(watermark: number): void {
    this.watermark = watermark;
  }

  onTimer(key: string, namespace: string, timestamp: number, _domain: string, out: OperatorOutput[]): void {
    out.push({ id: `timer:${key}:${timestamp}`, key, timestamp, value: { timer: namespace, sum: this.sums.get(key) } });
  }

  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify({ sums: [...this.sums], watermark: this.watermark }));
  }

  restore(base: Uint8Array): void {
    const s = JSON.parse(decoder.decode(base)) as { sums: [string, number][]; watermark: number | null };
    this.sums = new Map(s.sums);
    this.watermark = s.watermark ?? Number.NEGATIVE_INFINITY;
  }

  stats() {
    return { stateKeys: this.sums.size, openWindows: 0 };
  }
}

async function setup(): Promise<FakeLog> {
  const log = new FakeLog();
  await log.createStream("in", { partitions: PARTITIONS });
  await log.createStream("out", { partitions: PARTITIONS });
  await log.createStream("late", { partitions: PARTITIONS });
  return log;
}

/** One key per partition. */
function keysByPartition(): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < PARTITIONS; i++) {
    const k = `k${i}`;
    if (partitionForKey(k, PARTITIONS) === keys.length) keys.push(k);
  }
  return keys;
}

async function ingest(log: FakeLog, events: readonly { key: string; t: number; amount?: unknown }[]): Promise<void> {
  await log.append(
    "in",
    events.map((e) => ({ key: e.key, timestamp: e.t, value: encoder.encode(JSON.stringify({ amount: e.amount })) })),
  );
}

function driver(log: FakeLog, partition: number, extra: Partial<TaskDriverOptions> = {}): TaskDriver {
  return new TaskDriver({
    log,
    job: "sums",
    task: taskName("sums", partition),
    inputStream: "in",
    partitions: [partition],
    createOperator: () => new SumOperator(),
    outputStream: "out",
    lateStream: "late",
    startFrom: "earliest",
    watermarks: { outOfOrdernessMs: 0, idleTimeoutMs: 0 },
    checkpointIntervalMs: 0,
    checkpoints: new MemoryCheckpointStore(),
    owner: "test",
    group: "pipeline:sums",
    consumer: "pipeline/sums",
    clock: new ManualClock(0),
    retryDelayMs: 1,
    tickMs: 0,
    ...extra,
  });
}

function outputs(log: FakeLog): { partition: number; key: string; value: unknown }[] {
  return log.dump("out").map(({ partition, key, value }) => ({ partition, key, value }));
}

describe("TaskDriver", () => {
  it("runs one task per partition, each reading only its partition and writing keyed like its input", async () => {
    const log = await setup();
    const [a, b] = keysByPartition() as [string, string];
    const store = new MemoryCheckpointStore();
    const tasks = [driver(log, 0, { checkpoints: store }), driver(log, 1, { checkpoints: store })];
    for (const t of tasks) await t.start();
    await ingest(log, [
      { key: a, t: 1, amount: 1 },
      { key: b, t: 1, amount: 10 },
      { key: a, t: 2, amount: 2 },
    ]);
    for (const t of tasks) await t.idle();
    const sums = outputs(log).filter((o) => (o.value as { sum?: number }).sum !== undefined);
    assert.deepEqual(
      sums.filter((o) => !("timer" in (o.value as object))),
      [
        { partition: 0, key: a, value: { sum: 1 } },
        { partition: 0, key: a, value: { sum: 3 } },
        { partition: 1, key: b, value: { sum: 10 } },
      ].sort((x, y) => x.partition - y.partition),
    );
    assert.deepEqual(await store.list("sums/"), ["sums/0", "sums/1"]);
    assert.equal(tasks[0]?.stats().recordsIn, 2);
    assert.equal(tasks[1]?.stats().recordsIn, 1);
    assert.deepEqual(
      await log.committedOffsets("pipeline:sums", "in"),
      new Map([
        [0, 2],
        [1, 1],
      ]),
    );
    for (const t of tasks) await t.stop();
  });

  it("holds state, positions and output ends in one checkpoint and resumes from it", async () => {
    const log = await setup();
    const [a] = keysByPartition() as [string];
    const store = new MemoryCheckpointStore();
    const first = driver(log, 0, { checkpoints: store });
    await first.start();
    await ingest(log, [
      { key: a, t: 1, amount: 1 },
      { key: a, t: 2, amount: 2 },
    ]);
    await first.idle();
    await first.stop();
    const stored = await store.read("sums/0");
    assert.ok(stored);
    const cp = decodeTaskCheckpoint("sums/0", stored.base, stored.deltas);
    assert.deepEqual(cp.header.positions, [2]);
    assert.deepEqual(cp.header.partitions, [0]);
    assert.equal(cp.header.outputEnds[0], log.dump("out").filter((r) => r.partition === 0).length);
    assert.deepEqual(JSON.parse(decoder.decode(cp.state)).sums, [[a, 3]]);
    // The timer armed at t=2 (due at 12) is part of the checkpoint.
    assert.deepEqual(cp.header.timers.eventTime, [
      [11, a, "after"],
      [12, a, "after"],
    ]);

    const second = driver(log, 0, { checkpoints: store });
    await second.start();
    await ingest(log, [{ key: a, t: 30, amount: 4 }]);
    await second.idle();
    await second.stop();
    const values = outputs(log).map((o) => o.value);
    // Restored sum (3 + 4), and the restored timers fired when time passed them.
    assert.deepEqual(values, [
      { sum: 1 },
      { sum: 3 },
      { sum: 7 },
      { timer: "after", sum: 7 },
      { timer: "after", sum: 7 },
    ]);
  });

  it("after a crash whose checkpoints never landed, replays from the last one and writes each output once", async () => {
    const log = await setup();
    const [a] = keysByPartition() as [string];
    const store = new MemoryCheckpointStore();
    const first = driver(log, 0, { checkpoints: store });
    await first.start();
    await ingest(log, [{ key: a, t: 1, amount: 1 }]);
    await first.idle();
    await first.stop();
    // A process that writes outputs but dies before any of its checkpoints is stored.
    const lost: CheckpointStore = {
      claim: (t, o) => store.claim(t, o),
      read: (t) => store.read(t),
      write: async () => {},
      drop: (t, e) => store.drop(t, e),
      list: (p) => store.list(p),
      close: async () => {},
    };
    const crashing = driver(log, 0, { checkpoints: lost });
    await crashing.start();
    await ingest(log, [
      { key: a, t: 2, amount: 2 },
      { key: a, t: 3, amount: 3 },
    ]);
    await crashing.idle();
    await crashing.stop();
    const afterCrash = log.dump("out").length;
    const third = driver(log, 0, { checkpoints: store });
    await third.start();
    await third.idle();
    assert.equal(log.dump("out").length, afterCrash, "the replay wrote nothing again");
    await ingest(log, [{ key: a, t: 4, amount: 4 }]);
    await third.idle();
    await third.stop();
    const sums = outputs(log)
      .map((o) => o.value as { sum: number; timer?: string })
      .filter((v) => v.timer === undefined)
      .map((v) => v.sum);
    assert.deepEqual(sums, [1, 3, 6, 10]);
  });

  it("stops for good once another owner claims the task: its checkpoint is refused, the new owner's state stays", async () => {
    const log = await setup();
    const [a] = keysByPartition() as [string];
    const store = new MemoryCheckpointStore();
    const old = driver(log, 0, { checkpoints: store, owner: "a" });
    await old.start();
    await ingest(log, [{ key: a, t: 1, amount: 1 }]);
    await old.idle();
    const successor = driver(log, 0, { checkpoints: store, owner: "b" });
    await successor.start();
    const before = await store.read("sums/0");
    await ingest(log, [{ key: a, t: 2, amount: 2 }]);
    await old.idle();
    assert.equal(old.stats().fenced, true);
    assert.equal(old.stats().running, false);
    assert.match(old.stats().lastError ?? "", /fenced/);
    await successor.idle();
    const after = await store.read("sums/0");
    assert.ok(before && after);
    assert.equal(after.epoch, 2, "written by the successor only");
    assert.deepEqual(decodeTaskCheckpoint("sums/0", after.base, after.deltas).header.positions, [2]);
    // The fenced task reads nothing more.
    await ingest(log, [{ key: a, t: 3, amount: 3 }]);
    await old.poke();
    assert.equal(old.stats().recordsIn, 2);
    await old.stop();
    await successor.stop();
  });

  it("routes late events to the late stream and dead-letters records the operator throws on", async () => {
    const log = await setup();
    const [a] = keysByPartition() as [string];
    const letters: DeadLetter[] = [];
    const task = driver(log, 0, { deadLetters: { send: async (l) => void letters.push(...l) } });
    await task.start();
    await ingest(log, [
      { key: a, t: 100, amount: 1 },
      { key: a, t: 50, amount: 1 },
      { key: a, t: 101, amount: "x" },
    ]);
    await task.idle();
    await log.append("in", [{ key: a, timestamp: 102, value: encoder.encode("not json") }]);
    await task.idle();
    const stats = task.stats();
    assert.equal(stats.late, 1);
    assert.equal(stats.deadLetters, 2);
    assert.equal(stats.errors, 1, "the record that is not JSON fails like an expression");
    assert.deepEqual(
      letters.map((l) => l.record.offset),
      [2, 3],
    );
    assert.deepEqual(
      log.dump("late").map((r) => r.value),
      [{ amount: 1 }],
    );
    await task.stop();
  });

  it("imports a legacy checkpoint once and continues from it", async () => {
    const log = await setup();
    const [a] = keysByPartition() as [string];
    await ingest(log, [
      { key: a, t: 1, amount: 5 },
      { key: a, t: 2, amount: 6 },
    ]);
    const store = new MemoryCheckpointStore();
    let imports = 0;
    let released = 0;
    const read = async () => {
      imports++;
      const bytes = encodeTaskCheckpoint(
        {
          v: 2,
          partitions: [0],
          positions: [1],
          maxTimestamps: [1],
          watermark: 0,
          outputEnds: [0, 0],
          lateEnds: [0, 0],
          timers: { eventTime: [], processingTime: [] },
          takenAt: 0,
        },
        encoder.encode(JSON.stringify({ sums: [[a, 5]], watermark: 0 })),
      );
      return decodeTaskCheckpoint("sums/0", bytes, []);
    };
    const legacy = { read, imported: async () => void released++ };
    const first = driver(log, 0, { checkpoints: store, legacy });
    await first.start();
    await first.idle();
    await first.stop();
    assert.deepEqual(
      outputs(log).map((o) => o.value),
      [{ sum: 11 }],
    );
    const second = driver(log, 0, { checkpoints: store, legacy });
    await second.start();
    await second.stop();
    assert.equal(imports, 1);
    assert.equal(released, 1);
  });
});

/** Appends each event's amount to a list; checkpoints deltas (the amounts since the last snapshot). */
class DeltaOperator implements TaskOperator {
  amounts: number[] = [];
  private sinceSnapshot: number[] = [];
  restoredDeltas = 0;
  private ctx!: OperatorContext;

  open(ctx: OperatorContext): void {
    this.ctx = ctx;
  }

  processEvent(e: StreamEvent, out: OperatorOutput[]): ProcessOutcome {
    const amount = Number(e.value.amount);
    this.amounts.push(amount);
    this.sinceSnapshot.push(amount);
    out.push({ id: `list:${e.offset}`, key: e.key, timestamp: e.timestamp, value: { amounts: [...this.amounts] } });
    // Flushed by processing time, 1 s after the first event.
    this.ctx.timers.registerProcessingTimeTimer(e.key, 1_000, "flush");
    return ACCEPTED;
  }

  processWatermark(): void {}

  onTimer(key: string, namespace: string, timestamp: number, domain: string, out: OperatorOutput[]): void {
    out.push({ id: `flush:${key}:${timestamp}`, key, timestamp, value: { domain, namespace, n: this.amounts.length } });
  }

  snapshot(): Uint8Array {
    this.sinceSnapshot = [];
    return encoder.encode(JSON.stringify(this.amounts));
  }

  snapshotDelta(): Uint8Array {
    const delta = encoder.encode(JSON.stringify(this.sinceSnapshot));
    this.sinceSnapshot = [];
    return delta;
  }

  restore(base: Uint8Array, deltas: readonly Uint8Array[]): void {
    this.amounts = JSON.parse(decoder.decode(base)) as number[];
    for (const d of deltas) this.amounts.push(...(JSON.parse(decoder.decode(d)) as number[]));
    this.restoredDeltas = deltas.length;
  }

  stats() {
    return { stateKeys: 1, openWindows: 0 };
  }
}

describe("TaskDriver with an incremental operator and processing-time timers", () => {
  it("writes deltas after a base, restores base + deltas, and fires processing-time timers by the task's clock", async () => {
    const log = await setup();
    const [a] = keysByPartition() as [string];
    const store = new MemoryCheckpointStore();
    const clock = new ManualClock(0);
    const operators: DeltaOperator[] = [];
    const make = () =>
      driver(log, 0, {
        checkpoints: store,
        clock,
        createOperator: () => {
          const op = new DeltaOperator();
          operators.push(op);
          return op;
        },
      });
    const first = make();
    await first.start(); // the starting point: a base
    for (const amount of [1, 2, 3]) {
      await ingest(log, [{ key: a, t: amount, amount }]);
      await first.idle();
    }
    const stored = await store.read("sums/0");
    assert.ok(stored);
    assert.equal(stored.deltas.length, 3, "one delta per round after the base");
    assert.equal(
      log.dump("out").some((r) => (r.value as { domain?: string }).domain !== undefined),
      false,
      "the processing-time timer is not due yet",
    );
    clock.set(1_000);
    await first.poke();
    assert.deepEqual(log.dump("out").at(-1)?.value, { domain: "processing", namespace: "flush", n: 3 });
    await first.stop();

    const second = make();
    await second.start();
    assert.deepEqual(operators.at(-1)?.amounts, [1, 2, 3]);
    assert.ok((operators.at(-1)?.restoredDeltas ?? 0) > 0, "restored through deltas");
    await second.stop();
  });
});

/**
 * Keeps a list of amounts; its snapshots are captured a slice at a time (beginSnapshot): the list
 * as it was at the beginning (or what was added since the previous capture, for a delta), complete
 * only once `held` is false and it was stepped at least twice.
 */
class SlicedOperator extends DeltaOperator {
  held = false;
  captures = 0;
  private sinceCapture: number[] = [];

  override processEvent(e: StreamEvent, out: OperatorOutput[]): ProcessOutcome {
    this.sinceCapture.push(Number(e.value.amount));
    return super.processEvent(e, out);
  }

  beginSnapshot(delta: boolean): SnapshotCapture {
    const taken = delta ? this.sinceCapture : [...this.amounts];
    this.sinceCapture = [];
    this.captures++;
    let steps = 0;
    return {
      step: () => ++steps >= 2 && !this.held,
      bytes: () => encoder.encode(JSON.stringify(taken)),
    };
  }
}

describe("TaskDriver with an operator captured a slice at a time", () => {
  it("writes the state and position of the capture's beginning while the task goes on; a failed write makes the next a base", async () => {
    const log = await setup();
    const [a] = keysByPartition() as [string];
    const store = new MemoryCheckpointStore();
    const writes: string[] = [];
    let failNext = false;
    const checkpoints: CheckpointStore = Object.assign(Object.create(store) as MemoryCheckpointStore, {
      write: (task: string, epoch: number, kind: "base" | "delta", data: Uint8Array) => {
        if (failNext) {
          failNext = false;
          return Promise.reject(new Error("the store is away"));
        }
        writes.push(kind);
        return store.write(task, epoch, kind, data);
      },
    });
    const operators: SlicedOperator[] = [];
    const make = () =>
      driver(log, 0, {
        checkpoints,
        createOperator: () => {
          const op = new SlicedOperator();
          operators.push(op);
          return op;
        },
      });
    const task = make();
    await task.start();
    const op = operators.at(-1) as SlicedOperator;
    await ingest(log, [{ key: a, t: 1, amount: 1 }]);
    await task.idle();
    assert.deepEqual(writes, ["base", "delta"], "the starting point, then a capture of what changed");

    // A capture begins after the next round and is held while two more events are processed.
    op.held = true;
    await ingest(log, [{ key: a, t: 2, amount: 2 }]);
    for (let i = 0; i < 100 && op.captures < 2; i++) await new Promise((r) => setTimeout(r, 1));
    await ingest(log, [{ key: a, t: 3, amount: 3 }]);
    await ingest(log, [{ key: a, t: 4, amount: 4 }]);
    for (let i = 0; i < 100 && task.stats().recordsIn < 4; i++) await new Promise((r) => setTimeout(r, 1));
    assert.equal(task.stats().recordsIn, 4, "the task went on during the capture");
    assert.equal(writes.length, 2, "nothing written while the capture is unfinished");
    assert.equal(op.captures, 2, "and no other capture begun");
    op.held = false;
    await task.idle();
    const held = (await store.read("sums/0"))!;
    const first = decodeTaskCheckpoint("sums/0", held.base, held.deltas.slice(0, 2));
    assert.deepEqual(first.header.positions, [2], "the position when the capture began");
    assert.deepEqual(JSON.parse(decoder.decode(first.deltas[1])), [2], "and the state then");
    const all = decodeTaskCheckpoint("sums/0", held.base, held.deltas);
    assert.deepEqual(all.header.positions, [4], "the rounds during the capture were checkpointed after it");

    failNext = true;
    writes.length = 0;
    await ingest(log, [{ key: a, t: 5, amount: 5 }]);
    await task.idle();
    assert.match(task.stats().lastError ?? "", /the store is away/);
    assert.deepEqual(writes, ["base"], "after the failed one, a base: a delta would miss what it held");
    await ingest(log, [{ key: a, t: 6, amount: 6 }]);
    await task.idle();
    await task.stop();

    const again = make();
    await again.start();
    assert.deepEqual(operators.at(-1)?.amounts, [1, 2, 3, 4, 5, 6]);
    await again.stop();
  });
});
