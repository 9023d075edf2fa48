/**
 * The sparse in-memory indexes of one segment, and their persisted form (`.index`,
 * `.timeindex`) written when a segment is sealed so that opening the log does not rescan sealed
 * segments.
 *
 * Both point at whole units of the file (batches, or records of the old per-record format: see
 * entry.ts), never inside one. Offset index: (first offset, file position) of a unit at least
 * every INDEX_INTERVAL_BYTES, so a read seeks to the nearest unit at or below its offset and skips
 * at most ~4 KiB plus one batch of records.
 * Time index (Kafka's semantics, because event timestamps are not monotonic): entry (T, O) means
 * "every record up to and including offset O has timestamp ≤ T", with T strictly increasing and O
 * the last offset of a unit. The first record with timestamp ≥ t therefore lies after the last
 * entry whose T < t.
 *
 * Persisted files carry a CRC and the segment summary; they are written without fsync because a
 * missing, torn or stale index is detected (CRC, size mismatch) and rebuilt by scanning.
 */
import { crc32 } from "node:zlib";

export const INDEX_INTERVAL_BYTES = 4096;

/** What a sealed segment's index file remembers about the segment. */
export interface SegmentSummary {
  readonly size: number;
  readonly nextOffset: number;
  readonly maxTimestamp: number;
  readonly firstIngestTime: number;
  readonly lastIngestTime: number;
}

export class SegmentIndex {
  readonly offsets: number[] = [];
  readonly positions: number[] = [];
  readonly times: number[] = [];
  readonly timeOffsets: number[] = [];
  maxTimestamp = Number.NEGATIVE_INFINITY;
  private bytesSinceOffsetEntry = 0;
  private bytesSinceTimeEntry = 0;

  /** Notes one unit (records `baseOffset` … `lastOffset`), in file order. */
  add(baseOffset: number, lastOffset: number, position: number, size: number, maxTimestamp: number): void {
    if (this.offsets.length === 0 || this.bytesSinceOffsetEntry >= INDEX_INTERVAL_BYTES) {
      this.offsets.push(baseOffset);
      this.positions.push(position);
      this.bytesSinceOffsetEntry = 0;
    }
    this.bytesSinceOffsetEntry += size;
    if (maxTimestamp > this.maxTimestamp) this.maxTimestamp = maxTimestamp;
    const lastTime = this.times.length === 0 ? Number.NEGATIVE_INFINITY : this.times[this.times.length - 1]!;
    if ((this.times.length === 0 || this.bytesSinceTimeEntry >= INDEX_INTERVAL_BYTES) && this.maxTimestamp > lastTime) {
      this.times.push(this.maxTimestamp);
      this.timeOffsets.push(lastOffset);
      this.bytesSinceTimeEntry = 0;
    }
    this.bytesSinceTimeEntry += size;
  }

  /** File position of the last indexed unit starting at or before `offset` (0 if none). */
  positionFor(offset: number): number {
    const i = lastAtOrBelow(this.offsets, offset);
    return i < 0 ? 0 : this.positions[i]!;
  }

  /**
   * File position of the first indexed unit after the one positionFor(`offset`) gives, or
   * undefined: a read from there to here covers that unit whole, however big its batch.
   */
  positionAfter(offset: number): number | undefined {
    return this.positions[lastAtOrBelow(this.offsets, offset) + 1];
  }

  /** Offset from which to scan for the first record with timestamp ≥ `timestamp`. */
  scanStartForTime(timestamp: number, baseOffset: number): number {
    const i = lastBelow(this.times, timestamp);
    return i < 0 ? baseOffset : this.timeOffsets[i]! + 1;
  }

  /** Serialises the offset index with the segment summary, and the time index. */
  encode(baseOffset: number, summary: SegmentSummary): { index: Buffer; timeIndex: Buffer } {
    const n = this.offsets.length;
    const index = Buffer.allocUnsafe(n * 12 + 48);
    for (let i = 0; i < n; i++) {
      index.writeUInt32LE(this.offsets[i]! - baseOffset, i * 12);
      index.writeDoubleLE(this.positions[i]!, i * 12 + 4);
    }
    let at = n * 12;
    at = index.writeDoubleLE(summary.size, at);
    at = index.writeDoubleLE(summary.nextOffset, at);
    at = index.writeDoubleLE(summary.maxTimestamp, at);
    at = index.writeDoubleLE(summary.firstIngestTime, at);
    at = index.writeDoubleLE(summary.lastIngestTime, at);
    at = index.writeUInt32LE(n, at);
    index.writeUInt32LE(crc32(index.subarray(0, at)), at);

    const m = this.times.length;
    const timeIndex = Buffer.allocUnsafe(m * 12 + 8);
    for (let i = 0; i < m; i++) {
      timeIndex.writeDoubleLE(this.times[i]!, i * 12);
      timeIndex.writeUInt32LE(this.timeOffsets[i]! - baseOffset, i * 12 + 8);
    }
    timeIndex.writeUInt32LE(m, m * 12);
    timeIndex.writeUInt32LE(crc32(timeIndex.subarray(0, m * 12 + 4)), m * 12 + 4);
    return { index, timeIndex };
  }

  /** Rebuilds from persisted files; undefined when either is damaged. */
  static decode(
    baseOffset: number,
    index: Buffer,
    timeIndex: Buffer,
  ): { index: SegmentIndex; summary: SegmentSummary } | undefined {
    if (index.length < 48 || (index.length - 48) % 12 !== 0) return undefined;
    const n = (index.length - 48) / 12;
    if (index.readUInt32LE(index.length - 8) !== n) return undefined;
    if (crc32(index.subarray(0, index.length - 4)) !== index.readUInt32LE(index.length - 4)) return undefined;
    if (timeIndex.length < 8 || (timeIndex.length - 8) % 12 !== 0) return undefined;
    const m = (timeIndex.length - 8) / 12;
    if (timeIndex.readUInt32LE(m * 12) !== m) return undefined;
    if (crc32(timeIndex.subarray(0, m * 12 + 4)) !== timeIndex.readUInt32LE(m * 12 + 4)) return undefined;

    const result = new SegmentIndex();
    for (let i = 0; i < n; i++) {
      result.offsets.push(baseOffset + index.readUInt32LE(i * 12));
      result.positions.push(index.readDoubleLE(i * 12 + 4));
    }
    for (let i = 0; i < m; i++) {
      result.times.push(timeIndex.readDoubleLE(i * 12));
      result.timeOffsets.push(baseOffset + timeIndex.readUInt32LE(i * 12 + 8));
    }
    const s = n * 12;
    const summary: SegmentSummary = {
      size: index.readDoubleLE(s),
      nextOffset: index.readDoubleLE(s + 8),
      maxTimestamp: index.readDoubleLE(s + 16),
      firstIngestTime: index.readDoubleLE(s + 24),
      lastIngestTime: index.readDoubleLE(s + 32),
    };
    result.maxTimestamp = summary.maxTimestamp;
    return { index: result, summary };
  }
}

/** Index of the last element ≤ value in an ascending array, or -1. */
function lastAtOrBelow(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= value) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** Index of the last element < value in an ascending array, or -1. */
function lastBelow(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < value) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}
