import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import { partitionForKey } from "../../src/log/types.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import type { CheckpointStore } from "../../src/runtime/checkpoint/store.js";
import { PipelineRunner, pipelineGroup } from "../../src/stream/runner.js";
import { FakeLog } from "../helpers/fake-log.js";
import { compileStateless } from "./harness.js";

const SEED_SQL = `SELECT user_id AS "user", CAST(data AS DOUBLE) AS data, epoch(_time) AS "timestamp" FROM user_data`;
const PARTITIONS = 3;
const encoder = new TextEncoder();

async function setup(): Promise<FakeLog> {
  const log = new FakeLog();
  await log.createStream("user_data", { partitions: PARTITIONS });
  await log.createStream("enriched", { partitions: PARTITIONS });
  return log;
}

function runner(log: FakeLog, opts: { startFrom?: "earliest" | "now"; sql?: string; chunkSize?: number } = {}) {
  const sql = opts.sql ?? SEED_SQL;
  return new PipelineRunner({
    log,
    pipeline: { name: "enriched", sql, startFrom: opts.startFrom ?? "earliest" },
    compiled: compileStateless(sql, (n) => log.hasStream(n)),
    outputStream: "enriched",
    clock: new ManualClock(5),
    chunkSize: opts.chunkSize ?? 500,
    retryDelayMs: 1,
  });
}

async function ingest(log: FakeLog, events: readonly { user_id: string; data: string; t: number }[]): Promise<void> {
  await log.append(
    "user_data",
    events.map((e) => ({
      key: e.user_id,
      timestamp: e.t,
      value: encoder.encode(JSON.stringify({ data: e.data, user_id: e.user_id })),
    })),
  );
}

function events(n: number, from = 0) {
  const users = ["A", "B", "C", "D", "E"];
  return Array.from({ length: n }, (_, i) => ({
    user_id: users[(from + i) % users.length] as string,
    data: String(from + i),
    t: 1_000 * (from + i),
  }));
}

/** Output values sorted by data, to compare regardless of partition interleaving. */
function outputData(log: FakeLog): number[] {
  return log
    .dump("enriched")
    .map((r) => (r.value as { data: number }).data)
    .sort((a, b) => a - b);
}

