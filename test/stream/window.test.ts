import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import { flush, type Input, ingest, partitionOf, random, rows, windowLog, windowRunner } from "./window-harness.js";

const MIN = 60_000;
const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 0, 1);
const iso = (ms: number) => new Date(ms).toISOString();

const PER_MINUTE = `SELECT user_id, window_start, window_end, count(*) AS n, sum(amount) AS total
  FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`;

describe("tumbling windows", () => {
  it("emit once the watermark passes the end, owned by the group's user, at window_end - 1 ms", async () => {
    const log = await windowLog();
    const r = windowRunner(log, PER_MINUTE);
    await r.start();
    await ingest(log, [
      { user_id: "A", t: T0 + 1_000, amount: 10 },
      { user_id: "A", t: T0 + 59_999, amount: 5 },
      { user_id: "B", t: T0 + 2_000, amount: 1 },
    ]);
    await r.idle();
    assert.deepEqual(rows(log), [], "nothing fires before the watermark passes the window end");
    await ingest(log, flush(T0 + MIN));
    await r.idle();
    const out = rows(log).sort((a, b) => String(a.user_id).localeCompare(String(b.user_id)));
    assert.deepEqual(out, [
      {
        user_id: "A",
        window_start: iso(T0),
        window_end: iso(T0 + MIN),
        n: 2,
        total: 15,
        _key: "A",
        _time: T0 + MIN - 1,
      },
      {
        user_id: "B",
        window_start: iso(T0),
        window_end: iso(T0 + MIN),
        n: 1,
        total: 1,
        _key: "B",
        _time: T0 + MIN - 1,
      },
    ]);
    await r.stop();
  });

  it("belong to no user (key '') when the query does not group by user_id", async () => {
    const log = await windowLog();
    const r = windowRunner(
      log,
      `SELECT kind, count(*) AS n FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY kind`,
    );
    await r.start();
    await ingest(log, [{ user_id: "A", t: T0, kind: "x" }, { user_id: "B", t: T0 + 1, kind: "x" }, ...flush(T0 + MIN)]);
    await r.idle();
    const out = log.dump("out").filter((x) => (x.value as { kind?: string }).kind === "x");
    assert.equal(out.length, 1);
    assert.equal(out[0]?.key, "");
    assert.deepEqual(out[0]?.value, { kind: "x", n: 2 });
    await r.stop();
  });

  it("send events later than the allowed lateness to the late stream", async () => {
    const log = await windowLog();
    const r = windowRunner(log, PER_MINUTE);
    await r.start();
    await ingest(log, [{ user_id: "A", t: T0, amount: 1 }, ...flush(T0 + MIN)]);
    await r.idle();
    await ingest(log, [{ user_id: "A", t: T0 + 5, amount: 7 }]);
    await r.idle();
    assert.equal(rows(log).length, 1, "the closed window is not updated");
    const late = log.dump("out_late");
    assert.deepEqual(
      late.map((x) => [x.key, x.timestamp, x.value]),
      [["A", T0 + 5, { user_id: "A", amount: 7 }]],
    );
    assert.equal(r.stats().late, 1);
    await r.stop();
  });

  it("update results for events within the allowed lateness, then drop the window", async () => {
    const log = await windowLog();
    const r = windowRunner(log, PER_MINUTE, { allowedLateness: "30s" });
    await r.start();
    await ingest(log, [{ user_id: "A", t: T0, amount: 1 }, ...flush(T0 + MIN)]);
    await r.idle();
    await ingest(log, [{ user_id: "A", t: T0 + 5, amount: 7 }]);
    await r.idle();
    assert.deepEqual(
      rows(log).map((x) => [x.n, x.total]),
      [
        [1, 1],
        [2, 8],
      ],
    );
    // Past end + lateness the window is gone: the next straggler is late.
    await ingest(log, flush(T0 + MIN + 30_000));
    await ingest(log, [{ user_id: "A", t: T0 + 6, amount: 1 }]);
    await r.idle();
    assert.equal(rows(log).length, 2);
    assert.equal(log.dump("out_late").length, 1);
    const ids = new Set(log.dump("out").map((x) => x.offset));
    assert.equal(ids.size, log.dump("out").length);
    await r.stop();
  });
});

