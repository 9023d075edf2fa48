/** Enrichment (lookup join) against a table through an LRU+TTL cache; time is a ManualClock. */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { ControlStore } from "../../src/control/types.js";
import { ManualClock } from "../../src/core/clock.js";
import {
  CachedLookup,
  LocalEventLog,
  type LookupRow,
  type LookupTable,
  LruTtlCache,
  stream,
  tumbling,
  userSettingsTable,
} from "../../src/index.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A table that counts its reads. */
function countingTable(rows: Record<string, LookupRow>): LookupTable & { reads: string[] } {
  const reads: string[] = [];
  return {
    name: "t",
    reads,
    get: async (key) => {
      reads.push(key);
      return rows[key];
    },
  };
}

describe("LRU+TTL cache", () => {
  it("expires entries after the TTL of the injected clock", () => {
    const clock = new ManualClock(1_000);
    const c = new LruTtlCache({ maxRows: 10, ttlMs: 500, clock });
    c.put("a", { x: 1 });
    c.put("miss", undefined);
    clock.advance(499);
    assert.deepEqual(c.lookup("a")?.row, { x: 1 });
    assert.ok(c.lookup("miss") !== undefined, "a miss is cached too");
    clock.advance(1);
    assert.equal(c.lookup("a"), undefined);
    assert.equal(c.size, 1);
  });

  it("evicts the least recently used row beyond maxRows", () => {
    const c = new LruTtlCache({ maxRows: 2, ttlMs: 1_000, clock: new ManualClock(0) });
    c.put("a", { v: "a" });
    c.put("b", { v: "b" });
    c.lookup("a"); // a is now more recent than b
    c.put("c", { v: "c" });
    assert.equal(c.lookup("b"), undefined);
    assert.ok(c.lookup("a") !== undefined && c.lookup("c") !== undefined);
  });

  it("refuses nonsense sizes with a RunnelError", () => {
    assert.throws(() => new LruTtlCache({ maxRows: 0 }), /maxRows/);
  });
});

describe("CachedLookup", () => {
  it("reads each distinct missing key once per chunk and serves hits from the cache until the TTL", async () => {
    const clock = new ManualClock(0);
    const table = countingTable({ A: { tier: "gold" }, B: { tier: "free" } });
    const l = new CachedLookup(table, { ttlMs: 1_000, clock });
    await l.prefetch(["A", "A", "B", "C", "A"]);
    assert.deepEqual(table.reads.sort(), ["A", "B", "C"]);
    assert.deepEqual(l.get("A"), { tier: "gold" });
    assert.equal(l.get("C"), undefined);
    await l.prefetch(["A", "B"]);
    assert.equal(table.reads.length, 3, "hits do not read the table");
    clock.advance(1_000);
    await l.prefetch(["A"]);
    assert.deepEqual(table.reads.slice(3), ["A"], "an expired row is read again");
    assert.deepEqual([l.cache.hits, l.cache.misses], [2, 4]);
  });

  it("reads the control plane's per-user settings through a ControlStore", async () => {
    const settings: Record<string, Record<string, unknown>> = { u1: { currency: "EUR" } };
    const store = { getSettings: async (id: string) => settings[id] ?? {} } as unknown as ControlStore;
    const l = new CachedLookup(userSettingsTable(store), { clock: new ManualClock(0) });
    await l.prefetch(["u1", "u2"]);
    assert.deepEqual(l.get("u1"), { currency: "EUR" });
    assert.equal(l.get("u2"), undefined, "no settings: no row");
  });
});

describe("lookup() in the job API", () => {
  it("enriches each event with its user's row (left join by default, inner drops misses), over the real log", async () => {
    const dir = await mkdtemp(join(tmpdir(), "runnel-lookup-"));
    const log = new LocalEventLog({ dir: join(dir, "log") });
    await log.open();
    try {
      await log.createStream("transactions", { partitions: 1 });
      await log.createStream("enriched", { partitions: 1 });
      await log.createStream("known", { partitions: 1 });
      const clock = new ManualClock(0);
      const table = countingTable({ A: { tier: "gold" } });
      const profiles = new CachedLookup(table, { ttlMs: 60_000, clock });
      const left = stream<{ user_id: string; amount: number }>(log, "transactions")
        .lookup(profiles, { as: "profile" })
        .map((v) => ({ user_id: v.user_id, amount: v.amount, tier: v.profile?.tier ?? "none" }))
        .to("enriched", { clock });
      const inner = stream<{ user_id: string; amount: number }>(log, "transactions")
        .lookup(profiles, { as: "profile", join: "inner" })
        .to("known", { name: "known", clock });
      await left.start();
      await log.append(
        "transactions",
        [
          { user_id: "A", amount: 1 },
          { user_id: "B", amount: 2 },
          { user_id: "A", amount: 3 },
        ].map((v) => ({ key: v.user_id, timestamp: 1, value: encoder.encode(JSON.stringify(v)) })),
      );
      await left.idle();
      // The second job starts once the first is done, so the shared cache's effect is deterministic.
      await inner.start();
      await inner.idle();
      await left.stop();
      await inner.stop();
      const read = async (s: string) =>
        (await log.read(s, 0, 0, { maxRecords: 100 })).map((r) => JSON.parse(decoder.decode(r.value)));
      assert.deepEqual(await read("enriched"), [
        { user_id: "A", amount: 1, tier: "gold" },
        { user_id: "B", amount: 2, tier: "none" },
        { user_id: "A", amount: 3, tier: "gold" },
      ]);
      assert.deepEqual(await read("known"), [
        { user_id: "A", amount: 1, profile: { tier: "gold" } },
        { user_id: "A", amount: 3, profile: { tier: "gold" } },
      ]);
      assert.equal(table.reads.length, 2, "two jobs sharing one cache read A and B once in all");
      assert.throws(
        () =>
          stream<{ user_id: string; amount: number }>(log, "transactions")
            .lookup(profiles, { as: "p" })
            .keyBy("user_id")
            .window(tumbling(60_000)),
        /not supported before a window/,
      );
    } finally {
      await log.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
