/**
 * One segment file of a partition: entries (batches, or records of the old per-record format:
 * entry.ts) holding offsets from `baseOffset` on, appended at the end, read by position. The
 * segment knows two sizes: `size` (bytes written, possibly not yet committed) and `committedSize`
 * (bytes readers may see), so a reader never decodes an entry of a group whose commit has not
 * completed.
 */
import type { FileHandle } from "node:fs/promises";
import { open, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { RunnelError } from "../../core/errors.js";
import type { Entry } from "./entry.js";
import { claimedCommitSeq, decodeEntry } from "./entry.js";
import { segmentFileName } from "./fs-util.js";
import type { DecodeFailure } from "./record.js";
import { FRAME_BYTES, MAX_BODY_BYTES } from "./record.js";
import { SegmentIndex } from "./segment-index.js";
import { TailBuffer } from "./tail-buffer.js";

/** Read size used when scanning whole segments (recovery, index rebuild). */
const SCAN_CHUNK_BYTES = 4 * 1024 * 1024;
/**
 * Bytes of a segment's tail kept in memory for readers following the appends (tail-buffer.ts):
 * at 20,000 events/s of ~100 bytes over 4 partitions about half a second of each partition.
 * Allocated at a segment's first write, let go when it is sealed.
 */
const TAIL_BYTES = 256 * 1024;

/** Returns false to stop the scan. `buf` holds the entry at `entry.position`. */
export type EntryVisitor = (buf: Buffer, entry: Entry) => boolean;

export interface ScanResult {
  /** End of the last whole, valid entry. */
  readonly validEnd: number;
  /** Why decoding stopped before the end of the file, if it did. */
  readonly failure?: DecodeFailure;
}

export class Segment {
  readonly path: string;
  size: number;
  committedSize: number;
  /** Offset after the last written record. */
  nextOffset: number;
  firstIngestTime = Number.NaN;
  lastIngestTime = Number.NaN;
  index = new SegmentIndex();
  private readonly tail = new TailBuffer(TAIL_BYTES);
  private refs = 0;
  private deleted = false;
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly baseOffset: number,
    private readonly handle: FileHandle,
    size: number,
  ) {
    this.path = join(dir, segmentFileName(baseOffset, ".log"));
    this.size = size;
    this.committedSize = size;
    this.nextOffset = baseOffset;
  }

  static async create(dir: string, baseOffset: number): Promise<Segment> {
    const handle = await open(join(dir, segmentFileName(baseOffset, ".log")), "wx+");
    return new Segment(dir, baseOffset, handle, 0);
  }

  /** Opens an existing segment file without reading it; the caller then loads or scans it. */
  static async open(dir: string, baseOffset: number): Promise<Segment> {
    const handle = await open(join(dir, segmentFileName(baseOffset, ".log")), "r+");
    const { size } = await handle.stat();
    return new Segment(dir, baseOffset, handle, size);
  }

  get maxTimestamp(): number {
    return this.index.maxTimestamp;
  }

  /** Loads the persisted indexes of a sealed segment; false when they are missing or stale. */
  async loadIndex(): Promise<boolean> {
    let index: Buffer;
    let timeIndex: Buffer;
    try {
      index = await readFile(join(this.dir, segmentFileName(this.baseOffset, ".index")));
      timeIndex = await readFile(join(this.dir, segmentFileName(this.baseOffset, ".timeindex")));
    } catch {
      return false;
    }
    const decoded = SegmentIndex.decode(this.baseOffset, index, timeIndex);
    if (decoded === undefined || decoded.summary.size !== this.size) return false;
    this.index = decoded.index;
    this.nextOffset = decoded.summary.nextOffset;
    this.firstIngestTime = decoded.summary.firstIngestTime;
    this.lastIngestTime = decoded.summary.lastIngestTime;
    return true;
  }

  /** Persists the indexes once the segment will receive no more records. */
  async writeIndex(): Promise<void> {
    const { index, timeIndex } = this.index.encode(this.baseOffset, {
      size: this.size,
      nextOffset: this.nextOffset,
      maxTimestamp: this.index.maxTimestamp,
      firstIngestTime: this.firstIngestTime,
      lastIngestTime: this.lastIngestTime,
    });
    await writeFile(join(this.dir, segmentFileName(this.baseOffset, ".index")), index);
    await writeFile(join(this.dir, segmentFileName(this.baseOffset, ".timeindex")), timeIndex);
  }

  /** Notes an entry of `count` records written at `position` (used by appends and by scans). */
  track(
    baseOffset: number,
    count: number,
    position: number,
    size: number,
    maxTimestamp: number,
    ingestTime: number,
  ): void {
    const next = baseOffset + count;
    this.index.add(baseOffset, next - 1, position, size, maxTimestamp);
    if (Number.isNaN(this.firstIngestTime)) this.firstIngestTime = ingestTime;
    this.lastIngestTime = ingestTime;
    this.nextOffset = next;
  }

  /**
   * Scans the whole file from the start, rebuilding the in-memory index, and stops at the first
   * entry that is incomplete or invalid. Also stops (without failure) before the first entry
   * for which `stopBefore` returns true. Offsets must be dense from `baseOffset`.
   */
  async scanAll(stopBefore: (entry: Entry, position: number) => boolean): Promise<ScanResult> {
    this.index = new SegmentIndex();
    this.nextOffset = this.baseOffset;
    this.firstIngestTime = Number.NaN;
    this.lastIngestTime = Number.NaN;
    let pos = 0;
    let want = SCAN_CHUNK_BYTES;
    while (pos < this.size) {
      const len = Math.min(this.size - pos, want);
      const buf = await this.readAt(pos, len);
      let at = 0;
      for (;;) {
        if (at === len) break;
        const e = decodeEntry(buf, at, len);
        if (e === "incomplete") {
          if (pos + len >= this.size) return { validEnd: pos + at, failure: "incomplete" };
          if (at === 0) want = Math.max(want, FRAME_BYTES + Math.min(buf.readUInt32LE(0), MAX_BODY_BYTES));
          break;
        }
        if (typeof e === "string") return { validEnd: pos + at, failure: e };
        if (e.baseOffset !== this.nextOffset) {
          throw this.corrupt(pos + at, `expected offset ${this.nextOffset}, found ${e.baseOffset}`);
        }
        const position = pos + at;
        if (stopBefore(e, position)) return { validEnd: position };
        this.track(e.baseOffset, e.count, position, e.size, e.maxTimestamp, e.ingestTime);
        at += e.size;
      }
      pos += at;
    }
    return { validEnd: pos };
  }

  /**
   * Looks for a valid entry after a damaged one at `from` that satisfies `match`, and returns its
   * position. Recovery uses it to tell a torn group-commit write (only entries of the uncommitted
   * group lie behind the damage) from committed data damaged in place.
   */
  async findValidEntryAfter(from: number, match: (entry: Entry) => boolean): Promise<number | undefined> {
    const len = this.size - from;
    if (len <= 0) return undefined;
    const buf = await this.readAt(from, len);
    let at = 1;
    while (at < len) {
      const e = decodeEntry(buf, at, len);
      if (typeof e === "string") {
        at++;
        continue;
      }
      if (match(e)) return from + at;
      at += e.size;
    }
    return undefined;
  }

  /** The commit sequence the damaged entry at `position` claims (see claimedCommitSeq). */
  async claimedCommitSeq(position: number): Promise<number | undefined> {
    const len = Math.min(this.size - position, 64);
    if (len <= 0) return undefined;
    return claimedCommitSeq(await this.readAt(position, len), 0, len);
  }

  /** Drops bytes from `position` on, durably. */
  async truncate(position: number): Promise<void> {
    this.tail.truncated(position);
    await this.handle.truncate(position);
    await this.handle.datasync();
    this.size = position;
    this.committedSize = position;
  }

  async write(buf: Buffer): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await this.handle.write(buf, done, buf.length - done, this.size + done);
      done += bytesWritten;
    }
    this.tail.written(this.size, buf);
    this.size += buf.length;
  }

  /** No more appends (the partition rolled to a new segment): its tail is read from the file. */
  sealed(): void {
    this.tail.release();
  }

  async datasync(): Promise<void> {
    await this.handle.datasync();
  }

  /**
   * Visits committed entries from file position `from` (an entry's start) up to `to`, reading
   * about `chunkHint` bytes at a time. Every entry's CRC is checked; a bad one throws
   * storage_corrupt. Returns true when the visitor stopped the scan.
   */
  async scan(from: number, to: number, chunkHint: number, visit: EntryVisitor): Promise<boolean> {
    this.refs++;
    try {
      let pos = from;
      let want = chunkHint;
      while (pos < to) {
        const len = Math.min(to - pos, want);
        const buf = await this.readAt(pos, len);
        let at = 0;
        for (;;) {
          if (at === len) break;
          const e = decodeEntry(buf, at, len);
          if (e === "incomplete") {
            if (at > 0) break;
            if (len === to - pos || len < FRAME_BYTES) throw this.corrupt(pos, "entry runs past the committed end");
            want = FRAME_BYTES + buf.readUInt32LE(0);
            break;
          }
          if (typeof e === "string") throw this.corrupt(pos + at, e);
          if (!visit(buf, e)) return true;
          at += e.size;
        }
        pos += at;
      }
      return false;
    } finally {
      this.refs--;
      if (this.deleted && this.refs === 0) await this.closeHandle();
    }
  }

  private async readAt(position: number, length: number): Promise<Buffer> {
    const held = this.tail.read(position, length);
    if (held !== undefined) return held;
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(buf, done, length - done, position + done);
      if (bytesRead === 0) throw this.corrupt(position + done, "unexpected end of file");
      done += bytesRead;
    }
    return buf;
  }

  corrupt(position: number, reason: string): RunnelError {
    return new RunnelError("storage_corrupt", `corrupt record in ${this.path} at byte ${position}: ${reason}`, {
      details: { file: this.path, position, reason },
    });
  }

  /** Removes the segment's files; the handle closes once in-flight reads finish. */
  async delete(): Promise<void> {
    this.deleted = true;
    for (const ext of [".log", ".index", ".timeindex"] as const) {
      await rm(join(this.dir, segmentFileName(this.baseOffset, ext)), { force: true });
    }
    if (this.refs === 0) await this.closeHandle();
  }

  async close(): Promise<void> {
    await this.closeHandle();
  }

  private async closeHandle(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}
