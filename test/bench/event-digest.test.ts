import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { DuckDBInstance } from "@duckdb/node-api";
import {
  type BenchEvent,
  benchEventOf,
  digestOfLog,
  digestOfTable,
  EventDigest,
} from "../../bench/lib/event-digest.js";
import { LocalEventLog } from "../../src/log/local/local-event-log.js";
import { partitionForKey } from "../../src/log/types.js";

const PARTITIONS = 4;

function events(count: number): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, n) => ({
    user_id: `user_${n % 37}`,
    event_type: n % 5 === 0 ? "purchase" : "view",
    amount: (n % 10_000) / 100,
    page: `/p/${n % 13}`,
    ts: 1_764_000_000_000 + n,
  }));
}

function digestOf(sent: readonly Record<string, unknown>[]): EventDigest {
  const digest = new EventDigest();
  for (const e of sent) digest.add(benchEventOf(partitionForKey(e.user_id as string, PARTITIONS), e));
  return digest;
}

async function logWith(dir: string, stream: string, sent: readonly Record<string, unknown>[]): Promise<LocalEventLog> {
  const log = new LocalEventLog({ dir });
  await log.open();
  await log.createStream(stream, { partitions: PARTITIONS });
  const encoder = new TextEncoder();
  await log.append(
    stream,
    sent.map((e) => ({ key: e.user_id as string, timestamp: 0, value: encoder.encode(JSON.stringify(e)) })),
  );
  return log;
}

test("the digest is order-independent, counts duplicates, and changes with any one field", () => {
  const a: BenchEvent = { partition: 1, user_id: "u", event_type: "view", amount: 1.5, page: "/p", ts: 7 };
  const b: BenchEvent = { ...a, page: "/q" };
  const ab = new EventDigest();
  ab.add(a);
  ab.add(b);
  const ba = new EventDigest();
  ba.add(b);
  ba.add(a);
  assert.ok(ab.equals(ba));
  // A number from JSON and a bigint from DuckDB's BIGINT hash alike.
  const big = new EventDigest();
  big.add(b);
  big.add({ ...a, ts: 7n });
  assert.ok(ab.equals(big));
  // a twice and b not at all: same count, different digest (a xor would cancel the pair).
  const aa = new EventDigest();
  aa.add(a);
  aa.add(a);
  assert.equal(aa.count, ab.count);
  assert.ok(!aa.equals(ab));
  for (const changed of [
    { partition: 2 },
    { user_id: "v" },
    { event_type: "purchase" },
    { amount: 1.51 },
    { page: "/r" },
    { ts: 8 },
  ]) {
    const d = new EventDigest();
    d.add({ ...a, ...changed });
    d.add(b);
    assert.ok(!d.equals(ab), `changing ${Object.keys(changed)[0]} must change the digest`);
  }
  const summed = new EventDigest();
  summed.addDigest(ab);
  summed.addDigest(ab);
  const twice = new EventDigest();
  for (const e of [a, b, a, b]) twice.add(e);
  assert.ok(summed.equals(twice));
});

test("the log's read-back matches what was sent, and a corrupted record in the log fails it", async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-digest-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const sent = events(5_000);
  const log = await logWith(join(dir, "good"), "s", sent);
  t.after(() => log.close());
  const read = await digestOfLog(log, "s");
  assert.equal(read.count, sent.length);
  assert.ok(read.equals(digestOf(sent)), `${read} vs ${digestOf(sent)}`);

  const corrupted = sent.map((e, i) => (i === 1234 ? { ...e, amount: (e.amount as number) + 0.01 } : e));
  const bad = await logWith(join(dir, "bad"), "s", corrupted);
  t.after(() => bad.close());
  const badRead = await digestOfLog(bad, "s");
  assert.equal(badRead.count, sent.length);
  assert.ok(!badRead.equals(digestOf(sent)));
});

test("the table's read-back matches what was sent, and a corrupted, misplaced or swapped row fails it", async (t) => {
  const instance = await DuckDBInstance.create(":memory:");
  const c = await instance.connect();
  t.after(() => {
    c.closeSync();
    instance.closeSync();
  });
  const sent = events(5_000);
  await c.run(
    `CREATE TABLE t ("_partition" INTEGER, "_offset" BIGINT, user_id VARCHAR, event_type VARCHAR, amount DOUBLE, page VARCHAR, ts BIGINT)`,
  );
  const appender = await c.createAppender("t");
  sent.forEach((e, i) => {
    appender.appendInteger(partitionForKey(e.user_id as string, PARTITIONS));
    appender.appendBigInt(BigInt(i));
    appender.appendVarchar(e.user_id as string);
    appender.appendVarchar(e.event_type as string);
    appender.appendDouble(e.amount as number);
    appender.appendVarchar(e.page as string);
    appender.appendBigInt(BigInt(e.ts as number));
    appender.endRow();
  });
  appender.closeSync();
  const expected = digestOf(sent);
  assert.ok((await digestOfTable(c, "t")).equals(expected));

  const corruptions = [
    "UPDATE c SET amount = amount + 0.01 WHERE _offset = 42",
    "UPDATE c SET page = '/x' WHERE _offset = 7",
    "UPDATE c SET ts = ts + 1 WHERE _offset = 8",
    `UPDATE c SET "_partition" = ("_partition" + 1) % 4 WHERE _offset = 9`,
    // One row lost and another doubled: the count alone would not see it.
    "DELETE FROM c WHERE _offset = 100; INSERT INTO c SELECT * FROM c WHERE _offset = 101",
  ];
  for (const corrupt of corruptions) {
    await c.run("CREATE OR REPLACE TABLE c AS SELECT * FROM t");
    assert.ok((await digestOfTable(c, "c")).equals(expected));
    await c.run(corrupt);
    const read = await digestOfTable(c, "c");
    assert.equal(read.count, sent.length);
    assert.ok(!read.equals(expected), `${corrupt} must fail the check`);
  }
});
