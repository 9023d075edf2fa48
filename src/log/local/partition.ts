/**
 * One partition: an ordered list of segments, the last of which takes appends. `highWatermark`
 * is the offset after the last committed record; readers see nothing at or beyond it.
 */
import { mkdir, readdir } from "node:fs/promises";
import { fsyncDir } from "../../core/durable-file.js";
import type { LogRecord } from "../types.js";
import { RecordCursor } from "./entry.js";
import { parseSegmentFileName } from "./fs-util.js";
import type { RecoveryReport, RollPolicy } from "./options.js";
import { ATTR_APPEND_END, ATTR_SELF_COMMIT } from "./record.js";
import { Segment } from "./segment.js";
import { INDEX_INTERVAL_BYTES } from "./segment-index.js";

export interface PartitionContext {
  readonly stream: string;
  readonly partition: number;
  readonly dir: string;
}

/** A point in the active segment's writes, published once its group's commit is durable. */
export interface PublishMark {
  readonly segment: Segment;
  readonly size: number;
  readonly nextOffset: number;
}

/** Bytes a record takes besides its value, at most for keys of user ids: sizes reads. */
const RECORD_OVERHEAD_ESTIMATE = 48;

export interface RetentionResult {
  deletedSegments: number;
  deletedBytes: number;
}

