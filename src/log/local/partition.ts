/**
 * One partition: an ordered list of segments, the last of which takes appends. `highWatermark`
 * is the offset after the last committed record; readers see nothing at or beyond it.
 */
import { mkdir, readdir } from "node:fs/promises";
import type { AppendRecord, LogRecord } from "../types.js";
import { fsyncDir, parseSegmentFileName } from "./fs-util.js";
import type { RecoveryReport, RollPolicy } from "./options.js";
import { encodedSize, RECORD_OVERHEAD, writeRecord } from "./record.js";
import { Segment } from "./segment.js";
import { INDEX_INTERVAL_BYTES } from "./segment-index.js";

export interface PartitionContext {
  readonly stream: string;
  readonly partition: number;
  readonly dir: string;
}

export interface RetentionResult {
  deletedSegments: number;
  deletedBytes: number;
}

export class Partition {
  private segments: Segment[];
  highWatermark: number;

  private constructor(
    private readonly ctx: PartitionContext,
    segments: Segment[],
  ) {
    this.segments = segments;
    this.highWatermark = this.active.nextOffset;
  }

  static async create(ctx: PartitionContext): Promise<Partition> {
    await mkdir(ctx.dir);
    const first = await Segment.create(ctx.dir, 0);
    return new Partition(ctx, [first]);
  }

  /**
   * Opens a partition after a clean shutdown or a crash. Sealed segments load their persisted
   * indexes (or are rescanned and must be whole: they hold committed data only). The last segment
   * is always scanned: a torn tail, and records of groups after `committedSeq`, are truncated and
   * reported; damage followed by committed records throws storage_corrupt.
   */
  static async open(
    ctx: PartitionContext,
    committedSeq: number,
    onRecovery: (report: RecoveryReport) => void,
  ): Promise<Partition> {
    const bases = (await readdir(ctx.dir))
      .map(parseSegmentFileName)
      .filter((b): b is number => b !== undefined)
      .sort((a, b) => a - b);
    const segments: Segment[] = [];
    try {
      if (bases.length === 0) {
        segments.push(await Segment.create(ctx.dir, 0));
        await fsyncDir(ctx.dir);
      }
      for (let i = 0; i < bases.length; i++) {
        const segment = await Segment.open(ctx.dir, bases[i]!);
        segments.push(segment);
        if (i < bases.length - 1) await recoverSealed(segment);
        else await recoverActive(ctx, segment, committedSeq, onRecovery);
      }
      for (let i = 1; i < segments.length; i++) {
        const prev = segments[i - 1]!;
        const next = segments[i]!;
        if (prev.nextOffset !== next.baseOffset) {
          throw prev.corrupt(
            prev.size,
            `segment ends at offset ${prev.nextOffset} but the next starts at ${next.baseOffset}`,
          );
        }
      }
    } catch (e) {
      await Promise.all(segments.map((s) => s.close()));
      throw e;
    }
    return new Partition(ctx, segments);
  }

