/**
 * Upgrading: a windowed pipeline checkpointed by the runtime before the task model (a JSON record of
 * the internal stream `__checkpoints_<name>`), or by its one task over every partition (`<name>/*`
 * in the store), continues from that checkpoint once, in its tasks per partition.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import { encodeTaskCheckpoint } from "../../src/runtime/task-checkpoint.js";
import { legacyCheckpointStream } from "../../src/stream/checkpoint.js";
import type { StreamEvent } from "../../src/stream/event.js";
import { compilePipeline } from "../../src/stream/sql/index.js";
import { encodeSnapshot } from "../../src/stream/task-operators.js";
import { WindowOperator, type WindowOutput } from "../../src/stream/window/operator.js";
import { flush, ingest, PARTITIONS, partitionOf, rows, windowLog, windowRunner } from "./window-harness.js";

const MIN = 60_000;
const T0 = Date.UTC(2024, 0, 1);
const PER_MINUTE = `SELECT user_id, count(*) AS n FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`;
const encoder = new TextEncoder();
/** Grouped by user_id, the job's tasks read their partitions directly. */
const TASKS = ["out/0", "out/1", "out/2"];
/** Grouped by another field: a task per partition copying into the exchange, one per partition of it. */
const EXCHANGE_TASKS = [...TASKS, "out/exchange/0", "out/exchange/1", "out/exchange/2"];
const PER_MERCHANT = `SELECT merchant, count(*) AS n FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`;

it("imports a pipeline's log-stream checkpoint once, then drops the stream", async () => {
  const log = await windowLog();
  await ingest(log, [
    { user_id: "A", t: T0 + 1_000 },
    { user_id: "A", t: T0 + 2_000 },
  ]);
  // The old runtime's checkpoint after those two records, but with a state of 10 events for A: only
  // a restore of this state (not a replay of the log) can make A's count 11 below.
  const compiled = compilePipeline(PER_MINUTE, (n) => log.hasStream(n));
  if (compiled.kind !== "window") throw new Error("expected a windowed pipeline");
  const old = new WindowOperator(compiled.plan, { pipeline: "out", allowedLatenessMs: 0 });
  const out: WindowOutput[] = [];
  for (let i = 0; i < 10; i++) {
    const e: StreamEvent = {
      value: { user_id: "A" },
      key: "A",
      timestamp: T0 + 1_000 + i,
      ingestTime: T0,
      partition: 0,
      offset: i,
    };
    old.process(e, out);
  }
  const ends = await log.endOffsets("transactions");
  await log.createStream(legacyCheckpointStream("out"), { partitions: 1 });
  const legacy = {
    version: 1,
    positions: ends,
    maxTimestamps: ends.map(() => T0 + 2_000),
    watermark: null,
    outputEnds: [0, 0, 0],
    lateEnds: [0, 0, 0],
    state: old.snapshot(),
    takenAt: T0,
  };
  await log.append(legacyCheckpointStream("out"), [
    { key: "out", timestamp: T0, value: encoder.encode(JSON.stringify(legacy)) },
  ]);

  const checkpoints = new MemoryCheckpointStore();
  const first = windowRunner(log, PER_MINUTE, {}, { checkpoints });
  await first.start();
  assert.equal(log.hasStream(legacyCheckpointStream("out")), false, "the old checkpoint stream is dropped");
  // Imported into the job's tasks: one per input partition copying into the exchange, one per partition of it.
  assert.deepEqual((await checkpoints.list("out/")).sort(), TASKS);
  await ingest(log, [{ user_id: "A", t: T0 + 3_000 }]);
  await ingest(log, flush(T0 + MIN));
  await first.idle();
  await first.stop();
  assert.deepEqual(
    rows(log).map((r) => [r.user_id, r.n]),
    [["A", 11]],
  );

  // A restart continues from the store; nothing is imported or written again.
  const second = windowRunner(log, PER_MINUTE, {}, { checkpoints });
  await second.start();
  await second.idle();
  await second.stop();
  assert.equal(rows(log).length, 1);
});

for (const [group, sql, tasks] of [
  ["user_id", PER_MINUTE, TASKS],
  ["merchant", PER_MERCHANT, EXCHANGE_TASKS],
] as const)
  it(`splits the one task's checkpoint over every partition (\`out/*\`) into the tasks per partition, once (grouped by ${group})`, async () => {
    const log = await windowLog();
    const users = ["A", "B", "C", "D", "E", "F"];
    assert.equal(new Set(users.map(partitionOf)).size, PARTITIONS, "the users sit in every partition");
    // Each user pays one merchant of their own, whose key the exchange places anywhere.
    const merchant = (user: string) => `m-${user}`;
    assert.ok(new Set(users.map((u) => partitionOf(merchant(u)))).size > 1, "the merchants sit in several partitions");
    const keyOf = (user: string) => (group === "user_id" ? user : merchant(user));
    await ingest(
      log,
      users.map((user_id) => ({ user_id, merchant: merchant(user_id), t: T0 + 1_000 })),
    );
    // The one task's checkpoint after those records, with a state of 10 events per user: only a
    // restore of each user's state in the task that now owns it can make every count 11 below.
    const compiled = compilePipeline(sql, (n) => log.hasStream(n));
    if (compiled.kind !== "window") throw new Error("expected a windowed pipeline");
    const old = new WindowOperator(compiled.plan, { pipeline: "out", allowedLatenessMs: 0 });
    const out: WindowOutput[] = [];
    for (const user_id of users) {
      for (let i = 0; i < 10; i++) {
        const e: StreamEvent = {
          value: { user_id, merchant: merchant(user_id) },
          key: user_id,
          timestamp: T0 + i,
          ingestTime: T0,
          partition: 0,
          offset: i,
        };
        old.process(e, out);
      }
    }
    const ends = await log.endOffsets("transactions");
    const checkpoints = new MemoryCheckpointStore();
    const { epoch } = await checkpoints.claim("out/*", "old");
    await checkpoints.write(
      "out/*",
      epoch,
      "base",
      encodeTaskCheckpoint(
        {
          v: 2,
          partitions: [0, 1, 2],
          positions: ends,
          maxTimestamps: ends.map(() => T0 + 1_000),
          watermark: null,
          outputEnds: [0, 0, 0],
          lateEnds: [0, 0, 0],
          timers: { eventTime: [], processingTime: [] },
          takenAt: T0,
        },
        encodeSnapshot(old.snapshot()),
      ),
    );

    const first = windowRunner(log, sql, {}, { checkpoints });
    await first.start();
    for (const task of tasks) assert.ok((await checkpoints.read(task)) !== undefined, `${task} has a checkpoint`);
    assert.equal(await checkpoints.read("out/*"), undefined, "out/* is gone once every task has its own");
    await ingest(
      log,
      users.map((user_id) => ({ user_id, merchant: merchant(user_id), t: T0 + 3_000 })),
    );
    await ingest(log, flush(T0 + MIN));
    await first.idle();
    await first.stop();
    const counts = () =>
      rows(log)
        .map((r) => `${r[group]}=${r.n}`)
        .sort();
    assert.deepEqual(
      counts(),
      users.map((u) => `${keyOf(u)}=11`),
    );

    // A restart continues from the tasks' own checkpoints; nothing is imported or written again.
    const second = windowRunner(log, sql, {}, { checkpoints });
    await second.start();
    await second.idle();
    await second.stop();
    assert.deepEqual(
      counts(),
      users.map((u) => `${keyOf(u)}=11`),
    );
  });
