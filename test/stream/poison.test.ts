/**
 * Pipelines and jobs against records they can never process, written straight into the log: each
 * runner dead-letters them (once, also when a crash makes it read them again) and goes on; a
 * failure that is not a record's keeps the runner retrying and shows, and is never dead-lettered;
 * a future-stamped event of one user does not stop another user's window from closing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AppendRecord } from "../../src/log/types.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import { stream } from "../../src/stream/api/job.js";
import { parsePipelineOptions } from "../../src/stream/options.js";
import { PipelineRunner } from "../../src/stream/runner.js";
import { compilePipeline } from "../../src/stream/sql/index.js";
import { WindowedPipelineRunner } from "../../src/stream/window-runner.js";
import { deadLettersOn, deepValue } from "../helpers/dead-letters.js";
import { FakeLog } from "../helpers/fake-log.js";
import { until } from "../helpers/poll.js";

const encoder = new TextEncoder();
const MINUTE = 60_000;
/** An hour before now: event times behind the log's clock, as ordinary events are. */
const T0 = Math.floor((Date.now() - 60 * MINUTE) / MINUTE) * MINUTE;
const MAP_SQL = "SELECT user_id, CAST(data AS INTEGER) AS n FROM tx";
const WINDOW_SQL =
  "SELECT user_id, window_start, count(*) AS c, sum(CAST(data AS INTEGER)) AS total FROM TUMBLE(tx, _time, INTERVAL '1 minute') GROUP BY ALL";

function rec(user: string, t: number, data: string): AppendRecord {
  return { key: user, timestamp: t, value: encoder.encode(JSON.stringify({ user_id: user, data })) };
}

function deep(user: string, t: number): AppendRecord {
  return { key: user, timestamp: t, value: deepValue(user) };
}

async function logWith(...streams: string[]): Promise<FakeLog> {
  const log = new FakeLog();
  for (const s of ["tx", ...streams]) await log.createStream(s, { partitions: 1 });
  return log;
}

function mapRunner(log: FakeLog, sink: ReturnType<typeof deadLettersOn>["sink"] | undefined) {
  const compiled = compilePipeline(MAP_SQL, (n) => log.hasStream(n));
  if (compiled.kind !== "map") throw new Error("expected a map pipeline");
  return new PipelineRunner({
    log,
    pipeline: { name: "tx_n", sql: MAP_SQL, startFrom: "earliest" },
    compiled,
    outputStream: "tx_n",
    retryDelayMs: 1,
    ...(sink !== undefined && { deadLetters: sink }),
  });
}

function windowRunner(
  log: FakeLog,
  sink: ReturnType<typeof deadLettersOn>["sink"],
  checkpoints: MemoryCheckpointStore,
) {
  const compiled = compilePipeline(WINDOW_SQL, (n) => log.hasStream(n));
  if (compiled.kind !== "window") throw new Error("expected a windowed pipeline");
  return new WindowedPipelineRunner({
    log,
    name: "tx_w",
    inputStream: "tx",
    plan: compiled.plan,
    outputStream: "tx_w",
    lateStream: "tx_w_late",
    startFrom: "earliest",
    options: parsePipelineOptions({ outOfOrderness: "0s", idleTimeout: 0 }),
    checkpoints,
    retryDelayMs: 1,
    tickMs: 0,
    deadLetters: sink,
  });
}

describe("a map pipeline and poison records", () => {
  it("dead-letters a 20 000-deep record and one its CAST fails on, and goes on with the rest", async () => {
    const log = await logWith("tx_n");
    const dead = deadLettersOn(log);
    await log.append("tx", [rec("a", T0, "1"), deep("a", T0 + 1), rec("a", T0 + 2, "oops"), rec("a", T0 + 3, "3")]);
    const r = mapRunner(log, dead.sink);
    await r.start();
    await r.idle();
    await r.stop();
    assert.deepEqual(
      log.dump("tx_n").map((o) => (o.value as { n: number }).n),
      [1, 3],
    );
    const letters = await dead.letters("tx");
    assert.deepEqual(
      letters.map((l) => `${l.consumer} ${l.partition}/${l.offset}`),
      ["pipeline/tx_n 0/1", "pipeline/tx_n 0/2"],
    );
    assert.match(String(letters[0]?.reason), /deeper than 1000 levels/);
    assert.match(String(letters[1]?.reason), /oops/);
    const stats = r.stats();
    assert.equal(stats.deadLetters, 2);
    assert.equal(stats.errors, 1, "the CAST failure is still an expression error");
    assert.equal(stats.failures, 0);
  });

  it("writes no second letter when a crash before the commit makes a restart read the record again", async () => {
    const log = await logWith("tx_n");
    await log.append("tx", [rec("a", T0, "1"), deep("a", T0 + 1)]);
    const first = mapRunner(log, deadLettersOn(log).sink);
    log.failNext("commitOffsets", { after: 1 }); // the start commits the starting point first
    await first.start();
    await until(
      async () => first.stats().failures,
      (n) => n > 0,
      "the failed commit",
    );
    await first.stop();
    // A new process: a new sink, which reads back the letters already written.
    const dead = deadLettersOn(log);
    const second = mapRunner(log, dead.sink);
    await second.start();
    await log.append("tx", [rec("a", T0 + 2, "2")]);
    await until(
      async () => log.dump("tx_n").length,
      (n) => n === 2,
      "the later record's output",
    );
    await second.stop();
    assert.equal((await dead.letters("tx")).length, 1);
  });

  it("keeps retrying a failure that is not the record's, shows it, and dead-letters nothing", async () => {
    const log = await logWith("tx_n");
    const dead = deadLettersOn(log);
    await log.append("tx", [rec("a", T0, "1")]);
    log.failNext("append");
    const r = mapRunner(log, dead.sink);
    await r.start();
    await until(
      async () => log.dump("tx_n").length,
      (n) => n === 1,
      "the output after the retry",
    );
    await r.idle();
    await r.stop();
    assert.equal(r.stats().failures, 1);
    assert.equal(r.stats().failing, undefined, "recovered");
    assert.deepEqual(await dead.letters("tx"), []);
  });
});