  get active(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  get startOffset(): number {
    return this.segments[0]!.baseOffset;
  }

  get sizeBytes(): number {
    let total = 0;
    for (const s of this.segments) total += s.size;
    return total;
  }

  /**
   * Writes records (not yet durable nor visible) under commit sequence `seq`; returns the first
   * offset. One buffer and one write per partition per group.
   */
  async write(records: readonly AppendRecord[], ingestTime: number, seq: number, policy: RollPolicy): Promise<number> {
    const keyBytes = new Array<number>(records.length);
    let total = 0;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const k = Buffer.byteLength(r.key, "utf8");
      keyBytes[i] = k;
      total += encodedSize(k, r.value.length);
    }
    let segment = this.active;
    if (
      segment.size > 0 &&
      (segment.size + total > policy.segmentBytes || ingestTime - segment.firstIngestTime >= policy.segmentMaxAgeMs)
    ) {
      segment = await this.roll();
    }
    const buf = Buffer.allocUnsafe(total);
    const first = segment.nextOffset;
    let pos = 0;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const end = writeRecord(buf, pos, first + i, r.timestamp, ingestTime, seq, r.key, keyBytes[i]!, r.value);
      segment.track(first + i, segment.size + pos, end - pos, r.timestamp, ingestTime);
      pos = end;
    }
    await segment.write(buf);
    return first;
  }

  async sync(): Promise<void> {
    await this.active.datasync();
  }

  /** Makes everything written so far visible to readers (after the group's commit is durable). */
  publish(): void {
    const active = this.active;
    active.committedSize = active.size;
    this.highWatermark = active.nextOffset;
  }

  private async roll(): Promise<Segment> {
    const old = this.active;
    await old.writeIndex();
    const next = await Segment.create(this.ctx.dir, old.nextOffset);
    // The new file's directory entry must be durable before any record in it is acknowledged.
    await fsyncDir(this.ctx.dir);
    this.segments = [...this.segments, next];
    return next;
  }

  private segmentIndexFor(offset: number): number {
    const segs = this.segments;
    let lo = 0;
    let hi = segs.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (segs[mid]!.baseOffset <= offset) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /**
   * Committed records from `offset` on. An offset below the start offset (deleted by retention)
   * reads from the start offset. Values are views into the read buffer (no copy per record).
   */
  async read(offset: number, maxRecords: number, maxBytes: number): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    const hwm = this.highWatermark;
    const partition = this.ctx.partition;
    let next = Math.max(offset, this.startOffset);
    let bytes = 0;
    let full = false;
    while (!full && next < hwm) {
      const segments = this.segments;
      const i = this.segmentIndexFor(next);
      const segment = segments[i]!;
      const from = segment.index.positionFor(next);
      // Read about what the limits will take (the segment's average record size tells how much
      // maxRecords needs), so a small read of a big segment does not pull megabytes.
      const count = segment.nextOffset - segment.baseOffset;
      const average = count > 0 ? segment.size / count : RECORD_OVERHEAD;
      const wanted = Math.min(
        maxBytes + (maxRecords - out.length) * RECORD_OVERHEAD,
        (maxRecords - out.length + 1) * average,
      );
      const chunkHint = Math.ceil(Math.max(4096, Math.min(8 * 1024 * 1024, wanted + INDEX_INTERVAL_BYTES)));
      const want = next;
      await segment.scan(from, segment.committedSize, chunkHint, (buf, h) => {
        if (h.offset < want) return true;
        if (h.offset >= hwm) {
          full = true;
          return false;
        }
        const valueBytes = h.valueEnd - h.keyEnd;
        if (out.length > 0 && bytes + valueBytes > maxBytes) {
          full = true;
          return false;
        }
        out.push({
          partition,
          offset: h.offset,
          key: buf.toString("utf8", h.keyStart, h.keyEnd),
          timestamp: h.timestamp,
          ingestTime: h.ingestTime,
          value: buf.subarray(h.keyEnd, h.valueEnd),
        });
        bytes += valueBytes;
        next = h.offset + 1;
        if (out.length >= maxRecords || bytes >= maxBytes) full = true;
        return !full;
      });
      if (!full && next === want) {
        // Nothing at or after `want` in this segment: continue with the next one.
        const following = segments[i + 1];
        if (following === undefined) break;
        next = following.baseOffset;
      }
    }
    return out;
  }

  /** First committed offset whose timestamp is ≥ `timestamp`, or the high watermark. */
  async offsetForTime(timestamp: number): Promise<number> {
    const hwm = this.highWatermark;
    for (const segment of this.segments) {
      if (segment.maxTimestamp < timestamp) continue;
      const start = segment.index.scanStartForTime(timestamp, segment.baseOffset);
      if (start >= hwm) return hwm;
      let found: number | undefined;
      await segment.scan(segment.index.positionFor(start), segment.committedSize, 64 * 1024, (_buf, h) => {
        if (h.offset >= start && h.timestamp >= timestamp) {
          found = h.offset;
          return false;
        }
        return true;
      });
      if (found !== undefined && found < hwm) return found;
    }
    return hwm;
  }

  /**
   * Deletes whole old segments: those whose newest record was ingested more than `retentionMs`
   * ago, then the oldest while the rest still hold at least `retentionBytes` (Kafka's rule). An
   * expired active segment is rolled first so it can go too. Must not run during a write.
   */
  async enforceRetention(now: number, retentionMs?: number, retentionBytes?: number): Promise<RetentionResult> {
    let count = 0;
    if (retentionMs !== undefined) {
      while (count < this.segments.length - 1 && now - this.segments[count]!.lastIngestTime > retentionMs) count++;
      const active = this.active;
      if (count === this.segments.length - 1 && active.size > 0 && now - active.lastIngestTime > retentionMs) {
        await this.roll();
        count++;
      }
    }
    if (retentionBytes !== undefined) {
      let remaining = 0;
      for (let i = count; i < this.segments.length; i++) remaining += this.segments[i]!.size;
      while (count < this.segments.length - 1 && remaining - this.segments[count]!.size >= retentionBytes) {
        remaining -= this.segments[count]!.size;
        count++;
      }
    }
    const doomed = this.segments.slice(0, count);
    this.segments = this.segments.slice(count);
    let deletedBytes = 0;
    for (const s of doomed) {
      deletedBytes += s.size;
      await s.delete();
    }
    return { deletedSegments: doomed.length, deletedBytes };
  }

  async close(): Promise<void> {
    await Promise.all(this.segments.map((s) => s.close()));
  }
}

async function recoverSealed(segment: Segment): Promise<void> {
  if (await segment.loadIndex()) return;
  const result = await segment.scanAll(() => false);
  if (result.failure !== undefined || result.validEnd !== segment.size) {
    throw segment.corrupt(result.validEnd, `${result.failure ?? "damaged record"} in a sealed segment`);
  }
  await segment.writeIndex();
}

async function recoverActive(
  ctx: PartitionContext,
  segment: Segment,
  committedSeq: number,
  onRecovery: (report: RecoveryReport) => void,
): Promise<void> {
  const result = await segment.scanAll((h) => h.commitSeq > committedSeq);
  if (result.validEnd === segment.size) return;
  if (result.failure !== undefined) {
    const committedAfter = await segment.findValidRecordAfter(result.validEnd, (h) => h.commitSeq <= committedSeq);
    if (committedAfter !== undefined) {
      throw segment.corrupt(
        result.validEnd,
        `${result.failure} followed by a committed record at byte ${committedAfter}; refusing to skip committed data`,
      );
    }
  }
  const bytesTruncated = segment.size - result.validEnd;
  await segment.truncate(result.validEnd);
  onRecovery({
    stream: ctx.stream,
    partition: ctx.partition,
    file: segment.path,
    bytesTruncated,
    reason: result.failure === undefined ? "uncommitted_batch" : "torn_tail",
  });
}
