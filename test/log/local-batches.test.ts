/**
 * The local log's record batches at the level of files: segments written before batches existed
 * (magic 1, test/log/fixtures/v1-log, written by commit 9ac591c), segments holding both formats,
 * recovery cutting a batch whole, reads and time lookups landing in the middle of a batch, batches
 * cut at MAX_BATCH_BYTES, and a group whose batches decide a segment roll.
 */
import assert from "node:assert/strict";
import { cp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import { isRunnelError } from "../../src/core/errors.js";
import { BATCH_OVERHEAD, MAX_BATCH_BYTES } from "../../src/log/local/batch.js";
import type { Entry } from "../../src/log/local/entry.js";
import { decodeEntry } from "../../src/log/local/entry.js";
import type { RecoveryReport } from "../../src/log/local/index.js";
import { LocalEventLog } from "../../src/log/local/index.js";
import { ATTR_APPEND_END, ATTR_SELF_COMMIT } from "../../src/log/local/record.js";
import type { AppendRecord, LogRecord } from "../../src/log/types.js";
import { keysPerPartition, readAll, record } from "./conformance.js";
import { encodeBatch, encodeV1Record } from "./segment-files.js";
import { tempLogs } from "./temp-logs.js";

const FIXTURE = join(import.meta.dirname, "fixtures", "v1-log");
const encoder = new TextEncoder();

interface FixtureRecord {
  partition: number;
  offset: number;
  key: string;
  timestamp: number;
  ingestTime: number;
  value: string;
  headers?: Record<string, string>;
}

function plain(r: LogRecord): FixtureRecord {
  return {
    partition: r.partition,
    offset: r.offset,
    key: r.key,
    timestamp: r.timestamp,
    ingestTime: r.ingestTime,
    value: Buffer.from(r.value).toString("base64"),
    ...(r.headers !== undefined && { headers: { ...r.headers } }),
  };
}

/** Every entry of a segment file, in order; fails on anything that does not decode. */
async function entriesOf(path: string): Promise<Entry[]> {
  const buf = await readFile(path);
  const out: Entry[] = [];
  for (let at = 0; at < buf.length; ) {
    const e = decodeEntry(buf, at, buf.length);
    assert.ok(typeof e !== "string", `${path} at byte ${at}: ${String(e)}`);
    out.push(e);
    at += e.size;
  }
  return out;
}

const event = (i: number, key = `user-${i % 7}`): AppendRecord => ({
  key,
  timestamp: 1_700_000_000_000 + i,
  value: encoder.encode(JSON.stringify({ user_id: key, type: "page_view", page: `/p/${i % 997}`, n: i })),
});

describe("LocalEventLog record batches", () => {
  const { tempDir, openLog } = tempLogs("runnel-log-batch-");

  const partitionDir = (dir: string, stream: string, partition: number) => join(dir, stream, String(partition));
  const segment = (dir: string, stream: string, partition: number, base = 0) =>
    join(partitionDir(dir, stream, partition), `${String(base).padStart(20, "0")}.log`);

  /** Reopens the log at `dir`, with what recovery cut from it: [bytes truncated, reason] per report. */
  async function reopen(dir: string): Promise<{ reopened: LocalEventLog; cuts: Array<[number, string]> }> {
    const reports: RecoveryReport[] = [];
    const reopened = await openLog({ dir, onRecovery: (r) => reports.push(r) });
    return { reopened, cuts: reports.map((r) => [r.bytesTruncated, r.reason]) };
  }

  /**
   * A closed log of one partition holding one record (value `first`), then one append of 2000
   * events that spans several batches; with the entries of its segment.
   */
  async function endingInOneLongAppend(first: string): Promise<{ dir: string; entries: Entry[] }> {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 1 });
    await log.append("s", [record("k", 1, first)]);
    await log.append(
      "s",
      Array.from({ length: 2000 }, (_, i) => event(i, "user-1")),
    );
    await log.close();
    return { dir, entries: await entriesOf(segment(dir, "s", 0)) };
  }

  async function logFiles(dir: string, stream: string, partition: number): Promise<string[]> {
    return (await readdir(partitionDir(dir, stream, partition))).filter((f) => f.endsWith(".log")).sort();
  }

  async function copyFixture(): Promise<{ dir: string; expected: { endOffsets: number[]; records: FixtureRecord[] } }> {
    const dir = await tempDir();
    await cp(join(FIXTURE, "log"), dir, { recursive: true });
    const expected = JSON.parse(await readFile(join(FIXTURE, "expected.json"), "utf8")) as {
      endOffsets: number[];
      records: FixtureRecord[];
    };
    return { dir, expected };
  }

  async function everything(log: LocalEventLog, stream: string, partitions: number): Promise<FixtureRecord[]> {
    const out: FixtureRecord[] = [];
    for (let p = 0; p < partitions; p++) out.push(...(await readAll(log, stream, p)).map(plain));
    return out;
  }

  test("reads a log written in the per-record format exactly as its writer did", async () => {
    const { dir, expected } = await copyFixture();
    const reports: RecoveryReport[] = [];
    const log = await openLog({ dir, segmentBytes: 1024, onRecovery: (r) => reports.push(r) });
    assert.deepEqual(reports, [], "an old log needs no repair");
    assert.deepEqual(await log.endOffsets("legacy"), expected.endOffsets);
    assert.deepEqual(await everything(log, "legacy", 2), expected.records);
    assert.deepEqual(
      await log.committedOffsets("g1", "legacy"),
      new Map([
        [0, 3],
        [1, 2],
      ]),
    );
    // Reads from every offset, one record at a time, through the sealed segments' old indexes.
    for (const r of expected.records.filter((x) => x.partition === 0)) {
      const [got] = await log.read("legacy", 0, r.offset, { maxRecords: 1 });
      assert.deepEqual(plain(got!), r);
    }
    const times = [...new Set(expected.records.map((r) => r.timestamp))].sort((a, b) => a - b);
    for (const t of [times[0]! - 1, ...times, times[times.length - 1]! + 1]) {
      const want = [0, 1].map((p) => {
        const hit = expected.records.find((r) => r.partition === p && r.timestamp >= t);
        return hit === undefined ? expected.endOffsets[p]! : hit.offset;
      });
      assert.deepEqual(await log.offsetsForTime("legacy", t), want, `time ${t}`);
    }
  });

  test("appends batches after old records, and reads, reopens and rescans the mixed segments", async () => {
    const { dir, expected } = await copyFixture();
    // The fixture's clock, so its segments are not rolled for age.
    const clock = new ManualClock(1_700_000_100_000);
    let log = await openLog({ dir, clock, segmentBytes: 4096 });
    const [k0, k1] = keysPerPartition(2);
    const added = Array.from({ length: 40 }, (_, i) => event(i, i % 2 === 0 ? k0 : k1));
    await log.append("legacy", added);
    await log.close();
    // Both partitions' active segments now start with magic-1 records and end with batches.
    for (const p of [0, 1]) {
      const files = await logFiles(dir, "legacy", p);
      const active = await entriesOf(join(partitionDir(dir, "legacy", p), files[files.length - 1]!));
      const legacy = active.filter((e) => e.legacy !== undefined).length;
      assert.ok(legacy > 0 && legacy < active.length, `partition ${p}: ${legacy} of ${active.length} old`);
      assert.ok(
        active.slice(0, legacy).every((e) => e.legacy !== undefined),
        "old records come first",
      );
    }
    // Index files are a cache: without them every segment is rescanned, old format included.
    for (const p of [0, 1]) {
      for (const f of await readdir(partitionDir(dir, "legacy", p))) {
        if (!f.endsWith(".log")) await rm(join(partitionDir(dir, "legacy", p), f));
      }
    }
    log = await openLog({ dir, clock, segmentBytes: 4096 });
    const all = await everything(log, "legacy", 2);
    assert.deepEqual(
      all.filter((r) => expected.records.some((x) => x.partition === r.partition && x.offset === r.offset)),
      expected.records,
    );
    const mine = all.filter((r) => !expected.records.some((x) => x.partition === r.partition && x.offset === r.offset));
    assert.deepEqual(
      mine.map((r) => [r.key, r.timestamp, r.value]),
      [...added.filter((r) => r.key === k0), ...added.filter((r) => r.key === k1)].map((r) => [
        r.key,
        r.timestamp,
        Buffer.from(r.value).toString("base64"),
      ]),
    );
    const ends = await log.endOffsets("legacy");
    assert.equal(ends[0]! + ends[1]!, expected.records.length + added.length);
  });

  test("retention deletes old-format segments whole", async () => {
    const { dir, expected } = await copyFixture();
    const log = await openLog({ dir, segmentBytes: 1024 });
    // A batch in partition 0's old-format active segment, then keep only the last segment.
    const [k0] = keysPerPartition(2);
    await log.append("legacy", [event(1, k0)]);
    const files = await logFiles(dir, "legacy", 0);
    assert.ok(files.length >= 3, `segments ${files}`);
    await log.createStream("legacy", { partitions: 2, retentionBytes: 1 });
    const result = await log.enforceRetention();
    assert.equal(result.deletedSegments, files.length - 1);
    const start = Number(files[files.length - 1]!.slice(0, 20));
    assert.deepEqual((await log.startOffsets("legacy"))[0], start);
    assert.deepEqual(
      (await readAll(log, "legacy", 0)).map((r) => r.offset),
      expected.records
        .filter((r) => r.partition === 0 && r.offset >= start)
        .map((r) => r.offset)
        .concat(expected.endOffsets[0]!),
    );
  });

  test("recovery truncates a torn batch whole after old records and reports it", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 1 });
    await log.close();
    const v = (n: number) => encoder.encode(String(n));
    const old = [0, 1, 2].map((o) =>
      encodeV1Record({
        offset: o,
        timestamp: o,
        ingestTime: 5,
        commitSeq: 1,
        key: "k",
        value: v(o),
        flags: ATTR_SELF_COMMIT | (o === 2 ? ATTR_APPEND_END : 0),
      }),
    );
    const batch = encodeBatch(
      [3, 4, 5].map((n) => ({ key: "k", timestamp: n, value: v(n) })),
      { baseOffset: 3, ingestTime: 6, commitSeq: 2, attributes: ATTR_SELF_COMMIT | ATTR_APPEND_END },
    );
    const torn = encodeBatch(
      [6, 7, 8, 9].map((n) => ({ key: "k", timestamp: n, value: v(n) })),
      { baseOffset: 6, ingestTime: 7, commitSeq: 3, attributes: ATTR_SELF_COMMIT | ATTR_APPEND_END },
    );
    // The torn batch's first three records are whole on disk; only its last is cut.
    const kept = torn.length - 2;
    await writeFile(segment(dir, "s", 0), Buffer.concat([...old, batch, torn.subarray(0, kept)]));
    const { reopened, cuts } = await reopen(dir);
    assert.deepEqual(cuts, [[kept, "torn_tail"]]);
    assert.deepEqual(
      (await readAll(reopened, "s", 0)).map((r) => [r.offset, r.key, r.timestamp, Buffer.from(r.value).toString()]),
      [0, 1, 2, 3, 4, 5].map((n) => [n, "k", n, String(n)]),
    );
    const [pos] = await reopened.append("s", [record("k", 6, "again")]);
    assert.equal(pos!.offset, 6);
  });

  test("a damaged old record followed by batches in a mixed segment refuses to open", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 1 });
    await log.close();
    const old = [0, 1, 2].map((o) =>
      encodeV1Record({
        offset: o,
        timestamp: o,
        ingestTime: 5,
        commitSeq: 1,
        key: "k",
        value: encoder.encode(`old-${o}`),
        flags: ATTR_SELF_COMMIT | (o === 2 ? ATTR_APPEND_END : 0),
      }),
    );
    const batch = encodeBatch([{ key: "k", timestamp: 3, value: encoder.encode("new") }], {
      baseOffset: 3,
      ingestTime: 6,
      commitSeq: 2,
      attributes: ATTR_SELF_COMMIT | ATTR_APPEND_END,
    });
    const file = Buffer.concat([...old, batch]);
    const at = file.indexOf("old-1");
    file[at] = file[at]! ^ 0x01;
    await writeFile(segment(dir, "s", 0), file);
    await assert.rejects(new LocalEventLog({ dir }).open(), (e: unknown) => {
      assert.ok(isRunnelError(e) && e.code === "storage_corrupt");
      assert.match(e.message, new RegExp(`at byte ${old[0]!.length}: bad_crc followed by a committed record`));
      return true;
    });
  });

  test("a flipped bit in the last batch truncates that batch whole; in an earlier one, open refuses", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 1 });
    await log.append(
      "s",
      Array.from({ length: 30 }, (_, i) => record("k", i, { i, name: "first-append" })),
    );
    const { size: firstEnd } = await stat(segment(dir, "s", 0));
    await log.append(
      "s",
      Array.from({ length: 30 }, (_, i) => record("k", 100 + i, { i, name: "last-append" })),
    );
    await log.close();
    const bytes = await readFile(segment(dir, "s", 0));
    const lastSize = bytes.length - firstEnd;

    const damagedLast = Buffer.from(bytes);
    const at = damagedLast.indexOf("last-append", firstEnd + 200);
    damagedLast[at] = damagedLast[at]! ^ 0x01;
    await writeFile(segment(dir, "s", 0), damagedLast);
    const { reopened, cuts } = await reopen(dir);
    assert.deepEqual(cuts, [[lastSize, "torn_tail"]]);
    assert.deepEqual(
      (await readAll(reopened, "s", 0)).map((r) => r.offset),
      Array.from({ length: 30 }, (_, i) => i),
    );
    await reopened.close();

    const damagedFirst = Buffer.from(bytes);
    const inFirst = damagedFirst.indexOf("first-append", 500);
    assert.ok(inFirst < firstEnd);
    damagedFirst[inFirst] = damagedFirst[inFirst]! ^ 0x01;
    await writeFile(segment(dir, "s", 0), damagedFirst);
    await assert.rejects(new LocalEventLog({ dir }).open(), (e: unknown) => {
      assert.ok(isRunnelError(e) && e.code === "storage_corrupt");
      assert.match(e.message, /at byte 0: bad_crc followed by a committed record/);
      return true;
    });
    assert.equal((await readFile(segment(dir, "s", 0))).length, bytes.length, "the evidence stays");
  });

  test("damage inside the last group, followed only by that group's batches, is a torn write", async () => {
    const { dir, entries } = await endingInOneLongAppend("kept");
    const bytes = await readFile(segment(dir, "s", 0));
    assert.ok(entries.length >= 4, "the last group spans several batches");
    const middle = entries[2]!;
    // A page of the group that never reached the disk: zeros (the batch's fixed fields are gone
    // too), or a bit flipped in its records (the fixed fields still name the group).
    const lostPage = Buffer.from(bytes);
    lostPage.fill(0, middle.position, middle.position + 4096);
    const flipped = Buffer.from(bytes);
    flipped[middle.position + 500] = flipped[middle.position + 500]! ^ 0x10;
    for (const damaged of [lostPage, flipped]) {
      await writeFile(segment(dir, "s", 0), damaged);
      const { reopened, cuts } = await reopen(dir);
      assert.deepEqual(cuts, [[bytes.length - entries[1]!.position, "torn_tail"]]);
      assert.deepEqual(
        (await readAll(reopened, "s", 0)).map((r) => Buffer.from(r.value).toString()),
        ['"kept"'],
      );
      await reopened.close();
    }
  });

  test("reads and time lookups that land in the middle of a batch skip to their offset", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 1 });
    const records = Array.from({ length: 300 }, (_, i) => event(i, "user-1"));
    await log.append("s", records);
    const entries = await entriesOf(segment(dir, "s", 0));
    assert.equal(entries.length, 1, "300 events of ~90 bytes are one batch");
    for (const offset of [1, 137, 298, 299]) {
      const got = await log.read("s", 0, offset, { maxRecords: 2 });
      assert.deepEqual(
        got.map((r) => [r.offset, r.timestamp, Buffer.from(r.value).toString()]),
        records.slice(offset, offset + 2).map((r, k) => [offset + k, r.timestamp, Buffer.from(r.value).toString()]),
      );
    }
    assert.deepEqual(await log.offsetsForTime("s", 1_700_000_000_000 + 211), [211]);
    assert.deepEqual(await log.offsetsForTime("s", 1_700_000_000_000 + 300), [300]);
  });

  test("a big append is cut into batches of at most MAX_BATCH_BYTES, indexed at their starts", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir, segmentBytes: 4 * MAX_BATCH_BYTES });
    await log.createStream("s", { partitions: 1 });
    const records = Array.from({ length: 3000 }, (_, i) => event(i, "user-1"));
    // One record larger than a batch travels in a batch of its own.
    records.splice(1234, 0, { key: "user-1", timestamp: 1, value: new Uint8Array(3 * MAX_BATCH_BYTES).fill(9) });
    const positions = await log.append("s", records);
    assert.deepEqual(
      positions.map((p) => p.offset),
      records.map((_, i) => i),
    );
    await log.append("s", [event(5000, "user-1")]);
    const files = await logFiles(dir, "s", 0);
    assert.equal(files.length, 2, "the big append filled a segment; the next append rolled");
    const entries = await entriesOf(segment(dir, "s", 0));
    assert.ok(entries.length > 5, `${entries.length} batches`);
    let next = 0;
    for (const e of entries) {
      assert.equal(e.baseOffset, next);
      next += e.count;
      assert.ok(e.size <= MAX_BATCH_BYTES || e.count === 1, `batch of ${e.count} records in ${e.size} bytes`);
      assert.equal(e.attributes & ATTR_SELF_COMMIT, ATTR_SELF_COMMIT);
    }
    assert.equal(next, records.length);
    assert.equal(entries.find((e) => e.baseOffset === 1234)?.count, 1);
    assert.deepEqual(
      entries.map((e) => (e.attributes & ATTR_APPEND_END) !== 0),
      entries.map((_, i) => i === entries.length - 1),
      "only the append's last batch marks its end",
    );
    // The sealed segment's persisted index points at batch starts only.
    const index = await readFile(join(partitionDir(dir, "s", 0), files[0]!.replace(".log", ".index")));
    const starts = new Map(entries.map((e) => [e.baseOffset, e.position]));
    const n = (index.length - 48) / 12;
    assert.ok(n > 1);
    for (let i = 0; i < n; i++) {
      assert.equal(starts.get(index.readUInt32LE(i * 12)), index.readDoubleLE(i * 12 + 4), `index entry ${i}`);
    }
    // ~100-byte events with 6-byte keys take a few bytes each besides key and value.
    const small = entries.filter((e) => e.count > 1);
    const recordBytes = small.reduce((a, e) => a + e.size - BATCH_OVERHEAD, 0);
    const payload = records.filter((_, i) => i !== 1234).reduce((a, r) => a + r.value.length + r.key.length, 0);
    assert.ok(recordBytes - payload <= 5 * (records.length - 1), `${recordBytes - payload} bytes beyond payload`);
    const reopened = await (async () => {
      await log.close();
      return openLog({ dir, segmentBytes: 4 * MAX_BATCH_BYTES });
    })();
    const back = await readAll(reopened, "s", 0);
    assert.equal(back.length, records.length + 1);
    assert.deepEqual(back[1234]!.value, Buffer.from(records[1234]!.value));
    assert.deepEqual(back[2999]!.value, Buffer.from(records[2999]!.value));
  });

  test("a group larger than the retained encode buffer (8 MiB) is written and read back whole", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 2 });
    const records = Array.from({ length: 150_000 }, (_, i) => event(i));
    const positions = await log.append("s", records);
    const ends = await log.endOffsets("s");
    assert.equal(ends[0]! + ends[1]!, records.length);
    assert.ok(log.streamSizes().get("s")! > 8 * 1024 * 1024);
    const last = positions[positions.length - 1]!;
    const [r] = await log.read("s", last.partition, last.offset, { maxRecords: 1 });
    assert.deepEqual(r!.value, Buffer.from(records[records.length - 1]!.value));
    assert.equal((await readAll(log, "s", 0)).length + (await readAll(log, "s", 1)).length, records.length);
  });

  test("a self-committing append cut at a batch boundary is dropped whole", async () => {
    const { dir, entries } = await endingInOneLongAppend("before");
    assert.ok(entries.length >= 3);
    // Every batch left is whole and valid, but the append's end marker went with its last batch.
    const last = entries[entries.length - 1]!;
    await truncate(segment(dir, "s", 0), last.position);
    const { reopened, cuts } = await reopen(dir);
    assert.deepEqual(cuts, [[last.position - entries[1]!.position, "uncommitted_batch"]]);
    assert.deepEqual(
      (await readAll(reopened, "s", 0)).map((r) => Buffer.from(r.value).toString()),
      ['"before"'],
    );
  });

  test("a group's batches decide a roll together: the whole group goes to the new segment", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir, segmentBytes: 8192 });
    await log.createStream("s", { partitions: 2 });
    // Two concurrent appends in one group, one of them spanning both partitions.
    const keys = keysPerPartition(2);
    await log.append(
      "s",
      Array.from({ length: 20 }, (_, i) => event(i, keys[i % 2])),
    );
    const big = Array.from({ length: 300 }, (_, i) => event(100 + i, keys[i % 2]));
    const small = [event(999, keys[0])];
    await Promise.all([log.append("s", big), log.append("s", small)]);
    for (const p of [0, 1]) {
      const files = await logFiles(dir, "s", p);
      assert.equal(files.length, 2, `partition ${p}: ${files}`);
      const second = await entriesOf(join(partitionDir(dir, "s", p), files[1]!));
      assert.equal(Number(files[1]!.slice(0, 20)), second[0]!.baseOffset);
      const { size } = await stat(join(partitionDir(dir, "s", p), files[1]!));
      assert.ok(size > 8192, "the group is written whole even past segmentBytes");
      assert.ok(
        second.every((e) => e.commitSeq === second[0]!.commitSeq && e.attributes === 0),
        "one group, commit file",
      );
    }
    await log.close();
    const reopened = await openLog({ dir, segmentBytes: 8192 });
    const values = [...(await readAll(reopened, "s", 0)), ...(await readAll(reopened, "s", 1))].map(
      (r) => (JSON.parse(Buffer.from(r.value).toString()) as { n: number }).n,
    );
    assert.deepEqual(
      values.sort((a, b) => a - b),
      [...Array.from({ length: 20 }, (_, i) => i), ...big.map((_, i) => 100 + i), 999],
    );
  });

  test("unicode and binary keys, headers and values survive batches, reads and a reopen", async () => {
    const dir = await tempDir();
    const log = await openLog({ dir });
    await log.createStream("s", { partitions: 3 });
    const everyByte = Uint8Array.from({ length: 256 }, (_, i) => i);
    const records: AppendRecord[] = [
      { key: "ключ-🙂", timestamp: 1.5, value: everyByte, headers: { схема: "v1 🙂", "\u0000nul": "\u0000\uffff" } },
      { key: "\u0000\u0001\u007f", timestamp: -(2 ** 40), value: new Uint8Array(0) },
      { key: "", timestamp: 2 ** 52, value: everyByte.subarray(128), headers: { "": "" } },
      {
        key: "日本語のキー",
        timestamp: 0,
        value: encoder.encode("{}"),
        headers: Object.fromEntries([["__proto__", "own"]]),
      },
    ];
    const positions = await log.append("s", records);
    const check = async (l: LocalEventLog) => {
      for (const [i, pos] of positions.entries()) {
        const [r] = await l.read("s", pos.partition, pos.offset, { maxRecords: 1 });
        const want = records[i]!;
        assert.equal(r!.key, want.key);
        assert.equal(r!.timestamp, want.timestamp);
        assert.deepEqual([...r!.value], [...want.value]);
        assert.deepEqual(r!.headers, want.headers === undefined ? undefined : { ...want.headers });
      }
    };
    await check(log);
    await log.close();
    await check(await openLog({ dir }));
  });
});
