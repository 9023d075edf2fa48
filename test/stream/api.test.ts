/** The package entry's job API, run as its doc comment shows, over the real local log. */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { count, LocalEventLog, max, stream, sum, tumbling } from "../../src/index.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const T0 = Date.UTC(2024, 0, 1);

async function withLog(body: (log: LocalEventLog) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "runnel-api-"));
  const log = new LocalEventLog({ dir: join(dir, "log") });
  await log.open();
  try {
    await body(log);
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function append(log: LocalEventLog, events: { user_id: string; amount: number; t: number }[]) {
  await log.append(
    "transactions",
    events.map(({ t, ...v }) => ({ key: v.user_id, timestamp: t, value: encoder.encode(JSON.stringify(v)) })),
  );
}

async function values(log: LocalEventLog, name: string): Promise<{ key: string; value: unknown }[]> {
  const records = await log.read(name, 0, 0, { maxRecords: 1000 });
  return records.map((r) => ({ key: r.key, value: JSON.parse(decoder.decode(r.value)) }));
}

describe("TypeScript job API", () => {
  it("runs the doc example: filter → keyBy(user_id) → tumbling window → count and sum", async () => {
    await withLog(async (log) => {
      await log.createStream("transactions", { partitions: 1 });
      await log.createStream("per_minute", { partitions: 1 });
      const job = stream<{ user_id: string; amount: number }>(log, "transactions")
        .filter((t) => t.amount > 0)
        .keyBy("user_id")
        .window(tumbling(60_000))
        .aggregate({ n: count(), total: sum((t) => t.amount), top: max((t) => t.amount) })
        .to("per_minute", { options: { outOfOrderness: "5s", idleTimeout: 0 } });
      await job.start();
      await append(log, [
        { user_id: "A", amount: 3, t: T0 + 1 },
        { user_id: "A", amount: -1, t: T0 + 2 },
        { user_id: "A", amount: 4, t: T0 + 3 },
        { user_id: "B", amount: 1, t: T0 + 70_000 },
      ]);
      await job.idle();
      await job.stop();
      assert.deepEqual(await values(log, "per_minute"), [
        {
          key: "A",
          value: {
            key: "A",
            window_start: new Date(T0).toISOString(),
            window_end: new Date(T0 + 60_000).toISOString(),
            n: 2,
            total: 7,
            top: 4,
          },
        },
      ]);
    });
  });

  it("runs stateless chains: map and flatMap keep key and event time", async () => {
    await withLog(async (log) => {
      await log.createStream("transactions", { partitions: 1 });
      await log.createStream("doubled", { partitions: 1 });
      const job = stream<{ user_id: string; amount: number }>(log, "transactions")
        .map((t) => ({ user_id: t.user_id, amount: t.amount * 2 }))
        .flatMap((t) => (t.amount > 4 ? [t, t] : [t]))
        .to("doubled");
      await job.start();
      await append(log, [
        { user_id: "A", amount: 1, t: T0 },
        { user_id: "A", amount: 3, t: T0 + 1 },
      ]);
      await job.idle();
      await job.stop();
      const out = await values(log, "doubled");
      assert.deepEqual(
        out.map((o) => (o.value as { amount: number }).amount),
        [2, 6, 6],
      );
    });
  });
});
