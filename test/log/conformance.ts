/**
 * The EventLog conformance suite: behaviour every implementation (local files, Kafka) must show.
 * Each test uses its own stream names, so a harness may share one backing store across tests.
 * Differences between implementations are read from the log's own `capabilities` (never guessed).
 *
 * @example
 *   runEventLogConformance("LocalEventLog", async () => { ...return { log, reopen, cleanup }; });
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { isRunnelError } from "../../src/core/errors.js";
import type { AppendRecord, EventLog, LogRecord } from "../../src/log/types.js";
import { partitionForKey } from "../../src/log/types.js";

export interface EventLogHarness {
  /** An opened log. */
  readonly log: EventLog;
  /** Closes the current log and opens a new instance over the same storage. */
  reopen(): Promise<EventLog>;
  cleanup(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function record(key: string, timestamp: number, value: unknown): AppendRecord {
  return { key, timestamp, value: encoder.encode(JSON.stringify(value)) };
}

export function decodeValue(r: LogRecord): unknown {
  return JSON.parse(decoder.decode(r.value));
}

/** One key per partition, so a batch can be made to touch every partition. */
export function keysPerPartition(partitions: number): string[] {
  const keys = new Array<string | undefined>(partitions).fill(undefined);
  let found = 0;
  for (let i = 0; found < partitions; i++) {
    const key = `user-${i}`;
    const p = partitionForKey(key, partitions);
    if (keys[p] === undefined) {
      keys[p] = key;
      found++;
    }
  }
  return keys as string[];
}

/** Reads a partition from `from` up to its current end. */
export async function readAll(log: EventLog, stream: string, partition: number, from = 0): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  const end = (await log.endOffsets(stream))[partition]!;
  let next = from;
  while (next < end) {
    const batch = await log.read(stream, partition, next, { maxRecords: 500 });
    if (batch.length === 0) break;
    out.push(...batch);
    next = batch[batch.length - 1]!.offset + 1;
  }
  return out;
}

/** Records readable in the whole stream. */
export async function countRecords(log: EventLog, stream: string): Promise<number> {
  let n = 0;
  for (let p = 0; p < log.partitionCount(stream); p++) n += (await readAll(log, stream, p)).length;
  return n;
}

function isCode(code: string) {
  return (e: unknown) => isRunnelError(e) && e.code === code;
}

let streamCounter = 0;
function streamName(label: string): string {
  return `conf_${label}_${process.pid}_${streamCounter++}`;
}