describe("PipelineRunner", () => {
  it("writes outputs with the input's key, partition and event time", async () => {
    const log = await setup();
    await ingest(log, [{ user_id: "A", data: "1", t: 1_704_164_645_123 }]);
    const r = runner(log);
    await r.start();
    await r.idle();
    await r.stop();
    const [out] = log.dump("enriched");
    assert.deepEqual(out, {
      partition: partitionForKey("A", PARTITIONS),
      offset: 0,
      key: "A",
      timestamp: 1_704_164_645_123,
      value: { user: "A", data: 1, timestamp: 1_704_164_645.123 },
    });
    const stats = r.stats();
    assert.equal(stats.recordsIn, 1);
    assert.equal(stats.recordsOut, 1);
    assert.equal(stats.lag, 0);
  });

  it("wakes on append without polling and commits its input offsets", async () => {
    const log = await setup();
    const r = runner(log);
    await r.start();
    await ingest(log, events(10));
    await new Promise((resolve) => setImmediate(resolve));
    await r.idle();
    assert.deepEqual(outputData(log), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const committed = await log.committedOffsets(pipelineGroup("enriched"), "user_data");
    assert.deepEqual(
      [...committed.values()].reduce((a, b) => a + b, 0),
      10,
    );
    await r.stop();
  });

  it("counts events whose expressions fail instead of stopping", async () => {
    const log = await setup();
    await ingest(log, [
      { user_id: "A", data: "1", t: 1 },
      { user_id: "A", data: "oops", t: 2 },
      { user_id: "A", data: "3", t: 3 },
    ]);
    const r = runner(log);
    await r.start();
    await r.idle();
    await r.stop();
    assert.deepEqual(outputData(log), [1, 3]);
    assert.equal(r.stats().errors, 1);
    assert.match(r.stats().lastError ?? "", /Could not convert string 'oops' to DOUBLE/);
  });

  it("counts rows WHERE rejects as dropped", async () => {
    const log = await setup();
    await ingest(log, events(10));
    const r = runner(log, { sql: "SELECT * FROM user_data WHERE CAST(data AS INTEGER) % 2 = 0" });
    await r.start();
    await r.idle();
    await r.stop();
    assert.equal(r.stats().recordsOut, 5);
    assert.equal(r.stats().dropped, 5);
  });

  it("a crash between output append and offset commit yields no duplicate and no gap", async () => {
    const log = await setup();
    await ingest(log, events(20));
    const first = runner(log, { chunkSize: 4 });
    // start() commits the initial positions; the rounds' commits (one per partition's task) are the ones that "crash".
    log.failNext("commitOffsets", { after: 1, times: PARTITIONS });
    await first.start();
    await first.idle();
    // The first round appended outputs and then "crashed" before committing.
    await first.stop();
    const written = log.dump("enriched").length;
    assert.ok(written > 0);
    const committed = await log.committedOffsets(pipelineGroup("enriched"), "user_data");
    assert.ok(
      [...committed.values()].every((o) => o === 0),
      "nothing committed by the crashed round",
    );

    await ingest(log, events(5, 20));
    const second = runner(log, { chunkSize: 4 });
    await second.start();
    await second.idle();
    await second.stop();
    assert.deepEqual(
      outputData(log),
      Array.from({ length: 25 }, (_, i) => i),
    );
  });

  it("restart after a clean stop resumes where it left off", async () => {
    const log = await setup();
    await ingest(log, events(7));
    const a = runner(log);
    await a.start();
    await a.idle();
    await a.stop();
    await ingest(log, events(3, 7));
    const b = runner(log);
    await b.start();
    await b.idle();
    await b.stop();
    assert.deepEqual(
      outputData(log),
      Array.from({ length: 10 }, (_, i) => i),
    );
  });

  it("startFrom now skips what was there and persists its start so a restart does not jump", async () => {
    const log = await setup();
    await ingest(log, events(5));
    const a = runner(log, { startFrom: "now" });
    await a.start();
    await a.idle();
    await a.stop();
    assert.equal(log.dump("enriched").length, 0);
    // Arrives while the pipeline is down: a restart must still process it.
    await ingest(log, events(2, 5));
    const b = runner(log, { startFrom: "now" });
    await b.start();
    await b.idle();
    await b.stop();
    assert.deepEqual(outputData(log), [5, 6]);
  });

  it("retries after the log fails an append, without losing or duplicating", async () => {
    const log = await setup();
    await ingest(log, events(6));
    log.failNext("append");
    const r = runner(log, { chunkSize: 2 });
    await r.start();
    await r.idle();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await r.idle();
    await r.stop();
    assert.equal(r.stats().failures, 1);
    assert.deepEqual(outputData(log), [0, 1, 2, 3, 4, 5]);
  });

  it("refuses an output stream whose partition count differs from the input's", async () => {
    const log = new FakeLog();
    await log.createStream("user_data", { partitions: 2 });
    await log.createStream("enriched", { partitions: 3 });
    await assert.rejects(runner(log).start(), /must have 2 partitions/);
  });

  it("runs a task per partition, and starts all of them or none", async () => {
    const log = await setup();
    const store = new MemoryCheckpointStore();
    const sql = SEED_SQL;
    const make = (checkpoints: CheckpointStore) =>
      new PipelineRunner({
        log,
        pipeline: { name: "enriched", sql, startFrom: "earliest" },
        compiled: compileStateless(sql, (n) => log.hasStream(n)),
        outputStream: "enriched",
        clock: new ManualClock(5),
        retryDelayMs: 1,
        checkpoints,
      });
    const ok = make(store);
    await ok.start();
    assert.deepEqual(await store.list("enriched/"), ["enriched/0", "enriched/1", "enriched/2"]);
    await ok.stop();

    const refusing: CheckpointStore = {
      claim: async (task, owner) => {
        if (task === "enriched/1") throw new Error("store unavailable");
        return store.claim(task, owner);
      },
      read: (task) => store.read(task),
      write: (task, epoch, kind, data) => store.write(task, epoch, kind, data),
      drop: (task, epoch) => store.drop(task, epoch),
      list: (prefix) => store.list(prefix),
      close: async () => {},
    };
    const broken = make(refusing);
    await assert.rejects(broken.start(), /store unavailable/);
    assert.equal(broken.stats().running, false);
    await ingest(log, events(6));
    await broken.idle();
    assert.equal(log.dump("enriched").length, 0, "no partition's task kept running");
  });
});
