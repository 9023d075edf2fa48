/**
 * Windowed pipelines on several instances (issue 19): two runners in one process over one local
 * log, each owning half the slots, compute exactly the windows one runner computes alone, both
 * when the tasks read their partitions directly (sharing event time through the marker stream)
 * and behind the exchange; also when a slot moves from one runner to the other mid-stream. Event
 * time crosses instances through the log, so a window fires at the minimum watermark over every
 * partition, wherever each partition's task runs.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { SlotOwnership } from "../../src/cluster/ownership.js";
import { LocalEventLog } from "../../src/log/local/index.js";
import { partitionForKey } from "../../src/log/types.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import type { CheckpointStore } from "../../src/runtime/checkpoint/store.js";
import { parsePipelineOptions } from "../../src/stream/options.js";
import { compilePipeline } from "../../src/stream/sql/index.js";
import { WindowedPipelineRunner } from "../../src/stream/window-runner.js";
import { contentHash, readStream, settleAt } from "../helpers/cluster-run.js";
import { rng } from "../helpers/rng.js";

const PARTITIONS = 4;
const T0 = Date.UTC(2024, 0, 1);
const encoder = new TextEncoder();
const dirs: string[] = [];
const logs: LocalEventLog[] = [];

after(async () => {
  for (const log of logs) await log.close();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function openLog(): Promise<LocalEventLog> {
  const dir = await mkdtemp(join(tmpdir(), "runnel-owners-"));
  dirs.push(dir);
  const log = new LocalEventLog({ dir: join(dir, "log") });
  await log.open();
  logs.push(log);
  for (const s of ["tx", "out", "out_late"]) await log.createStream(s, { partitions: PARTITIONS });
  return log;
}

function runner(
  log: LocalEventLog,
  sql: string,
  checkpoints: CheckpointStore,
  ownership?: SlotOwnership,
): WindowedPipelineRunner {
  const compiled = compilePipeline(sql, (n) => log.hasStream(n));
  if (compiled.kind !== "window") throw new Error("expected a windowed pipeline");
  return new WindowedPipelineRunner({
    log,
    name: "out",
    inputStream: compiled.inputStream,
    plan: compiled.plan,
    outputStream: "out",
    lateStream: "out_late",
    startFrom: "earliest",
    options: parsePipelineOptions({ idleTimeout: 0, outOfOrderness: "0s", checkpointInterval: "100ms" }),
    checkpoints,
    chunkSize: 50,
    retryDelayMs: 10,
    tickMs: 20,
    ...(ownership !== undefined && { ownership }),
  });
}

interface Tx {
  readonly user_id: string;
  readonly device: string;
  readonly amount: number;
  readonly t: number;
}

/** Timestamps rise with the offset, so no event is late, however the partitions interleave. */
function transactions(seed: number, n: number): Tx[] {
  const random = rng(seed);
  return Array.from({ length: n }, (_, i) => ({
    user_id: `u${Math.floor(random() * 23)}`,
    device: `d${Math.floor(random() * 7)}`,
    amount: Math.floor(random() * 100),
    t: T0 + i * 1_500,
  }));
}

/** One event per input partition past every window, so the last ones fire. */
function flush(t: number): Tx[] {
  const out: Tx[] = [];
  for (let i = 0; out.length < PARTITIONS; i++) {
    const user_id = `flush${i}`;
    if (!out.some((e) => partitionForKey(e.user_id, PARTITIONS) === partitionForKey(user_id, PARTITIONS))) {
      out.push({ user_id, device: "flush", amount: 0, t });
    }
  }
  return out;
}

async function ingest(log: LocalEventLog, events: readonly Tx[]): Promise<void> {
  await log.append(
    "tx",
    events.map(({ t, ...value }) => ({
      key: value.user_id,
      timestamp: t,
      value: encoder.encode(JSON.stringify(value)),
    })),
  );
}

const CASES = [
  {
    mode: "direct (marker stream)",
    sql: `SELECT user_id, count(*) AS n, sum(amount) AS total FROM TUMBLE(tx, _time, INTERVAL '1 minute') GROUP BY ALL`,
  },
  {
    mode: "behind the exchange",
    sql: `SELECT device, count(*) AS n, sum(amount) AS total FROM TUMBLE(tx, _time, INTERVAL '1 minute') GROUP BY ALL`,
  },
];

for (const { mode, sql } of CASES) {
  describe(`windows on two instances, ${mode}`, () => {
    const input = transactions(19, 600);
    const first = input.slice(0, 300);
    const rest = [...input.slice(300), ...flush(T0 + 3_600_000)];
    let expected: { hash: string; count: number };

    it("one runner alone (the reference)", async () => {
      const log = await openLog();
      const alone = runner(log, sql, new MemoryCheckpointStore());
      await alone.start();
      await ingest(log, first);
      await ingest(log, rest);
      await alone.idle();
      expected = contentHash(await readStream(log, "out"));
      await alone.stop();
      assert.ok(expected.count > 40, `windows fired: ${expected.count}`);
      assert.equal((await readStream(log, "out_late")).length, 0);
    });

    it("two runners owning half the slots each write, together, the same windows", async () => {
      const log = await openLog();
      const store = new MemoryCheckpointStore();
      const a = runner(log, sql, store, new SlotOwnership(2, [0]));
      const b = runner(log, sql, store, new SlotOwnership(2, [1]));
      await Promise.all([a.start(), b.start()]);
      assert.ok(a.tasks().every((t) => t.partition % 2 === 0 && t.restored));
      assert.ok(b.tasks().every((t) => t.partition % 2 === 1 && t.restored));
      await ingest(log, first);
      await ingest(log, rest);
      await settleAt(log, "out", expected.count);
      assert.deepEqual(contentHash(await readStream(log, "out")), expected);
      await Promise.all([a.stop(), b.stop()]);
    });

    it("a slot moved mid-stream from one runner to the other: the same windows, each once", async () => {
      const log = await openLog();
      const store = new MemoryCheckpointStore();
      const slotsA = new SlotOwnership(2, [0]);
      const slotsB = new SlotOwnership(2, [1]);
      const a = runner(log, sql, store, slotsA);
      const b = runner(log, sql, store, slotsB);
      await Promise.all([a.start(), b.start()]);
      await ingest(log, first);
      await new Promise((r) => setTimeout(r, 50));
      await slotsB.set([]);
      await slotsA.set([0, 1]);
      assert.deepEqual(b.tasks(), []);
      assert.equal(a.tasks().length, mode.startsWith("direct") ? PARTITIONS : 2 * PARTITIONS);
      await ingest(log, rest);
      await settleAt(log, "out", expected.count);
      assert.deepEqual(contentHash(await readStream(log, "out")), expected);
      await Promise.all([a.stop(), b.stop()]);
    });
  });
}