export function runEventLogConformance(name: string, factory: () => Promise<EventLogHarness>): void {
  describe(`EventLog conformance: ${name}`, () => {
    let harness: EventLogHarness;
    let log: EventLog;
    let dense = true;
    let simultaneous = true;
    before(async () => {
      harness = await factory();
      log = harness.log;
      // The implementation declares what it guarantees beyond the common ground (types.ts); the
      // suite checks the stronger property where declared, the strongest when nothing is.
      dense = log.capabilities?.denseOffsets ?? true;
      simultaneous = log.capabilities?.simultaneousVisibility ?? true;
    });
    after(async () => {
      await harness.cleanup();
    });

    test("creates streams idempotently and refuses a different partition count", async () => {
      const s = streamName("create");
      assert.equal(log.hasStream(s), false);
      await log.createStream(s, { partitions: 3 });
      assert.equal(log.hasStream(s), true);
      assert.equal(log.partitionCount(s), 3);
      await log.createStream(s, { partitions: 3 });
      await assert.rejects(log.createStream(s, { partitions: 4 }), isCode("conflict"));
      assert.deepEqual(await log.startOffsets(s), [0, 0, 0]);
      assert.deepEqual(await log.endOffsets(s), [0, 0, 0]);
    });

    test("declares its capabilities and answers ping while open", async () => {
      const caps = log.capabilities;
      if (caps !== undefined) {
        assert.equal(typeof caps.denseOffsets, "boolean");
        assert.equal(typeof caps.simultaneousVisibility, "boolean");
        assert.ok(Object.isFrozen(caps), "capabilities are fixed for the life of the log");
      }
      if (log.ping !== undefined) assert.equal(await log.ping(), true);
    });

    test("unknown streams are stream_not_found everywhere", async () => {
      const s = streamName("missing");
      const notFound = isCode("stream_not_found");
      await assert.rejects(log.append(s, [record("k", 1, {})]), notFound);
      await assert.rejects(log.read(s, 0, 0), notFound);
      await assert.rejects(log.startOffsets(s), notFound);
      await assert.rejects(log.endOffsets(s), notFound);
      await assert.rejects(log.offsetsForTime(s, 0), notFound);
      await assert.rejects(log.commitOffsets("g", s, new Map([[0, 1]])), notFound);
      await assert.rejects(log.committedOffsets("g", s), notFound);
      await assert.rejects(log.deleteStream(s), notFound);
      assert.throws(() => log.partitionCount(s), notFound);
    });

    test("places records by partitionForKey with dense offsets, in order per key", async () => {
      const s = streamName("order");
      const partitions = 4;
      await log.createStream(s, { partitions });
      const keys = Array.from({ length: 10 }, (_, i) => `key-${i}`);
      const sent = new Map<string, number[]>();
      for (let batch = 0; batch < 5; batch++) {
        const records = keys.flatMap((key, k) =>
          [0, 1].map((j) => record(key, 1000 + batch, { key, n: batch * 2 + j, k })),
        );
        const positions = await log.append(s, records);
        assert.equal(positions.length, records.length);
        positions.forEach((pos, i) => {
          assert.equal(pos.partition, partitionForKey(records[i]!.key, partitions));
        });
        for (const r of records)
          sent.set(r.key, [...(sent.get(r.key) ?? []), (JSON.parse(decoder.decode(r.value)) as { n: number }).n]);
      }
      const ends = await log.endOffsets(s);
      if (dense) {
        assert.equal(
          ends.reduce((a, b) => a + b, 0),
          100,
        );
      }
      assert.equal(await countRecords(log, s), 100);
      const seen = new Map<string, number[]>();
      for (let p = 0; p < partitions; p++) {
        const records = await readAll(log, s, p);
        if (dense) assert.equal(records.length, ends[p]);
        records.forEach((r, i) => {
          if (dense) assert.equal(r.offset, i, "offsets are dense from 0");
          else assert.ok(i === 0 || r.offset > records[i - 1]!.offset, "offsets increase");
          assert.ok(r.offset < ends[p]!, "records lie below the end offset");
          assert.equal(r.partition, p);
          assert.equal(partitionForKey(r.key, partitions), p);
          assert.equal(r.timestamp >= 1000 && r.timestamp < 1005, true);
          assert.equal(typeof r.ingestTime, "number");
          const v = decodeValue(r) as { key: string; n: number };
          assert.equal(v.key, r.key);
          seen.set(r.key, [...(seen.get(r.key) ?? []), v.n]);
        });
      }
      assert.deepEqual(seen, sent);
    });

    test("returns positions that read back the same record", async () => {
      const s = streamName("positions");
      await log.createStream(s, { partitions: 3 });
      const records = Array.from({ length: 30 }, (_, i) => record(`u${i % 7}`, i, { i }));
      const positions = await log.append(s, records);
      for (let i = 0; i < records.length; i++) {
        const pos = positions[i]!;
        const [r] = await log.read(s, pos.partition, pos.offset, { maxRecords: 1 });
        assert.ok(r);
        assert.equal(r.offset, pos.offset);
        assert.deepEqual(decodeValue(r), { i });
        assert.equal(r.key, records[i]!.key);
        assert.equal(r.timestamp, i);
      }
    });

    test("reads from an offset within maxRecords and maxBytes (at least one record)", async () => {
      const s = streamName("limits");
      await log.createStream(s, { partitions: 1 });
      await log.append(
        s,
        Array.from({ length: 50 }, (_, i) => record("k", i, { i, pad: "x".repeat(90) })),
      );
      const from20 = await log.read(s, 0, 20, { maxRecords: 5 });
      assert.deepEqual(
        from20.map((r) => r.offset),
        [20, 21, 22, 23, 24],
      );
      const tiny = await log.read(s, 0, 7, { maxBytes: 1 });
      assert.equal(tiny.length, 1);
      assert.equal(tiny[0]!.offset, 7);
      const some = await log.read(s, 0, 0, { maxBytes: 1000 });
      assert.ok(some.length >= 1 && some.length < 50);
      const valueBytes = some.reduce((a, r) => a + r.value.length, 0);
      assert.ok(valueBytes <= 1000);
      assert.deepEqual(await log.read(s, 0, 50), []);
      assert.deepEqual(await log.read(s, 0, 500), []);
    });

    test("finds offsets for a time with non-monotonic timestamps", async () => {
      const s = streamName("time");
      await log.createStream(s, { partitions: 1 });
      const stamps = [100, 300, 200, 400, 250, 500, 450];
      await log.append(
        s,
        stamps.map((t, i) => record("k", t, { i })),
      );
      assert.deepEqual(await log.offsetsForTime(s, 0), [0]);
      assert.deepEqual(await log.offsetsForTime(s, 100), [0]);
      assert.deepEqual(await log.offsetsForTime(s, 150), [1]);
      assert.deepEqual(await log.offsetsForTime(s, 300), [1]);
      assert.deepEqual(await log.offsetsForTime(s, 301), [3]);
      assert.deepEqual(await log.offsetsForTime(s, 460), [5]);
      assert.deepEqual(
        await log.offsetsForTime(s, 501),
        dense ? [7] : await log.endOffsets(s),
        "end offset when no record is that late",
      );
    });

    test("finds offsets for a time across many records", async () => {
      const s = streamName("time_many");
      await log.createStream(s, { partitions: 2 });
      const records = Array.from({ length: 2000 }, (_, i) => record(`u${i % 13}`, 10_000 + i * 10, { i }));
      await log.append(s, records);
      const offsets = await log.offsetsForTime(s, 10_000 + 1000 * 10);
      for (let p = 0; p < 2; p++) {
        const at = offsets[p]!;
        const [first] = await log.read(s, p, at, { maxRecords: 1 });
        assert.ok(first);
        assert.ok(first.timestamp >= 20_000);
        if (at > 0) {
          const [prev] = await log.read(s, p, at - 1, { maxRecords: 1 });
          assert.ok(prev!.timestamp < 20_000);
        }
      }
    });

    test("keeps committed consumer positions across close and reopen", async () => {
      const s = streamName("positions_durable");
      await log.createStream(s, { partitions: 3 });
      await log.append(s, [record("a", 1, 1), record("b", 2, 2), record("c", 3, 3)]);
      assert.deepEqual(await log.committedOffsets("g1", s), new Map());
      await log.commitOffsets("g1", s, new Map([[0, 1]]));
      await log.commitOffsets("g1", s, new Map([[2, 5]]));
      await log.commitOffsets("g2", s, new Map([[1, 7]]));
      assert.deepEqual(
        await log.committedOffsets("g1", s),
        new Map([
          [0, 1],
          [2, 5],
        ]),
      );
      log = await harness.reopen();
      assert.deepEqual(
        await log.committedOffsets("g1", s),
        new Map([
          [0, 1],
          [2, 5],
        ]),
      );
      assert.deepEqual(await log.committedOffsets("g2", s), new Map([[1, 7]]));
      assert.equal(log.partitionCount(s), 3);
      assert.equal(await countRecords(log, s), 3, "records survive reopen");
      if (dense)
        assert.equal(
          (await log.endOffsets(s)).reduce((a, b) => a + b, 0),
          3,
        );
    });

    test("serves reads while appends are in flight, without gaps or reordering", async () => {
      const s = streamName("concurrent");
      await log.createStream(s, { partitions: 2 });
      const total = 400;
      const writer = (async () => {
        for (let i = 0; i < total; i += 20) {
          await Promise.all(
            Array.from({ length: 20 }, (_, j) => log.append(s, [record("same-key", i + j, { n: i + j })])),
          );
        }
      })();
      const p = partitionForKey("same-key", 2);
      const seen: number[] = [];
      let next = 0;
      let done = false;
      void writer.then(() => {
        done = true;
      });
      while (!done || next < (await log.endOffsets(s))[p]!) {
        const batch = await log.read(s, p, next, { maxRecords: 37 });
        for (const r of batch) {
          if (dense) assert.equal(r.offset, next);
          else assert.ok(r.offset >= next);
          seen.push((decodeValue(r) as { n: number }).n);
          next = r.offset + 1;
        }
        if (batch.length === 0) {
          // Without dense offsets the end may lie past the last record (a marker): done once caught up.
          if (!dense && done && seen.length === total) break;
          await new Promise((r) => setImmediate(r));
        }
      }
      await writer;
      assert.equal(seen.length, total);
      // Appends issued concurrently may be ordered either way, but each appears once.
      assert.deepEqual(
        [...seen].sort((a, b) => a - b),
        Array.from({ length: total }, (_, i) => i),
      );
    });

    test("makes a multi-partition batch visible all at once (or all-or-nothing where declared)", async () => {
      const s = streamName("atomic");
      const partitions = 4;
      await log.createStream(s, { partitions });
      const keys = keysPerPartition(partitions);
      let observations = 0;
      let stop = false;
      const observer = (async () => {
        while (!stop) {
          const ends = await log.endOffsets(s);
          if (simultaneous) {
            assert.ok(
              ends.every((e) => e === ends[0]),
              `every batch has one record per partition, so ends must match: ${ends}`,
            );
          }
          observations++;
          await new Promise((r) => setImmediate(r));
        }
      })();
      const unsubscribe = log.onAppend(s, () => {
        if (simultaneous) void log.endOffsets(s).then((ends) => assert.ok(ends.every((e) => e === ends[0])));
      });
      await Promise.all(
        Array.from({ length: 50 }, (_, b) =>
          log.append(
            s,
            keys.map((key) => record(key, b, { b })),
          ),
        ),
      );
      stop = true;
      await observer;
      unsubscribe();
      assert.ok(observations > 0);
      if (dense) assert.deepEqual(await log.endOffsets(s), [50, 50, 50, 50]);
      const final = await log.endOffsets(s);
      assert.ok(
        final.every((e) => e === final[0]),
        `once every append resolved, all partitions are alike: ${final}`,
      );
      for (let p = 0; p < partitions; p++) {
        const bs = (await readAll(log, s, p)).map((r) => (decodeValue(r) as { b: number }).b).sort((a, b) => a - b);
        assert.deepEqual(
          bs,
          Array.from({ length: 50 }, (_, i) => i),
        );
      }
    });

    test("notifies listeners after records become readable, until unsubscribed", async () => {
      const s = streamName("listen");
      await log.createStream(s, { partitions: 2 });
      let calls = 0;
      let visibleAtCall = -1;
      const unsubscribe = log.onAppend(s, () => {
        calls++;
        void countRecords(log, s).then((n) => {
          visibleAtCall = n;
        });
      });
      await log.append(s, [record("a", 1, 1), record("b", 2, 2)]);
      // The count started inside the listener takes a few round trips on a networked log.
      for (let waited = 0; visibleAtCall !== 2 && waited < 2000; waited += 10) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(calls >= 1);
      assert.equal(visibleAtCall, 2);
      unsubscribe();
      const before = calls;
      await log.append(s, [record("a", 3, 3)]);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(calls, before);
    });

    test("deletes a stream, and a re-created one starts empty", async () => {
      const s = streamName("delete");
      await log.createStream(s, { partitions: 2 });
      await log.append(s, [record("a", 1, 1), record("b", 1, 2)]);
      await log.commitOffsets("g", s, new Map([[0, 1]]));
      await log.deleteStream(s);
      assert.equal(log.hasStream(s), false);
      await assert.rejects(log.read(s, 0, 0), isCode("stream_not_found"));
      await log.createStream(s, { partitions: 3 });
      assert.deepEqual(await log.endOffsets(s), [0, 0, 0]);
      assert.deepEqual(await log.committedOffsets("g", s), new Map());
      log = await harness.reopen();
      assert.equal(log.partitionCount(s), 3);
    });

    test("keeps record headers exactly, and a record without headers has none", async () => {
      const s = streamName("headers");
      await log.createStream(s, { partitions: 2 });
      const headers = { "runnel-output-id": "p1:0:17", "runnel-source-offset": "17", "ünï-🔑": "välue ✓", empty: "" };
      const sent: AppendRecord[] = [
        { ...record("a", 1, { n: 0 }), headers },
        record("a", 2, { n: 1 }),
        { ...record("b", 3, { n: 2 }), headers: { only: "one" } },
        { ...record("a", 4, { n: 3 }), headers: {} },
      ];
      const positions = await log.append(s, sent);
      log = await harness.reopen();
      const got = await Promise.all(
        positions.map(async (pos) => (await log.read(s, pos.partition, pos.offset, { maxRecords: 1 }))[0]!),
      );
      assert.deepEqual(got[0]!.headers, headers);
      assert.deepEqual(decodeValue(got[0]!), { n: 0 }, "headers stay out of the value");
      assert.equal(got[1]!.headers, undefined);
      assert.equal("headers" in got[1]!, false, "absent headers stay absent");
      assert.deepEqual(got[2]!.headers, { only: "one" });
      assert.deepEqual(decodeValue(got[3]!), { n: 3 });
      assert.ok(got[3]!.headers === undefined || Object.keys(got[3]!.headers).length === 0);
    });

    test("keeps keys, timestamps and bytes exactly", async () => {
      const s = streamName("bytes");
      await log.createStream(s, { partitions: 1 });
      const value = new Uint8Array(1000).map((_, i) => (i * 31) & 0xff);
      const key = "ключ-🔑";
      await log.append(s, [
        { key, timestamp: 1_700_000_000_123, value },
        { key: "", timestamp: -5, value: new Uint8Array(0) },
      ]);
      log = await harness.reopen();
      const [a, b] = await log.read(s, 0, 0);
      assert.ok(a && b);
      assert.equal(a.key, key);
      assert.equal(a.timestamp, 1_700_000_000_123);
      assert.deepEqual(new Uint8Array(a.value), value);
      assert.equal(b.key, "");
      assert.equal(b.timestamp, -5);
      assert.equal(b.value.length, 0);
    });
  });
}