describe("watermarks", () => {
  it("hold time back to the slowest partition until it is idle (processing time, injected clock)", async () => {
    const log = await windowLog();
    const clock = new ManualClock(1_000);
    const r = windowRunner(log, PER_MINUTE, { idleTimeout: "10s" }, { clock });
    await r.start();
    const [fast] = ["A", "B", "C", "D", "E", "F"].filter((u) => partitionOf(u) === 0);
    const slow = ["A", "B", "C", "D", "E", "F", "G", "H"].find((u) => partitionOf(u) === 1) as string;
    await ingest(log, [
      { user_id: slow, t: T0, amount: 1 },
      { user_id: fast as string, t: T0, amount: 2 },
    ]);
    await r.idle();
    // Partition 0 moves on; partition 1 and 2 hold time back.
    await ingest(log, [{ user_id: fast as string, t: T0 + 5 * MIN, amount: 3 }]);
    await r.idle();
    assert.equal(rows(log).length, 0);
    clock.advance(9_000);
    await r.poke();
    assert.equal(rows(log).length, 0, "not idle yet");
    clock.advance(1_000);
    await ingest(log, [{ user_id: fast as string, t: T0 + 5 * MIN + 1, amount: 3 }]);
    await r.idle();
    assert.deepEqual(
      rows(log)
        .map((x) => x.user_id)
        .sort(),
      [fast, slow].sort(),
    );
    assert.equal(r.stats().watermark, T0 + 5 * MIN);
    await r.stop();
  });

  it("tolerate out-of-order events within the bound", async () => {
    const log = await windowLog();
    const r = windowRunner(log, PER_MINUTE, { outOfOrderness: "10s" });
    await r.start();
    await ingest(log, [
      { user_id: "A", t: T0 + MIN + 5_000, amount: 1 },
      { user_id: "A", t: T0 + MIN - 4_000, amount: 2 }, // 9 s behind the max: on time
      ...flush(T0 + 2 * MIN + 10_000),
    ]);
    await r.idle();
    assert.deepEqual(
      rows(log).map((x) => [x.window_start, x.n]),
      [
        [iso(T0), 1],
        [iso(T0 + MIN), 1],
      ],
    );
    assert.equal(log.dump("out_late").length, 0);
    await r.stop();
  });
});

describe("session windows", () => {
  it("merge events closer than the gap, per key", async () => {
    const log = await windowLog();
    const r = windowRunner(
      log,
      `SELECT user_id, window_start, window_end, count(*) AS n, first(amount) AS f, last(amount) AS l
       FROM SESSION(transactions, _time, INTERVAL '10 seconds') GROUP BY ALL`,
      { outOfOrderness: "1m" },
    );
    await r.start();
    await ingest(log, [
      { user_id: "A", t: T0, amount: 1 },
      { user_id: "A", t: T0 + 25_000, amount: 4 },
      { user_id: "A", t: T0 + 8_000, amount: 2 },
      { user_id: "A", t: T0 + 16_000, amount: 3 }, // bridges the first two sessions
      { user_id: "A", t: T0 + 60_000, amount: 5 },
      ...flush(T0 + 10 * MIN),
    ]);
    await r.idle();
    assert.deepEqual(
      rows(log).map((x) => [x.window_start, x.window_end, x.n, x.f, x.l]),
      [
        [iso(T0), iso(T0 + 35_000), 4, 1, 4],
        [iso(T0 + 60_000), iso(T0 + 70_000), 1, 5, 5],
      ],
    );
    await r.stop();
  });
});

