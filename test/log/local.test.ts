import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { appendFile, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import { isRunnelError } from "../../src/core/errors.js";
import { LOCK_FILE } from "../../src/log/local/dir-lock.js";
import type { RecoveryReport } from "../../src/log/local/index.js";
import { LocalEventLog } from "../../src/log/local/index.js";
import { decodeValue, readAll, record, runEventLogConformance } from "./conformance.js";
import { scrapeLogStats } from "./scrape.js";
import { encodeBatch } from "./segment-files.js";
import { tempLogs } from "./temp-logs.js";

runEventLogConformance("LocalEventLog", async () => {
  const dir = await mkdtemp(join(tmpdir(), "runnel-log-conf-"));
  let log = new LocalEventLog({ dir, segmentBytes: 16 * 1024 });
  await log.open();
  const harness = {
    get log() {
      return log;
    },
    async reopen() {
      await log.close();
      log = new LocalEventLog({ dir, segmentBytes: 16 * 1024 });
      await log.open();
      return log;
    },
    async cleanup() {
      await log.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return harness;
});

describe("LocalEventLog (local files)", () => {
  const { tempDir, openLog } = tempLogs("runnel-log-");

  const segment = (dir: string, stream: string, partition: number, base = 0) =>
    join(dir, stream, String(partition), `${String(base).padStart(20, "0")}.log`);

  async function valuesOf(log: LocalEventLog, stream: string, partition: number): Promise<unknown[]> {
    return (await readAll(log, stream, partition)).map(decodeValue);
  }

  test("truncates garbage after the last record and reports it", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 1 });
    await log.append("s", [record("k", 1, 1), record("k", 2, 2)]);
    await log.close();
    await appendFile(segment(dir, "s", 0), randomBytes(37));
    const reports: RecoveryReport[] = [];
    const reopened = await openLog({ dir, onRecovery: (r) => reports.push(r) });
    assert.deepEqual(
      reports.map((r) => [r.stream, r.partition, r.bytesTruncated, r.reason]),
      [["s", 0, 37, "torn_tail"]],
    );
    assert.deepEqual(reopened.recoveryReports(), reports, "kept for monitoring too");
    assert.equal(reopened.stats().recoveredTails, 1);
    assert.equal(reopened.stats().recoveredBytes, 37);
    const series = await scrapeLogStats(reopened, reopened.stats());
    assert.equal(series("runnel_log_recovery_truncated_bytes_total"), 37, "and in a metric");
    assert.deepEqual(await valuesOf(reopened, "s", 0), [1, 2]);
    const [pos] = await reopened.append("s", [record("k", 3, 3)]);
    assert.equal(pos!.offset, 2);
    assert.deepEqual(await valuesOf(reopened, "s", 0), [1, 2, 3]);
  });

  test("truncates a partially written last record", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 1 });
    await log.append("s", [record("k", 1, 1)]);
    await log.append("s", [record("k", 2, { big: "y".repeat(500) })]);
    await log.close();
    const { size } = await stat(segment(dir, "s", 0));
    await truncate(segment(dir, "s", 0), size - 100);
    const reports: RecoveryReport[] = [];
    const reopened = await openLog({ dir, onRecovery: (r) => reports.push(r) });
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.reason, "torn_tail");
    assert.deepEqual(await valuesOf(reopened, "s", 0), [1]);
    assert.deepEqual(await reopened.endOffsets("s"), [1]);
  });

  test("an append within one partition needs no commit file, and is dropped whole if its end is missing", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 1 });
    await log.append("s", [record("k", 1, 1)]);
    await log.append("s", [record("k", 2, 2), record("k", 3, 3), record("k", 4, { big: "z".repeat(300) })]);
    const syncs = log.stats().syncs;
    await log.append("s", [record("k", 5, 5)]);
    assert.equal(log.stats().syncs - syncs, 1, "one fdatasync: the partition's");
    await log.close();
    const reopened = await openLog({ dir });
    assert.deepEqual(await valuesOf(reopened, "s", 0), [1, 2, 3, { big: "z".repeat(300) }, 5]);
    await reopened.close();
    // Cut the last append away (its batch: 54 bytes of frame and fixed fields, 6 of record) and
    // tear the one before inside its last record: its first two records are whole, but the batch
    // is the unit, so the append goes whole.
    const { size } = await stat(segment(dir, "s", 0));
    await truncate(segment(dir, "s", 0), size - 60 - 200);
    const reports: RecoveryReport[] = [];
    const again = await openLog({ dir, onRecovery: (r) => reports.push(r) });
    assert.deepEqual(await valuesOf(again, "s", 0), [1]);
    assert.equal(reports.length, 1);
    const [pos] = await again.append("s", [record("k", 6, 6)]);
    assert.equal(pos!.offset, 1);
  });

  test("drops tail records of a group whose commit never became durable", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 1 });
    await log.append("s", [record("k", 1, 1)]);
    await log.close();
    // A whole, valid batch written under a commit sequence the commit file never reached.
    const value = new TextEncoder().encode("2");
    const buf = encodeBatch([{ key: "k", timestamp: 2, value }], { baseOffset: 1, ingestTime: 2, commitSeq: 99 });
    await appendFile(segment(dir, "s", 0), buf);
    const reports: RecoveryReport[] = [];
    const reopened = await openLog({ dir, onRecovery: (r) => reports.push(r) });
    assert.deepEqual(
      reports.map((r) => [r.bytesTruncated, r.reason]),
      [[buf.length, "uncommitted_batch"]],
    );
    assert.deepEqual(await valuesOf(reopened, "s", 0), [1]);
  });

  test("treats damage followed only by uncommitted records as a torn write", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 1 });
    await log.append("s", [record("k", 1, 1)]);
    await log.close();
    const value = new TextEncoder().encode("3");
    const buf = encodeBatch([{ key: "k", timestamp: 3, value }], { baseOffset: 2, ingestTime: 3, commitSeq: 99 });
    await appendFile(segment(dir, "s", 0), Buffer.concat([Buffer.alloc(64, 0xab), buf]));
    const reports: RecoveryReport[] = [];
    const reopened = await openLog({ dir, onRecovery: (r) => reports.push(r) });
    assert.deepEqual(
      reports.map((r) => r.reason),
      ["torn_tail"],
    );
    assert.deepEqual(await valuesOf(reopened, "s", 0), [1]);
  });

  test("refuses to open when a committed record in the middle of a segment is damaged", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 1 });
    await log.append("s", [record("k", 1, "first"), record("k", 2, "second"), record("k", 3, "third")]);
    // A later append proves the damaged one was acknowledged (only the last append can be torn).
    await log.append("s", [record("k", 4, "fourth")]);
    await log.close();
    const path = segment(dir, "s", 0);
    const bytes = await readFile(path);
    const at = bytes.indexOf("second");
    bytes[at] = bytes[at]! ^ 0xff;
    await writeFile(path, bytes);
    const reopened = new LocalEventLog({ dir });
    await assert.rejects(reopened.open(), (e: unknown) => {
      assert.ok(isRunnelError(e) && e.code === "storage_corrupt");
      assert.match(e.message, /00000000000000000000\.log at byte \d+/);
      return true;
    });
    // Nothing was truncated: the evidence stays for the operator.
    assert.equal((await readFile(path)).length, bytes.length);
  });

  test("rolls segments by size, persists sealed indexes and reads across segments", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir, segmentBytes: 2048 });
    await log.createStream("s", { partitions: 1 });
    for (let i = 0; i < 200; i += 10) {
      await log.append(
        "s",
        Array.from({ length: 10 }, (_, j) => record("k", 1000 + i + j, { n: i + j, pad: "p".repeat(40) })),
      );
    }
    const files = (await readdir(join(dir, "s", "0"))).sort();
    const logs = files.filter((f) => f.endsWith(".log"));
    assert.ok(logs.length >= 5, `expected several segments, got ${files}`);
    assert.equal(files.filter((f) => f.endsWith(".index")).length, logs.length - 1);
    assert.equal(files.filter((f) => f.endsWith(".timeindex")).length, logs.length - 1);
    const expected = Array.from({ length: 200 }, (_, n) => n);
    const check = async (l: LocalEventLog) => {
      assert.deepEqual(
        (await valuesOf(l, "s", 0)).map((v) => (v as { n: number }).n),
        expected,
      );
      const [r] = await l.read("s", 0, 123, { maxRecords: 1 });
      assert.equal((decodeValue(r!) as { n: number }).n, 123);
      assert.deepEqual(await l.offsetsForTime("s", 1000 + 150), [150]);
    };
    await check(log);
    await log.close();
    // Damaged persisted indexes are rebuilt, not trusted.
    await writeFile(join(dir, "s", "0", logs[1]!.replace(".log", ".index")), "garbage");
    await check(await openLog({ dir, segmentBytes: 2048 }));
  });

  test("rolls segments by age with an injected clock", async () => {
    const dir = await tempDir();
    const clock = new ManualClock(1_000_000);
    const log = await openLog({ dir, clock, segmentMaxAgeMs: 60_000 });
    await log.createStream("s", { partitions: 1 });
    await log.append("s", [record("k", 1, 1)]);
    clock.advance(30_000);
    await log.append("s", [record("k", 2, 2)]);
    assert.equal((await readdir(join(dir, "s", "0"))).filter((f) => f.endsWith(".log")).length, 1);
    clock.advance(30_000);
    await log.append("s", [record("k", 3, 3)]);
    assert.deepEqual((await readdir(join(dir, "s", "0"))).filter((f) => f.endsWith(".log")).sort(), [
      "00000000000000000000.log",
      "00000000000000000002.log",
    ]);
    const [r] = await log.read("s", 0, 2);
    assert.equal(r!.ingestTime, 1_060_000);
  });

  test("deletes whole expired segments by time and advances start offsets", async () => {
    const dir = await tempDir();
    const clock = new ManualClock(0);
    const log = await openLog({ dir, clock, segmentBytes: 1024 });
    await log.createStream("s", { partitions: 1, retentionMs: 10_000 });
    const batch = (from: number) =>
      Array.from({ length: 10 }, (_, i) => record("k", 0, { n: from + i, pad: "z".repeat(60) }));
    await log.append("s", batch(0));
    await log.append("s", batch(10));
    clock.advance(20_000);
    await log.append("s", batch(20));
    const expired = await Promise.all([0, 10].map(async (base) => (await stat(segment(dir, "s", 0, base))).size));
    const before = await log.enforceRetention();
    assert.equal(before.deletedSegments, 2);
    assert.equal(before.deletedBytes, expired[0]! + expired[1]!);
    assert.deepEqual(await log.startOffsets("s"), [20]);
    assert.deepEqual(
      (await log.read("s", 0, 0)).map((r) => r.offset),
      Array.from({ length: 10 }, (_, i) => 20 + i),
      "a read below the start offset begins at the start offset",
    );
    clock.advance(20_000);
    const all = await log.enforceRetention();
    assert.equal(all.deletedSegments, 1, "an expired active segment is rolled and deleted");
    assert.deepEqual(await log.startOffsets("s"), [30]);
    assert.deepEqual(await log.endOffsets("s"), [30]);
    const [pos] = await log.append("s", batch(30));
    assert.equal(pos!.offset, 30);
    await log.close();
    const reopened = await openLog({ dir, clock, segmentBytes: 1024 });
    assert.deepEqual(await reopened.startOffsets("s"), [30]);
    assert.deepEqual(await reopened.endOffsets("s"), [40]);
  });

  test("deletes the oldest segments beyond retentionBytes", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir, segmentBytes: 1024 });
    // Each append below is one segment of about 900 bytes: keep at least 1500 bytes, so two stay.
    await log.createStream("s", { partitions: 1, retentionBytes: 1500 });
    for (let b = 0; b < 5; b++) {
      await log.append(
        "s",
        Array.from({ length: 10 }, (_, i) => record("k", 0, { n: b * 10 + i, pad: "z".repeat(60) })),
      );
    }
    const result = await log.enforceRetention();
    assert.equal(result.deletedSegments, 3);
    assert.deepEqual(await log.startOffsets("s"), [30]);
    assert.deepEqual((await readdir(join(dir, "s", "0"))).filter((f) => f.endsWith(".log")).sort(), [
      "00000000000000000030.log",
      "00000000000000000040.log",
    ]);
    assert.deepEqual(await log.enforceRetention(), { deletedSegments: 0, deletedBytes: 0 });
  });

  test("group commit: concurrent appends share fdatasyncs", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 4 });
    const n = 400;
    const start = log.stats();
    const positions = await Promise.all(
      Array.from({ length: n }, (_, i) => log.append("s", [record(`user-${i}`, i, { i })])),
    );
    const stats = log.stats();
    const syncs = stats.syncs - start.syncs;
    const groups = stats.groups - start.groups;
    assert.equal(stats.appends - start.appends, n);
    // One sync per partition touched plus one commit-file sync per group.
    assert.ok(syncs <= groups * 5, `syncs ${syncs} for ${groups} groups`);
    assert.ok(syncs < n / 4, `expected far fewer than ${n} syncs, got ${syncs}`);
    const ends = await log.endOffsets("s");
    assert.equal(
      ends.reduce((a, b) => a + b, 0),
      n,
    );
    const seen = new Set(positions.map(([p]) => `${p!.partition}:${p!.offset}`));
    assert.equal(seen.size, n, "every append got its own position");
  });

  test("deleteStream removes the stream's files", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("gone", { partitions: 2 });
    await log.append("gone", [record("k", 1, 1)]);
    await log.deleteStream("gone");
    assert.deepEqual(await readdir(dir), [LOCK_FILE], "nothing but the directory's lock");
  });

  test("reads records larger than the read buffer", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 1 });
    const big = new Uint8Array(3 * 1024 * 1024).fill(7);
    await log.append("s", [record("k", 1, "a"), { key: "k", timestamp: 2, value: big }, record("k", 3, "c")]);
    const [r] = await log.read("s", 0, 1, { maxRecords: 1, maxBytes: 10 });
    assert.equal(r!.value.length, big.length);
    const all = await log.read("s", 0, 0, { maxBytes: 100 });
    assert.deepEqual(
      all.map((x) => x.offset),
      [0],
      "maxBytes is an upper bound once at least one record is returned",
    );
    await log.close();
    const reopened = await openLog({ dir });
    assert.deepEqual(
      (await reopened.read("s", 0, 0)).map((x) => x.value.length),
      [3, big.length, 3],
    );
  });

  test("rejects malformed input with invalid_input", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 2 });
    const invalid = (e: unknown) => isRunnelError(e) && e.code === "invalid_input";
    await assert.rejects(log.createStream("t", { partitions: 0 }), invalid);
    await assert.rejects(log.append("s", [{ key: "k", timestamp: Number.NaN, value: new Uint8Array() }]), invalid);
    await assert.rejects(log.read("s", 2, 0), invalid);
    await assert.rejects(log.read("s", 0, -1), invalid);
    await assert.rejects(log.commitOffsets("g", "s", new Map([[5, 1]])), invalid);
  });
});
