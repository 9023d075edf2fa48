/** keyBy(…).process(…): per-key ValueState with event-time TTL, checkpointed with the input offsets. */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  type CheckpointStore,
  type Job,
  type JobOptions,
  LocalEventLog,
  LocalFileCheckpointStore,
  MemoryCheckpointStore,
  stream,
} from "../../src/index.js";
import { HEADER_OUTPUT_ID } from "../../src/stream/headers.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const T0 = Date.UTC(2024, 0, 1);
const HOUR = 3_600_000;
const OPTIONS: JobOptions["options"] = { outOfOrderness: "0s", idleTimeout: 0 };

type Tx = { user_id: string; amount: number };
type Row = { user_id: string; total: number };

async function withLog(body: (log: LocalEventLog, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "runnel-keyed-"));
  const log = new LocalEventLog({ dir: join(dir, "log") });
  await log.open();
  try {
    await body(log, dir);
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function append(log: LocalEventLog, events: (Tx & { t: number })[]): Promise<void> {
  await log.append(
    "transactions",
    events.map(({ t, ...v }) => ({ key: v.user_id, timestamp: t, value: encoder.encode(JSON.stringify(v)) })),
  );
}

/** Every output, partition by partition, with its id. */
async function outputs(log: LocalEventLog, name: string): Promise<{ id: string; key: string; value: Row }[]> {
  const all: { id: string; key: string; value: Row }[] = [];
  for (let p = 0; p < log.partitionCount(name); p++) {
    for (const r of await log.read(name, p, 0, { maxRecords: 10_000 })) {
      all.push({ id: r.headers?.[HEADER_OUTPUT_ID] ?? "", key: r.key, value: JSON.parse(decoder.decode(r.value)) });
    }
  }
  return all;
}

/** The job of the docs: a running total per user, forgotten after an hour without activity. */
function runningTotal(log: LocalEventLog, options: JobOptions = {}): Job {
  return stream<Tx>(log, "transactions")
    .keyBy("user_id")
    .process<number, Row>({
      ttlMs: HOUR,
      process(t, state, out) {
        const total = (state.value() ?? 0) + t.amount;
        state.update(total);
        out({ user_id: t.user_id, total });
      },
    })
    .to("totals", { options: OPTIONS, ...options });
}

async function setup(log: LocalEventLog, partitions = 1): Promise<void> {
  await log.createStream("transactions", { partitions });
  await log.createStream("totals", { partitions });
}

const totals = (rows: { value: Row }[]) => rows.map((r) => `${r.value.user_id}=${r.value.total}`);

describe("keyed process function with TTL state", () => {
  it("keeps a running total per key, emitted keyed like the input, with deterministic ids", async () => {
    await withLog(async (log) => {
      await setup(log);
      const job = runningTotal(log);
      await job.start();
      await append(log, [
        { user_id: "A", amount: 3, t: T0 },
        { user_id: "B", amount: 1, t: T0 + 1 },
        { user_id: "A", amount: 4, t: T0 + 2 },
        { user_id: "B", amount: 10, t: T0 + 3 },
      ]);
      await job.idle();
      await job.stop();
      const rows = await outputs(log, "totals");
      assert.deepEqual(totals(rows), ["A=3", "B=1", "A=7", "B=11"]);
      assert.deepEqual(
        rows.map((r) => r.key),
        ["A", "B", "A", "B"],
      );
      assert.deepEqual(
        rows.map((r) => r.id),
        ["totals:0:0:0", "totals:0:1:0", "totals:0:2:0", "totals:0:3:0"],
      );
    });
  });

  it("runs the chain before keyBy, keys by a function, and clear() forgets the key", async () => {
    await withLog(async (log) => {
      await setup(log);
      const job = stream<Tx>(log, "transactions")
        .filter((t) => t.amount !== 0)
        .flatMap((t) => [t, { ...t, amount: 100 }])
        .keyBy((t) => `${t.user_id}:${t.amount > 0 ? "in" : "out"}`)
        .process<number, Row>({
          ttlMs: HOUR,
          process(t, state, out) {
            const total = (state.value() ?? 0) + t.amount;
            if (total > 150) state.clear();
            else state.update(total);
            out({ user_id: t.user_id, total });
          },
        })
        .to("totals", { options: OPTIONS });
      await job.start();
      await append(log, [
        { user_id: "A", amount: 3, t: T0 },
        { user_id: "A", amount: 0, t: T0 + 1 },
        { user_id: "A", amount: -2, t: T0 + 2 },
      ]);
      await job.idle();
      await job.stop();
      // A:in gets 3, 100 (103), then 100 (203 → cleared); A:out gets -2.
      assert.deepEqual(totals(await outputs(log, "totals")), ["A=3", "A=103", "A=-2", "A=203"]);
    });
  });

  it("expires state not updated for ttlMs of event time, lazily and by the sweep", async () => {
    await withLog(async (log) => {
      await setup(log);
      const job = runningTotal(log);
      await job.start();
      await append(log, [
        { user_id: "A", amount: 1, t: T0 },
        { user_id: "B", amount: 5, t: T0 },
        // Updated 59 minutes later: still there, and the TTL starts again.
        { user_id: "A", amount: 2, t: T0 + 59 * 60_000 },
        // 1h58m after the first event, 59 minutes after the last update: still there.
        { user_id: "A", amount: 3, t: T0 + 118 * 60_000 },
        // Exactly one hour after the last update: expired, the total starts again.
        { user_id: "A", amount: 4, t: T0 + 178 * 60_000 },
      ]);
      await job.idle();
      assert.deepEqual(totals(await outputs(log, "totals")), ["A=1", "B=5", "A=3", "A=6", "A=4"]);
      // B was never read again: the sweep dropped it once the watermark passed T0 + 1h.
      const stats = job.stats();
      assert.equal("stateKeys" in stats ? stats.stateKeys : undefined, 1);
      await append(log, [{ user_id: "B", amount: 7, t: T0 + 179 * 60_000 }]);
      await job.idle();
      await job.stop();
      assert.deepEqual(totals(await outputs(log, "totals")).slice(5), ["B=7"]);
    });
  });

  it("restarts from the checkpoint: no state update lost, none applied twice, no output duplicated", async () => {
    await withLog(async (log) => {
      await setup(log, 2);
      const events = (from: number, n: number): (Tx & { t: number })[] =>
        Array.from({ length: n }, (_, i) => ({
          user_id: `u${(from + i) % 5}`,
          amount: (from + i) % 7,
          t: T0 + (from + i) * 1000,
        }));
      // Run 1: processes the first batch and stops cleanly (final checkpoint).
      const real = new MemoryCheckpointStore();
      const first = runningTotal(log, { checkpoints: real });
      await first.start();
      await append(log, events(0, 40));
      await first.idle();
      await first.stop();

      // Run 2: processes the second batch, writes its outputs, then "crashes": its checkpoints never land.
      const crashing: CheckpointStore = {
        claim: (task, owner) => real.claim(task, owner),
        read: (task) => real.read(task),
        write: async () => {},
        drop: (task, epoch) => real.drop(task, epoch),
        list: (prefix) => real.list(prefix),
        close: async () => {},
      };
      const second = runningTotal(log, { checkpoints: crashing });
      await second.start();
      await append(log, events(40, 40));
      await second.idle();
      await second.stop();
      const afterCrash = await outputs(log, "totals");
      assert.equal(afterCrash.length, 80);

      // Run 3, a new runner over the same log: restores run 1's checkpoint, replays the second
      // batch without writing its outputs again, then goes on with the third.
      const third = runningTotal(log, { checkpoints: real });
      await third.start();
      await third.idle();
      assert.equal((await outputs(log, "totals")).length, 80);
      await append(log, events(80, 40));
      await third.idle();
      await third.stop();

      const all = await outputs(log, "totals");
      assert.equal(new Set(all.map((r) => r.id)).size, all.length, "no duplicated output");
      // Offline: the running total per user over the whole input, event by event.
      const expected = new Map<string, string[]>();
      const sums = new Map<string, number>();
      for (const e of events(0, 120)) {
        const total = (sums.get(e.user_id) ?? 0) + e.amount;
        sums.set(e.user_id, total);
        expected.set(e.user_id, [...(expected.get(e.user_id) ?? []), `${e.user_id}=${total}`]);
      }
      const got = new Map<string, string[]>();
      for (const r of all)
        got.set(r.value.user_id, [...(got.get(r.value.user_id) ?? []), `${r.value.user_id}=${r.value.total}`]);
      assert.deepEqual(got, expected);
    });
  });

  it("keyed by a field whose keys sit in every partition: each key's state in one task, every value once", async () => {
    await withLog(async (log) => {
      await setup(log, 3);
      type Card = { user_id: string; card: string; amount: number };
      const cards = ["c1", "c2", "c3", "c4", "c5", "c6", "c7"];
      // Each payment is split over two cards (a flatMap before keyBy): the values of one event go to
      // the tasks of their keys, which may be two different ones.
      const job = (checkpoints: CheckpointStore) =>
        stream<Tx>(log, "transactions")
          .flatMap((t): Card[] => [
            { user_id: t.user_id, card: cards[t.amount % 7] as string, amount: t.amount },
            { user_id: t.user_id, card: cards[(t.amount * 3 + 1) % 7] as string, amount: 1 },
          ])
          .keyBy("card")
          .process<number, Row & { card: string }>({
            ttlMs: HOUR,
            process(c, state, out) {
              const total = (state.value() ?? 0) + c.amount;
              state.update(total);
              out({ user_id: c.user_id, card: c.card, total });
            },
          })
          .to("totals", { options: OPTIONS, checkpoints });
      const events = Array.from({ length: 60 }, (_, i) => ({ user_id: `u${i % 6}`, amount: i, t: T0 + i * 1000 }));
      const checkpoints = new MemoryCheckpointStore();
      const first = job(checkpoints);
      await first.start();
      await append(log, events.slice(0, 30));
      await first.idle();
      await first.stop();
      const second = job(checkpoints);
      await second.start();
      await append(log, events.slice(30));
      await second.idle();
      await second.stop();

      const all = (await outputs(log, "totals")) as unknown as { id: string; value: Row & { card: string } }[];
      assert.equal(new Set(all.map((r) => r.id)).size, all.length, "no output id twice");
      assert.equal(all.length, 2 * events.length, "one output per value");
      const expected = new Map<string, number>();
      for (const e of events) {
        for (const [card, amount] of [
          [cards[e.amount % 7], e.amount],
          [cards[(e.amount * 3 + 1) % 7], 1],
        ] as const)
          expected.set(card as string, (expected.get(card as string) ?? 0) + amount);
      }
      const finals = new Map<string, number>();
      for (const r of all) finals.set(r.value.card, Math.max(finals.get(r.value.card) ?? 0, r.value.total));
      assert.deepEqual(finals, expected, "each card's running total reaches its sum: its state in one task");
    });
  });

  it("restores the state from its checkpoint store after the whole log is reopened", async () => {
    await withLog(async (log, dir) => {
      await setup(log);
      const checkpoints = () => new LocalFileCheckpointStore(join(dir, "checkpoints"));
      const job = runningTotal(log, { checkpoints: checkpoints() });
      await job.start();
      await append(log, [{ user_id: "A", amount: 3, t: T0 }]);
      await job.idle();
      await job.stop();
      await log.close();
      const reopened = new LocalEventLog({ dir: join(dir, "log") });
      await reopened.open();
      try {
        const again = runningTotal(reopened, { checkpoints: checkpoints() });
        await again.start();
        await reopened.append("transactions", [
          { key: "A", timestamp: T0 + 1, value: encoder.encode(JSON.stringify({ user_id: "A", amount: 4 })) },
        ]);
        await again.idle();
        await again.stop();
        assert.deepEqual(totals(await outputs(reopened, "totals")), ["A=3", "A=7"]);
      } finally {
        await reopened.close();
        await log.open();
      }
    });
  });

  it("refuses a TTL that is not a positive duration", async () => {
    await withLog(async (log) => {
      await setup(log);
      assert.throws(() =>
        stream<Tx>(log, "transactions")
          .keyBy("user_id")
          .process<number, Row>({ ttlMs: 0, process() {} }),
      );
    });
  });
});

describe("docs/stream-processing.md keyed state example", () => {
  it("alerts when a user's running total over the last hour of activity exceeds 1,000", async () => {
    await withLog(async (log) => {
      await log.createStream("transactions", { partitions: 1 });
      await log.createStream("spend_alerts", { partitions: 1 });
      const job = stream<{ user_id: string; amount: number }>(log, "transactions")
        .filter((t) => t.amount > 0)
        .keyBy("user_id")
        .process<number, { user_id: string; total: number }>({
          ttlMs: 3_600_000,
          process(t, state, out) {
            const total = (state.value() ?? 0) + t.amount;
            state.update(total);
            if (total > 1_000) {
              out({ user_id: t.user_id, total });
              state.clear();
            }
          },
        })
        .to("spend_alerts", { options: { outOfOrderness: "5s" } });
      await job.start();
      await append(log, [
        { user_id: "A", amount: 600, t: T0 },
        { user_id: "A", amount: -900, t: T0 + 1 },
        { user_id: "A", amount: 500, t: T0 + 30 * 60_000 }, // 1,100 → alert
        { user_id: "B", amount: 600, t: T0 },
        { user_id: "B", amount: 500, t: T0 + HOUR + 1 }, // B's 600 expired: no alert
        { user_id: "A", amount: 900, t: T0 + 40 * 60_000 },
      ]);
      await job.idle();
      await job.stop();
      assert.deepEqual(totals(await outputs(log, "spend_alerts")), ["A=1100"]);
    });
  });
});