export class Partition {
  private segments: Segment[];
  highWatermark: number;
  /** Highest commit sequence found in the active segment on open (self-committed appends). */
  recoveredSeq = 0;

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
    let maxSeq = committedSeq;
    try {
      if (bases.length === 0) {
        segments.push(await Segment.create(ctx.dir, 0));
        await fsyncDir(ctx.dir);
      }
      for (let i = 0; i < bases.length; i++) {
        const segment = await Segment.open(ctx.dir, bases[i]!);
        segments.push(segment);
        if (i < bases.length - 1) await recoverSealed(segment);
        else maxSeq = await recoverActive(ctx, segment, committedSeq, onRecovery);
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
    const partition = new Partition(ctx, segments);
    partition.recoveredSeq = maxSeq;
    return partition;
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

  /** Whether `bytes` more at `ingestTime` must go to a new segment (the active one is not empty). */
  needsRoll(bytes: number, ingestTime: number, policy: RollPolicy): boolean {
    const segment = this.active;
    return (
      segment.size > 0 &&
      (segment.size + bytes > policy.segmentBytes || ingestTime - segment.firstIngestTime >= policy.segmentMaxAgeMs)
    );
  }

  /** True when records written to the active segment are not yet published. */
  get hasUnpublished(): boolean {
    return this.active.nextOffset !== this.highWatermark;
  }

  /** Where the partition's writes stand now; publish() of it makes exactly that much visible. */
  mark(): PublishMark {
    const active = this.active;
    return { segment: active, size: active.size, nextOffset: active.nextOffset };
  }

  /** Makes records up to `mark` visible to readers (after their group's commit is durable). */
  publish(mark: PublishMark): void {
    mark.segment.committedSize = mark.size;
    this.highWatermark = mark.nextOffset;
  }

  /**
   * Drops everything written after the last published record, on disk and in the index, so the
   * partition can take appends again after a failed write (a full disk). Segments only roll when
   * nothing is unpublished, so all of it lies in the active segment.
   */
  async rollback(): Promise<number> {
    const active = this.active;
    const bytes = active.size - active.committedSize;
    await active.truncate(active.committedSize);
    const result = await active.scanAll(() => false);
    if (result.failure !== undefined || result.validEnd !== active.size || active.nextOffset !== this.highWatermark) {
      throw active.corrupt(result.validEnd, "published records do not rescan cleanly after a rollback");
    }
    return bytes;
  }

  async roll(): Promise<Segment> {
    const old = this.active;
    await old.writeIndex();
    const next = await Segment.create(this.ctx.dir, old.nextOffset);
    try {
      // The new file's directory entry must be durable before any record in it is acknowledged.
      await fsyncDir(this.ctx.dir);
    } catch (e) {
      // Otherwise the next attempt would find the file there and never roll again.
      await next.delete();
      throw e;
    }
    this.segments = [...this.segments, next];
    old.sealed();
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
   * reads from the start offset; one in the middle of a batch reads the batch and skips to it.
   * Values are views into the read buffer (no copy per record).
   */
  async read(offset: number, maxRecords: number, maxBytes: number): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    const hwm = this.highWatermark;
    const partition = this.ctx.partition;
    const cursor = new RecordCursor();
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
      const average = count > 0 ? segment.size / count : RECORD_OVERHEAD_ESTIMATE;
      const wanted = Math.min(
        maxBytes + (maxRecords - out.length) * RECORD_OVERHEAD_ESTIMATE,
        (maxRecords - out.length + 1) * average,
      );
      // At least up to the next indexed unit, so the batch holding `next` comes in one read.
      const unitEnd = segment.index.positionAfter(next) ?? segment.committedSize;
      const chunkHint = Math.ceil(
        Math.max(4096, Math.min(8 * 1024 * 1024, Math.max(wanted + INDEX_INTERVAL_BYTES, unitEnd - from))),
      );
      const want = next;
      await segment.scan(from, segment.committedSize, chunkHint, (buf, e) => {
        if (e.baseOffset + e.count <= want) return true;
        cursor.start(buf, e);
        while (cursor.next()) {
          const at = cursor.offset;
          if (at < want) continue;
          if (at >= hwm) {
            full = true;
            return false;
          }
          const valueBytes = cursor.valueEnd - cursor.valueStart;
          if (out.length > 0 && bytes + valueBytes > maxBytes) {
            full = true;
            return false;
          }
          const key = cursor.key();
          const value = cursor.value();
          const headers = cursor.headers();
          const timestamp = cursor.timestamp;
          const ingestTime = cursor.ingestTime;
          out.push(
            headers === undefined
              ? { partition, offset: at, key, timestamp, ingestTime, value }
              : { partition, offset: at, key, timestamp, ingestTime, value, headers },
          );
          bytes += valueBytes;
          next = at + 1;
          if (out.length >= maxRecords || bytes >= maxBytes) {
            full = true;
            return false;
          }
        }
        return true;
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
    const cursor = new RecordCursor();
    for (const segment of this.segments) {
      if (segment.maxTimestamp < timestamp) continue;
      const start = segment.index.scanStartForTime(timestamp, segment.baseOffset);
      if (start >= hwm) return hwm;
      let found: number | undefined;
      await segment.scan(segment.index.positionFor(start), segment.committedSize, 64 * 1024, (buf, e) => {
        // An entry's maximum timestamp lets a whole batch be passed over without decoding it.
        if (e.baseOffset + e.count <= start || e.maxTimestamp < timestamp) return true;
        cursor.start(buf, e);
        while (cursor.next()) {
          if (cursor.offset >= start && cursor.timestamp >= timestamp) {
            found = cursor.offset;
            return false;
          }
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

/**
 * Scans the active segment and truncates what was never acknowledged: a torn tail (a batch is
 * kept or cut whole), entries of a group after `committedSeq`, and a self-committing append or
 * group whose last entry is missing. Returns the highest commit sequence kept, so new groups are
 * numbered after it.
 */
async function recoverActive(
  ctx: PartitionContext,
  segment: Segment,
  committedSeq: number,
  onRecovery: (report: RecoveryReport) => void,
): Promise<number> {
  let maxSeq = committedSeq;
  // Start of a self-committing append whose last record has not been seen yet.
  let openAppend: number | undefined;
  const result = await segment.scanAll((h, position) => {
    if ((h.attributes & ATTR_SELF_COMMIT) === 0) {
      if (h.commitSeq > committedSeq) return true;
      openAppend = undefined;
      return false;
    }
    openAppend ??= position;
    if ((h.attributes & ATTR_APPEND_END) !== 0) {
      openAppend = undefined;
      if (h.commitSeq > maxSeq) maxSeq = h.commitSeq;
    }
    return false;
  });
  const keepEnd = openAppend ?? result.validEnd;
  if (keepEnd === segment.size) return maxSeq;
  if (result.failure !== undefined) {
    // Only the last group can be torn, and it was written after everything before it was synced:
    // valid entries behind the damage must all be that one group's, newer than what precedes it.
    // A damaged batch hides its own group, so the sequence its fixed fields claim counts too
    // when they are still there: a later group behind a damaged earlier one is not a torn write.
    let seqBehind = await segment.claimedCommitSeq(result.validEnd);
    const seqBefore = maxSeq;
    const committedAfter = await segment.findValidEntryAfter(result.validEnd, (h) => {
      if (h.commitSeq <= committedSeq || h.commitSeq < seqBefore) return true;
      seqBehind ??= h.commitSeq;
      return h.commitSeq !== seqBehind;
    });
    if (committedAfter !== undefined) {
      throw segment.corrupt(
        result.validEnd,
        `${result.failure} followed by a committed record at byte ${committedAfter}; refusing to skip committed data`,
      );
    }
  }
  const bytesTruncated = segment.size - keepEnd;
  await segment.truncate(keepEnd);
  // The scan indexed entries past keepEnd when it cut an incomplete append: index again.
  if (keepEnd < result.validEnd) await segment.scanAll(() => false);
  onRecovery({
    stream: ctx.stream,
    partition: ctx.partition,
    file: segment.path,
    bytesTruncated,
    reason: result.failure === undefined ? "uncommitted_batch" : "torn_tail",
  });
  return maxSeq;
}