/** The seed's aggregations, checked against a straightforward offline computation over random input. */
describe("seed aggregations against an offline computation", () => {
  const USERS = ["A", "B", "C", "D", "E", "F", "G"];
  function generate(seed: number, n: number, disorderMs: number): Input[] {
    const rnd = random(seed);
    const events: Input[] = [];
    for (let i = 0; i < n; i++) {
      // Arrival order follows t; each event's own time is up to `disorderMs` earlier, so no event
      // is further than the bound behind the maximum seen before it.
      const t = T0 + Math.floor((i * 3 * HOUR) / n) - Math.floor(rnd() * disorderMs);
      events.push({
        user_id: USERS[Math.floor(rnd() * USERS.length)] as string,
        t,
        data: Math.round(rnd() * 1000) / 10,
      });
    }
    return events;
  }

  function offline(events: readonly Input[], size: number, slide: number, agg: (xs: number[]) => number) {
    const groups = new Map<string, number[]>();
    for (const e of events) {
      const last = e.t - (e.t % slide);
      for (let start = last; start > e.t - size; start -= slide) {
        const k = `${e.user_id}|${start}`;
        const xs = groups.get(k) ?? [];
        xs.push(e.data as number);
        groups.set(k, xs);
      }
    }
    return new Map([...groups].map(([k, xs]) => [k, agg(xs)]));
  }

  const cases = [
    {
      name: "count of events for user A (tumbling 1 minute)",
      sql: `SELECT user_id, window_start, count(*) AS v FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`,
      size: MIN,
      slide: MIN,
      agg: (xs: number[]) => xs.length,
    },
    {
      name: "average of data for user A over the last hour (hopping 1 hour every 10 minutes)",
      sql: `SELECT user_id, window_start, avg(data) AS v FROM HOP(transactions, _time, INTERVAL '10 minutes', INTERVAL '1 hour') GROUP BY ALL`,
      size: HOUR,
      slide: 10 * MIN,
      agg: (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length,
    },
    {
      name: "sum for user A in the last 24 hours (hopping 24 hours every hour)",
      sql: `SELECT user_id, window_start, sum(data) AS v FROM HOP(transactions, _time, INTERVAL '1' HOUR, INTERVAL '24' HOUR) GROUP BY user_id, window_start, window_end`,
      size: 24 * HOUR,
      slide: HOUR,
      agg: (xs: number[]) => xs.reduce((a, b) => a + b, 0),
    },
  ];
  for (const c of cases) {
    for (const disorder of [0, 30_000]) {
      it(`${c.name}, ${disorder === 0 ? "in order" : "out of order within the bound"}`, async () => {
        const events = generate(disorder + c.size, 2_000, disorder);
        const log = await windowLog();
        const r = windowRunner(log, c.sql, { outOfOrderness: disorder }, { chunkSize: 97 });
        await r.start();
        for (let i = 0; i < events.length; i += 250) await ingest(log, events.slice(i, i + 250));
        await ingest(log, flush(T0 + 30 * 24 * HOUR));
        await r.idle();
        await r.stop();
        const expected = offline(events, c.size, c.slide, c.agg);
        const got = new Map<string, number>();
        for (const row of rows(log)) {
          const k = `${row.user_id}|${Date.parse(String(row.window_start))}`;
          assert.ok(!got.has(k), `one result per window: ${k}`);
          got.set(k, row.v as number);
          assert.equal(row._key, row.user_id);
        }
        assert.equal(got.size, expected.size);
        for (const [k, v] of expected) {
          const g = got.get(k);
          assert.ok(g !== undefined && Math.abs(g - v) < 1e-6 * Math.max(1, Math.abs(v)), `${k}: ${g} ≠ ${v}`);
        }
        assert.equal(log.dump("out_late").length, 0);
      });
    }
  }
});

describe("checkpoints", () => {
  it("resume after a restart without duplicates and with state intact", async () => {
    const log = await windowLog();
    const checkpoints = new MemoryCheckpointStore();
    let r = windowRunner(log, PER_MINUTE, {}, { checkpoints });
    await r.start();
    await ingest(log, [
      { user_id: "A", t: T0, amount: 1 },
      { user_id: "A", t: T0 + MIN, amount: 2 },
    ]);
    await r.idle();
    await r.stop();
    r = windowRunner(log, PER_MINUTE, {}, { checkpoints });
    await r.start();
    await ingest(log, [{ user_id: "A", t: T0 + MIN + 1, amount: 3 }, ...flush(T0 + 10 * MIN)]);
    await r.idle();
    await r.stop();
    assert.deepEqual(
      rows(log).map((x) => [x.window_start, x.n, x.total]),
      [
        [iso(T0), 1, 1],
        [iso(T0 + MIN), 2, 5],
      ],
    );
  });

  it("after a failed write, restore the last checkpoint and write each result once", async () => {
    const log = await windowLog();
    const checkpoints = new MemoryCheckpointStore();
    const r = windowRunner(log, PER_MINUTE, { checkpointInterval: "1h" }, { checkpoints, chunkSize: 3 });
    const events: Input[] = [];
    for (let i = 0; i < 60; i++)
      events.push({ user_id: ["A", "B", "C"][i % 3] as string, t: T0 + i * 20_000, amount: i });
    await ingest(log, events);
    await ingest(log, flush(T0 + HOUR));
    // The second write of results fails after the first landed: the runner restores the checkpoint and replays.
    log.failNext("append", { after: 1 });
    await r.start();
    for (let i = 0; i < 50 && (r.stats().failures === 0 || r.stats().lag > 0); i++) {
      await new Promise((res) => setTimeout(res, 5));
      await r.idle();
    }
    await new Promise((res) => setTimeout(res, 20));
    await r.idle();
    assert.ok(r.stats().failures >= 1);
    const out = rows(log);
    const keys = out.map((x) => `${x.user_id}|${x.window_start}`);
    assert.equal(new Set(keys).size, keys.length, "no duplicates");
    assert.equal(out.length, 3 * 20, "none missing");
    await r.stop();
  });
});
