/**
 * The exchange (src/runtime/exchange.ts): copies keyed by the job's key, watermark markers in every
 * partition of the internal stream, one watermark per upstream channel downstream, and a job's
 * tasks and internal stream dropped with it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import { partitionForKey } from "../../src/log/types.js";
import {
  ChannelWatermarks,
  HEADER_WATERMARK,
  markerHeader,
  markerStream,
  partitionKeys,
} from "../../src/runtime/channels.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import { dropJobTasks, ExchangeOperator, exchangeStream, type Route } from "../../src/runtime/exchange.js";
import type { OperatorOutput } from "../../src/runtime/operator.js";
import type { StreamEvent } from "../../src/stream/event.js";
import { flush, ingest, PARTITIONS, partitionOf, rows, windowLog, windowRunner } from "../stream/window-harness.js";

const T0 = Date.UTC(2024, 0, 1);
const MIN = 60_000;

function event(partition: number, offset: number, value: Record<string, unknown>): StreamEvent {
  return { value, key: String(value.user_id), timestamp: T0 + offset, ingestTime: T0 + offset, partition, offset };
}

describe("exchange", () => {
  it("addresses a marker to every partition", () => {
    for (const n of [1, 2, 3, 8]) {
      const keys = partitionKeys(n);
      assert.deepEqual(
        keys.map((k) => partitionForKey(k, n)),
        Array.from({ length: n }, (_, p) => p),
      );
    }
  });

  it("copies an event under its key with its origin, and sends markers only when they change", () => {
    const route: Route = (e) => (e.value.device === undefined ? undefined : String(e.value.device));
    const op = new ExchangeOperator("job", 1, 3, route);
    const out: OperatorOutput[] = [];
    op.processEvent(event(1, 7, { user_id: "u", device: "d1" }), out);
    assert.equal(op.processEvent(event(1, 8, { user_id: "u" }), out), 2, "no key: filtered");
    assert.deepEqual(
      out.map((o) => [o.id, o.key, o.headers]),
      [["job:x:1:7", "d1", { "runnel-origin": `1:7:${T0 + 7}:u` }]],
    );
    out.length = 0;
    op.processWatermark(T0);
    op.endRound(false, out, [9]);
    assert.deepEqual(
      out.map((o) => [partitionForKey(o.key, 3), o.headers?.[HEADER_WATERMARK]]),
      [0, 1, 2].map((q) => [q, markerHeader(1, T0, false)]),
    );
    out.length = 0;
    op.endRound(false, out, [9]);
    assert.equal(out.length, 0, "nothing new to say");
    op.endRound(true, out, [9]);
    assert.equal(out.length, 3, "idleness is news");
    assert.equal(out[0]?.headers?.[HEADER_WATERMARK], markerHeader(1, T0, true, 9), "with where it had read to");
  });

  it("sends one copy per partition an event's keys fall in", () => {
    const keys = ["a", "b", "c", "d", "e", "f"];
    const op = new ExchangeOperator("job", 0, 3, () => keys);
    const out: OperatorOutput[] = [];
    op.processEvent(event(0, 1, { user_id: "u" }), out);
    const partitions = out.map((o) => partitionForKey(o.key, 3));
    assert.equal(new Set(partitions).size, partitions.length);
    assert.deepEqual(new Set(partitions), new Set(keys.map((k) => partitionForKey(k, 3))));
    assert.equal(new Set(out.map((o) => o.id)).size, out.length, "ids differ");
  });

  it("combines channels as partitions: the slowest active one, the fastest when all are idle, never back", () => {
    const c = new ChannelWatermarks(3);
    c.observe(markerHeader(0, 100, false));
    c.observe(markerHeader(1, 50, false));
    assert.equal(c.update(), Number.NEGATIVE_INFINITY, "channel 2 said nothing yet");
    c.observe(markerHeader(2, Number.NEGATIVE_INFINITY, true));
    assert.equal(c.update(), 50);
    c.observe(markerHeader(1, 40, false));
    assert.equal(c.update(), 50, "an older marker (a replay upstream) is ignored");
    c.observe(markerHeader(0, 100, true));
    c.observe(markerHeader(1, 60, true));
    assert.equal(c.update(), 100);
    c.observe(markerHeader(1, 70, false));
    assert.equal(c.update(), 100, "never back");
    assert.throws(() => c.observe("7:1:0"), /not a watermark marker/);
  });

  it("counts an idle channel idle only while its input partition holds no record its task has not read", () => {
    const c = new ChannelWatermarks(3);
    c.observe(markerHeader(0, Number.NEGATIVE_INFINITY, true, 0));
    c.observe(markerHeader(1, 100, false));
    c.observe(markerHeader(2, 20, true));
    assert.deepEqual(c.idleAt(), [[0, 0]], "an idle marker without a position (an older task) is taken as said");
    assert.equal(c.update(new Set([0])), Number.NEGATIVE_INFINITY, "channel 0's partition took records unread");
    assert.equal(c.update(null), Number.NEGATIVE_INFINITY, "not known: not idle");
    assert.equal(c.update(new Set()), 100, "nothing unread: idle");
    c.observe(markerHeader(0, 50, false));
    assert.deepEqual(c.idleAt(), [], "active again");
    assert.equal(c.update(), 100, "never back");
  });

  it("takes each copy of a channel once, in its input's order", () => {
    const c = new ChannelWatermarks(2);
    assert.equal(c.fresh(0, 5), true);
    assert.equal(c.fresh(0, 5), false, "a stale owner's second copy");
    assert.equal(c.fresh(1, 3), true);
    assert.equal(c.fresh(0, 6), true);
  });

  it("runs a job over several partitions as tasks per partition and drops them and its stream with it", async () => {
    const log = await windowLog();
    const checkpoints = new MemoryCheckpointStore();
    const sql = `SELECT kind, count(*) AS n FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY kind`;
    const r = windowRunner(log, sql, {}, { checkpoints });
    await r.start();
    const users = ["A", "B", "C", "D", "E", "F", "G"];
    await ingest(log, [...users.map((user_id, i) => ({ user_id, t: T0 + i, kind: "x" })), ...flush(T0 + MIN)]);
    await r.idle();
    await r.stop();
    assert.deepEqual(
      rows(log).filter((x) => x.kind === "x"),
      [{ kind: "x", n: users.length, _key: "", _time: T0 + MIN - 1 }],
      "one result for a group whose events sat in every partition",
    );
    const tasks = Array.from({ length: PARTITIONS }, (_, p) => [`out/${p}`, `out/exchange/${p}`]).flat();
    for (const task of tasks) assert.ok((await checkpoints.read(task)) !== undefined, task);
    assert.equal(log.hasStream(exchangeStream("out")), true);

    await dropJobTasks(log, checkpoints, "out", "test");
    for (const task of tasks) assert.equal(await checkpoints.read(task), undefined, task);
    assert.equal(log.hasStream(exchangeStream("out")), false);
  });

  it("runs a job grouped by user_id as tasks reading their partitions directly, sharing only event time", async () => {
    const log = await windowLog();
    const checkpoints = new MemoryCheckpointStore();
    const sql = `SELECT user_id, count(*) AS n FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`;
    const r = windowRunner(log, sql, {}, { checkpoints });
    await r.start();
    const users = ["A", "B", "C", "D", "E", "F", "G"];
    await ingest(log, [...users.map((user_id, i) => ({ user_id, t: T0 + i })), ...flush(T0 + MIN)]);
    await r.idle();
    await r.stop();
    assert.deepEqual(
      rows(log)
        .map((x) => `${x.user_id}=${x.n}`)
        .sort(),
      users.map((u) => `${u}=1`),
    );
    assert.deepEqual((await checkpoints.list("out/")).sort(), ["out/0", "out/1", "out/2"]);
    assert.equal(log.hasStream(exchangeStream("out")), false, "no exchange");
    assert.equal(log.hasStream(markerStream("out")), true);
    await dropJobTasks(log, checkpoints, "out", "test");
    assert.equal(log.hasStream(markerStream("out")), false);
  });

  it("holds a group's window back to the slowest input partition until it is idle, through the exchange", async () => {
    const log = await windowLog();
    const clock = new ManualClock(1_000);
    const sql = `SELECT kind, count(*) AS n FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY kind`;
    const r = windowRunner(log, sql, { idleTimeout: "10s" }, { clock });
    await r.start();
    const users = ["A", "B", "C", "D", "E", "F", "G", "H"];
    const fast = users.find((u) => partitionOf(u) === 0) as string;
    const slow = users.find((u) => partitionOf(u) === 1) as string;
    // One group ("x") with events in two partitions; partition 2 never has any.
    await ingest(log, [
      { user_id: slow, t: T0, kind: "x" },
      { user_id: fast, t: T0, kind: "x" },
    ]);
    await r.idle();
    await ingest(log, [{ user_id: fast, t: T0 + 5 * MIN, kind: "y" }]);
    await r.idle();
    assert.deepEqual(rows(log), [], "partitions 1 and 2 hold time back");
    clock.advance(9_000);
    await r.poke();
    assert.deepEqual(rows(log), [], "not idle yet");
    clock.advance(1_000);
    await ingest(log, [{ user_id: fast, t: T0 + 5 * MIN + 1, kind: "y" }]);
    await r.idle();
    assert.deepEqual(
      rows(log).map((x) => [x.kind, x.n]),
      [["x", 2]],
    );
    assert.equal(r.stats().watermark, T0 + 5 * MIN);
    await r.stop();
  });
});