describe("a windowed pipeline and poison records", () => {
  it("dead-letters them, counts late events, and closes y's window despite x's 9999-12-31 event", async () => {
    const log = await logWith("tx_w", "tx_w_late");
    const dead = deadLettersOn(log);
    await log.append("tx", [
      rec("x", T0, "1"),
      deep("x", T0 + 1),
      rec("x", T0 + 2, "oops"),
      rec("x", Date.parse("9999-12-31T00:00:00Z"), "5"),
      rec("y", T0 + 3, "7"),
      rec("y", T0 + 5 * MINUTE, "1"),
      rec("y", T0 - 10 * MINUTE, "1"),
    ]);
    const r = windowRunner(log, dead.sink, new MemoryCheckpointStore());
    await r.start();
    await r.idle();
    await r.stop();
    const windows = log
      .dump("tx_w")
      .map((o) => o.value as { user_id: string; c: number; total: number })
      .map((v) => `${v.user_id} c=${v.c} total=${v.total}`);
    assert.deepEqual(windows.sort(), ["x c=1 total=1", "y c=1 total=7"]);
    assert.deepEqual(
      (await dead.letters("tx")).map((l) => `${l.consumer} ${l.offset}`),
      ["pipeline/tx_w 1", "pipeline/tx_w 2"],
    );
    const stats = r.stats();
    assert.equal(stats.late, 1);
    assert.equal(stats.deadLetters, 2);
    assert.equal(stats.failures, 0);
  });

  it("writes each letter once when a restart replays from the last checkpoint", async () => {
    const log = await logWith("tx_w", "tx_w_late");
    const checkpoints = new MemoryCheckpointStore();
    await log.append("tx", []);
    const first = windowRunner(log, deadLettersOn(log).sink, checkpoints);
    await first.start(); // checkpoints the starting point
    await log.append("tx", [rec("x", T0, "1"), deep("x", T0 + 1)]);
    await first.idle();
    // Killed: no final checkpoint, so the next run replays both records.
    (first as unknown as { needsRecovery: boolean }).needsRecovery = true;
    await first.stop();
    const dead = deadLettersOn(log);
    const second = windowRunner(log, dead.sink, checkpoints);
    await second.start();
    await second.idle();
    await second.stop();
    assert.equal((await dead.letters("tx")).length, 1);
  });
});

describe("a keyed process job and poison records", () => {
  it("dead-letters the records its function throws on and keeps the running totals", async () => {
    const log = await logWith("totals");
    const dead = deadLettersOn(log);
    type Tx = { user_id: string; data: string };
    const job = stream<Tx>(log, "tx")
      .keyBy("user_id")
      .process<number, { user_id: string; total: number }>({
        ttlMs: 60 * MINUTE,
        process(t, state, out) {
          const n = Number(t.data);
          if (!Number.isFinite(n)) throw new TypeError(`not a number: ${t.data}`);
          const total = (state.value() ?? 0) + n;
          state.update(total);
          out({ user_id: t.user_id, total });
        },
      })
      .to("totals", {
        options: { outOfOrderness: "0s", idleTimeout: 0 },
        checkpoints: new MemoryCheckpointStore(),
        deadLetters: dead.sink,
      });
    await log.append("tx", [rec("a", T0, "1"), rec("a", T0 + 1, "lots"), deep("a", T0 + 2), rec("a", T0 + 3, "2")]);
    await job.start();
    await job.idle();
    await job.stop();
    assert.deepEqual(
      log.dump("totals").map((o) => (o.value as { total: number }).total),
      [1, 3],
    );
    assert.deepEqual(
      (await dead.letters("tx")).map((l) => `${l.offset} ${l.reason}`),
      ["1 not a number: lots", "2 the record nests deeper than 1000 levels"],
    );
  });
});
