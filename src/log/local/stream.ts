/**
 * One stream of the local log: its partitions, its commit file, and the group commit that turns
 * concurrent append() calls into one write per partition, one fdatasync per partition touched,
 * and one fdatasync of the commit file.
 *
 * Group commit: appends queue while a group is being made durable; the next group takes every
 * queued append at once. Each group gets the next stream-wide commit sequence, stamped on every
 * record it writes. Order of durability: partition files (in parallel) → commit file → records
 * become visible and appends resolve. Recovery truncates partition tails stamped with a sequence
 * above the commit file's, so a batch spanning partitions is all there or not at all.
 *
 * A group writes each partition's records as record batches (batch.ts): one frame, CRC and set
 * of fixed fields per MAX_BATCH_BYTES of records rather than per record, which is most of what
 * makes large appends cheap in CPU and in bytes on disk.
 *
 * A group whose appends each fall in one partition is atomic without the commit file: its
 * batches are flagged self-committing and each partition's last one marks the end (record.ts),
 * so recovery keeps the group's records in a partition exactly when they are all there. Such a
 * group (every group of single-event appends) is acknowledged after one round of fdatasync
 * instead of two, which is what keeps single-event acknowledgement latency low.
 */
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import type { Clock } from "../../core/clock.js";
import { fsyncDir, writeFileDurable } from "../../core/durable-file.js";
import { isRunnelError, RunnelError } from "../../core/errors.js";
import { SerialQueue } from "../../core/serial-queue.js";
import { partitionForKey } from "../partitioner.js";
import type { AppendRecord, LogRecord, RecordPosition } from "../types.js";
import {
  BATCH_OVERHEAD,
  batchRecordBytes,
  headerBlockBytes,
  MAX_BATCH_BYTES,
  timestampFieldBytes,
  writeBatchHeader,
  writeBatchRecord,
} from "./batch.js";
import { CommitFile } from "./commit-file.js";
import { ConsumerOffsets } from "./consumer-offsets.js";
import type { GroupCommitReport, RecoveryReport, RollPolicy } from "./options.js";
import type { PublishMark, RetentionResult } from "./partition.js";
import { Partition } from "./partition.js";
import { asciiPartition } from "./placement.js";
import { ATTR_APPEND_END, ATTR_SELF_COMMIT } from "./record.js";

export interface StreamMeta {
  readonly name: string;
  readonly partitions: number;
  readonly retentionMs?: number;
  readonly retentionBytes?: number;
}

/** Counters the log exposes through stats(). */
export interface LogCounters {
  appends: number;
  records: number;
  groups: number;
  /** fdatasync calls on partition and commit files (directory fsyncs are not counted). */
  syncs: number;
  /** Appends refused because their group failed to write or commit (a full disk). */
  failedAppends: number;
  /** Times a stream truncated its partitions back to the last published record after a failure. */
  rollbacks: number;
  rolledBackBytes: number;
}

export interface StreamEnv {
  readonly clock: Clock;
  readonly policy: RollPolicy;
  readonly counters: LogCounters;
  /** Called after a group becomes visible. */
  readonly notify: (stream: string) => void;
  /** Called after a group becomes durable, with its size (monitoring). */
  readonly onGroupCommit?: (report: GroupCommitReport) => void;
}

interface Group {
  readonly appends: PendingAppend[];
  readonly recordCount: number;
  /** Encoded bytes per partition (its batches, frames included). */
  readonly bytes: number[];
  readonly touched: number[];
  /** Touched partitions whose active segment must roll before the group is written. */
  rolls: number[];
  /** Some append spans partitions, so the group is durable only once the commit file says so. */
  readonly needsCommit: boolean;
  readonly ingestTime: number;
  seq: number;
  /** Per touched partition, where its writes ended (published on commit). */
  readonly marks: PublishMark[];
  /** Per append, the position of each record. */
  readonly positions: RecordPosition[][];
}

/**
 * Per-record placement of the group being planned, per-partition batch state, and the encode
 * buffer, kept across groups so the append path allocates almost nothing per record. Only one
 * group is planned or encoded at a time (the pump is sequential), and a group's buffer is free
 * once its writes have finished.
 */
class Scratch {
  partition = new Int32Array(1024);
  keyBytes = new Int32Array(1024);
  headerBytes = new Int32Array(1024);
  ascii = new Uint8Array(1024);
  /** 1 where a record opens a new batch in its partition (plan decides, write follows). */
  opensBatch = new Uint8Array(1024);
  /** Per partition: bytes of its open batch while planning; its buffer position while writing. */
  batchAt = new Float64Array(16);
  batchBaseOffset = new Float64Array(16);
  batchBaseTimestamp = new Float64Array(16);
  batchMaxTimestamp = new Float64Array(16);
  batchCount = new Int32Array(16);
  private buf = Buffer.allocUnsafeSlow(256 * 1024);

  ensure(records: number, partitions: number): this {
    if (records > this.partition.length) {
      const size = Math.max(records, this.partition.length * 2);
      this.partition = new Int32Array(size);
      this.keyBytes = new Int32Array(size);
      this.headerBytes = new Int32Array(size);
      this.ascii = new Uint8Array(size);
      this.opensBatch = new Uint8Array(size);
    }
    if (partitions > this.batchAt.length) {
      this.batchAt = new Float64Array(partitions);
      this.batchBaseOffset = new Float64Array(partitions);
      this.batchBaseTimestamp = new Float64Array(partitions);
      this.batchMaxTimestamp = new Float64Array(partitions);
      this.batchCount = new Int32Array(partitions);
    }
    return this;
  }

  buffer(bytes: number): Buffer {
    if (bytes > MAX_RETAINED_BUFFER_BYTES) return Buffer.allocUnsafeSlow(bytes);
    if (bytes > this.buf.length) this.buf = Buffer.allocUnsafeSlow(Math.min(MAX_RETAINED_BUFFER_BYTES, bytes * 2));
    return this.buf;
  }
}

/** Larger groups get a one-off buffer rather than pinning that much memory per stream. */
const MAX_RETAINED_BUFFER_BYTES = 8 * 1024 * 1024;

interface PendingAppend {
  readonly records: readonly AppendRecord[];
  readonly resolve: (positions: RecordPosition[]) => void;
  readonly reject: (error: unknown) => void;
}

const META_FILE = "stream.json";
const COMMIT_FILE = "commit";
const OFFSETS_DIR = "offsets";

export class StreamLog {
  private pending: PendingAppend[] = [];
  private pumpQueued = false;
  /**
   * The pump and the stream's other tasks (retention, close), one at a time; the pump yields
   * to waiting tasks between groups.
   */
  private readonly tasks = new SerialQueue();
  private readonly scratch = new Scratch();
  /** Set by a failed group: partitions hold unpublished bytes to truncate before the next write. */
  private rollbackNeeded = false;
  /** Why the pending rollback is needed, for the groups refused with it. */
  private rollbackError: RunnelError = new RunnelError("internal", "append failed");
  /** Wakes a pump waiting on a commit when new appends arrive. */
  private wake: (() => void) | undefined;
  /** Set when a rollback itself failed: the files' state is unknown until the log is reopened. */
  private failure: unknown;
  private closed = false;
  private lastSeq: number;
  readonly offsets: ConsumerOffsets;

  private constructor(
    readonly dir: string,
    public meta: StreamMeta,
    private readonly partitions: Partition[],
    private readonly commitFile: CommitFile,
    private readonly env: StreamEnv,
  ) {
    // Self-committed appends carry sequences the commit file never saw: number new groups after them.
    this.lastSeq = Math.max(commitFile.committedSeq, ...partitions.map((p) => p.recoveredSeq));
    this.offsets = new ConsumerOffsets(join(dir, OFFSETS_DIR));
  }

  /** Lays out a new stream directory in `staging` (durably); the caller renames it into place. */
  static async initialise(staging: string, meta: StreamMeta): Promise<void> {
    await mkdir(staging);
    await writeFileDurable(join(staging, META_FILE), JSON.stringify(meta));
    const commit = await CommitFile.create(join(staging, COMMIT_FILE));
    await commit.close();
    await mkdir(join(staging, OFFSETS_DIR));
    for (let p = 0; p < meta.partitions; p++) await mkdir(join(staging, String(p)));
    await fsyncDir(staging);
  }

  static async readMeta(dir: string): Promise<StreamMeta> {
    const path = join(dir, META_FILE);
    try {
      const meta = JSON.parse(await readFile(path, "utf8")) as StreamMeta;
      if (typeof meta.name !== "string" || !Number.isInteger(meta.partitions) || meta.partitions < 1) {
        throw new Error("missing name or partitions");
      }
      return meta;
    } catch (e) {
      throw new RunnelError("storage_corrupt", `stream metadata ${path} is unreadable`, { cause: e });
    }
  }

  static async open(dir: string, env: StreamEnv, onRecovery: (report: RecoveryReport) => void): Promise<StreamLog> {
    const meta = await StreamLog.readMeta(dir);
    const commitFile = await CommitFile.open(join(dir, COMMIT_FILE));
    const partitions: Partition[] = [];
    try {
      for (let p = 0; p < meta.partitions; p++) {
        const ctx = { stream: meta.name, partition: p, dir: join(dir, String(p)) };
        await mkdir(ctx.dir, { recursive: true });
        partitions.push(await Partition.open(ctx, commitFile.committedSeq, onRecovery));
      }
    } catch (e) {
      await Promise.all(partitions.map((p) => p.close()));
      await commitFile.close();
      throw e;
    }
    return new StreamLog(dir, meta, partitions, commitFile, env);
  }

  get name(): string {
    return this.meta.name;
  }

  get partitionCount(): number {
    return this.partitions.length;
  }

  async updateMeta(meta: StreamMeta): Promise<void> {
    await writeFileDurable(join(this.dir, META_FILE), JSON.stringify(meta));
    this.meta = meta;
  }

  append(records: readonly AppendRecord[]): Promise<RecordPosition[]> {
    if (this.closed) return Promise.reject(this.closedError());
    if (this.failure !== undefined) return Promise.reject(this.failedError());
    return new Promise<RecordPosition[]>((resolve, reject) => {
      this.pending.push({ records, resolve, reject });
      this.wake?.();
      if (!this.pumpQueued) {
        this.pumpQueued = true;
        void this.tasks.run(() => this.pump());
      }
    });
  }

  /**
   * Turns queued appends into groups until none are left. Group N+1 is encoded, written and
   * fdatasync'ed to the partition files while group N's commit file is being synced, so the
   * disk always has work; commits (and so acknowledgements) stay in sequence order. A group whose
   * commit failed poisons the groups written after it (their records sit behind uncommitted ones),
   * so all of them are refused and rolled back together.
   */
  private async pump(): Promise<void> {
    let committing: Promise<void> | undefined;
    let group: Group | undefined;
    try {
      for (;;) {
        if (this.closed || this.failure !== undefined) break;
        if (this.rollbackNeeded) {
          await committing;
          committing = undefined;
          await this.rollback();
          continue;
        }
        if (this.pending.length === 0) {
          if (committing === undefined) break;
          // Start the next group as soon as appends arrive, without waiting for this commit.
          const settled = await Promise.race([
            committing.then(() => true),
            new Promise<boolean>((resolve) => {
              this.wake = () => resolve(false);
            }),
          ]);
          this.wake = undefined;
          if (settled) committing = undefined;
          continue;
        }
        if (this.tasks.waiting > 0) {
          // Let retention or close run between groups rather than starve them.
          await committing;
          committing = undefined;
          if (!this.rollbackNeeded) break;
          continue;
        }
        group = this.plan(this.pending);
        this.pending = [];
        if (group.rolls.length > 0 && committing !== undefined) {
          // A segment rolls only when all of its records are published (see Partition.rollback).
          await committing;
          committing = undefined;
          if (this.rollbackNeeded) await this.rollback();
          if (this.failure !== undefined) break;
          this.planRolls(group);
        }
        const error = await this.writeGroup(group);
        if (error !== undefined) {
          this.fail(group, this.writeError(error));
        } else {
          committing = this.commitGroup(group, committing);
        }
        group = undefined;
      }
      await committing;
      if (this.rollbackNeeded) await this.rollback();
    } catch (e) {
      // A bug, not an I/O error (those are handled above): stop taking appends.
      this.failure = e;
    } finally {
      if (group !== undefined) this.rejectGroup(group, this.failedError());
      this.pumpQueued = false;
      if (this.pending.length > 0) {
        if (this.closed || this.failure !== undefined) {
          const error = this.closed ? this.closedError() : this.failedError();
          for (const a of this.pending) a.reject(error);
          this.pending = [];
        } else {
          this.pumpQueued = true;
          void this.tasks.run(() => this.pump());
        }
      }
    }
  }

  /**
   * Places every record (hash, sizes), cuts each partition's records into batches, and decides
   * which partitions must roll first.
   */
  private plan(appends: PendingAppend[]): Group {
    const n = this.partitions.length;
    let recordCount = 0;
    for (const a of appends) recordCount += a.records.length;
    const scratch = this.scratch.ensure(recordCount, n);
    const { partition: part, opensBatch, batchAt: batchBytes, batchBaseTimestamp: baseTimestamp } = scratch;
    batchBytes.fill(0, 0, n);
    const bytes = new Array<number>(n).fill(0);
    let needsCommit = false;
    let i = 0;
    for (const a of appends) {
      const first = i;
      for (const r of a.records) {
        let p = asciiPartition(r.key, n);
        let keyBytes = r.key.length;
        if (p >= 0) scratch.ascii[i] = 1;
        else {
          p = partitionForKey(r.key, n);
          keyBytes = Buffer.byteLength(r.key, "utf8");
          scratch.ascii[i] = 0;
        }
        const headerBytes = r.headers === undefined ? 0 : headerBlockBytes(r.headers);
        part[i] = p;
        scratch.keyBytes[i] = keyBytes;
        scratch.headerBytes[i] = headerBytes;
        const valueBytes = r.value.length;
        const open = batchBytes[p]!;
        let size = 0;
        if (open > 0) {
          size = batchRecordBytes(
            timestampFieldBytes(r.timestamp, baseTimestamp[p]!),
            keyBytes,
            headerBytes,
            valueBytes,
          );
        }
        if (open > 0 && open + size <= MAX_BATCH_BYTES) {
          opensBatch[i] = 0;
          batchBytes[p] = open + size;
        } else {
          // The first record of a batch is its base (a one-byte timestamp field but for -0).
          size =
            BATCH_OVERHEAD +
            batchRecordBytes(timestampFieldBytes(r.timestamp, r.timestamp), keyBytes, headerBytes, valueBytes);
          opensBatch[i] = 1;
          baseTimestamp[p] = r.timestamp;
          batchBytes[p] = size;
        }
        bytes[p] = bytes[p]! + size;
        i++;
      }
      if (!needsCommit) for (let k = first + 1; k < i; k++) if (part[k] !== part[first]) needsCommit = true;
    }
    const touched: number[] = [];
    for (let p = 0; p < n; p++) if (bytes[p]! > 0) touched.push(p);
    const group: Group = {
      appends,
      recordCount,
      bytes,
      touched,
      rolls: [],
      needsCommit,
      ingestTime: this.env.clock.now(),
      seq: 0,
      marks: [],
      positions: [],
    };
    this.planRolls(group);
    return group;
  }

  private planRolls(group: Group): void {
    group.rolls = group.touched.filter((p) =>
      this.partitions[p]!.needsRoll(group.bytes[p]!, group.ingestTime, this.env.policy),
    );
  }

  /**
   * Encodes the group into one buffer (a region of batches per partition, reused across groups),
   * then writes and fdatasyncs every touched partition in parallel. Resolves to the error, if
   * any, only after every partition's I/O has finished, so a rollback never races a write.
   */
  private async writeGroup(group: Group): Promise<unknown> {
    try {
      await Promise.all(group.rolls.map((p) => this.partitions[p]!.roll()));
    } catch (e) {
      return e;
    }
    const seq = ++this.lastSeq;
    group.seq = seq;
    const n = this.partitions.length;
    const regionStart = new Array<number>(n);
    let total = 0;
    for (let p = 0; p < n; p++) {
      regionStart[p] = total;
      total += group.bytes[p]!;
    }
    const buf = this.scratch.buffer(total);
    const cursor = regionStart.slice();
    const segments = this.partitions.map((p) => p.active);
    const scratch = this.scratch;
    const { partition: part, keyBytes, headerBytes, ascii, opensBatch, batchAt, batchCount } = scratch;
    const { batchBaseOffset: baseOffset, batchBaseTimestamp: baseTimestamp, batchMaxTimestamp: maxTimestamp } = scratch;
    for (let p = 0; p < n; p++) {
      batchCount[p] = 0;
      baseOffset[p] = segments[p]!.nextOffset;
    }
    const ingestTime = group.ingestTime;
    // A group of appends each within one partition is atomic per partition by itself (record.ts).
    const attributes = group.needsCommit ? 0 : ATTR_SELF_COMMIT;
    const close = (p: number, last: boolean) => {
      const at = batchAt[p]!;
      const end = cursor[p]!;
      const count = batchCount[p]!;
      const base = baseOffset[p]!;
      const attrs = last && attributes !== 0 ? attributes | ATTR_APPEND_END : attributes;
      writeBatchHeader(buf, at, end, attrs, count, base, baseTimestamp[p]!, maxTimestamp[p]!, ingestTime, seq);
      const segment = segments[p]!;
      segment.track(base, count, segment.size + at - regionStart[p]!, end - at, maxTimestamp[p]!, ingestTime);
      baseOffset[p] = base + count;
      batchCount[p] = 0;
    };
    let i = 0;
    for (const a of group.appends) {
      const records = a.records;
      const positions = new Array<RecordPosition>(records.length);
      for (let j = 0; j < records.length; j++, i++) {
        const r = records[j]!;
        const p = part[i]!;
        const timestamp = r.timestamp;
        if (opensBatch[i] === 1) {
          if (batchCount[p]! > 0) close(p, false);
          batchAt[p] = cursor[p]!;
          cursor[p] = cursor[p]! + BATCH_OVERHEAD;
          baseTimestamp[p] = timestamp;
          maxTimestamp[p] = timestamp;
        } else if (timestamp > maxTimestamp[p]!) maxTimestamp[p] = timestamp;
        const count = batchCount[p]!;
        cursor[p] = writeBatchRecord(
          buf,
          cursor[p]!,
          timestamp,
          baseTimestamp[p]!,
          r.key,
          keyBytes[i]!,
          ascii[i] === 1,
          r.value,
          r.headers,
          headerBytes[i]!,
        );
        batchCount[p] = count + 1;
        positions[j] = { partition: p, offset: baseOffset[p]! + count };
      }
      group.positions.push(positions);
    }
    for (const p of group.touched) close(p, true);
    const results = await Promise.allSettled(
      group.touched.map(async (p) => {
        const segment = segments[p]!;
        await segment.write(buf.subarray(regionStart[p]!, cursor[p]!));
        await segment.datasync();
      }),
    );
    this.env.counters.syncs += group.touched.length;
    for (const p of group.touched) group.marks[p] = this.partitions[p]!.mark();
    for (const r of results) if (r.status === "rejected") return r.reason;
    return undefined;
  }

  /** Commits `group` once `prior` has; publishes and acknowledges it. Never rejects. */
  private async commitGroup(group: Group, prior: Promise<unknown> | undefined): Promise<void> {
    await prior;
    if (this.rollbackNeeded || this.failure !== undefined) {
      // Its records sit behind a failed group's in the partition files: they go too.
      this.rejectGroup(group, this.failure !== undefined ? this.failedError() : this.rollbackError);
      return;
    }
    try {
      // A group of appends each within one partition was made durable by its fdatasyncs (ATTR_SELF_COMMIT).
      if (group.needsCommit) {
        await this.commitFile.commit(group.seq);
        this.env.counters.syncs += 1;
      }
    } catch (e) {
      this.fail(group, this.writeError(e));
      return;
    }
    for (const p of group.touched) this.partitions[p]!.publish(group.marks[p]!);
    const counters = this.env.counters;
    counters.groups++;
    counters.appends += group.appends.length;
    counters.records += group.recordCount;
    this.env.onGroupCommit?.({
      stream: this.meta.name,
      appends: group.appends.length,
      records: group.recordCount,
      partitions: group.touched.length,
    });
    for (let g = 0; g < group.appends.length; g++) group.appends[g]!.resolve(group.positions[g]!);
    this.env.notify(this.meta.name);
  }

  /**
   * Truncates every partition back to its last published record after a failed group, so the
   * log is appendable again (a full disk has room once something is deleted). Sequence numbers
   * of failed groups are never reused: a commit whose fdatasync failed may still have reached
   * the disk. If the truncation itself fails the stream refuses appends until the log is reopened.
   */
  private async rollback(): Promise<void> {
    this.rollbackNeeded = false;
    try {
      let bytes = 0;
      for (const p of this.partitions)
        if (p.hasUnpublished || p.active.size !== p.active.committedSize) {
          bytes += await p.rollback();
        }
      this.env.counters.rollbacks++;
      this.env.counters.rolledBackBytes += bytes;
    } catch (e) {
      this.failure = e;
    }
  }

  private fail(group: Group, error: RunnelError): void {
    this.rollbackNeeded = true;
    this.rollbackError = error;
    this.rejectGroup(group, error);
  }

  private rejectGroup(group: Group, error: unknown): void {
    this.env.counters.failedAppends += group.appends.length;
    for (const a of group.appends) a.reject(error);
  }

  /** A full disk is the operator's to fix and the client's to retry; anything else is ours. */
  private writeError(e: unknown): RunnelError {
    if (isRunnelError(e)) return e;
    const code = (e as NodeJS.ErrnoException | undefined)?.code;
    if (code === "ENOSPC" || code === "EDQUOT" || code === "EFBIG") {
      return new RunnelError(
        "storage_full",
        `disk full (${code}): append to stream "${this.meta.name}" refused; the log stays readable and takes appends again once space is freed`,
        { cause: e, details: { stream: this.meta.name, errno: code } },
      );
    }
    return new RunnelError(
      "internal",
      `append to stream "${this.meta.name}" failed to write; nothing was acknowledged`,
      {
        cause: e,
      },
    );
  }

  private closedError(): RunnelError {
    return new RunnelError("stream_not_found", `stream "${this.meta.name}" was deleted or the log was closed`);
  }

  private failedError(): RunnelError {
    return new RunnelError("internal", `log of stream "${this.meta.name}" failed to write; reopen the log to recover`, {
      cause: this.failure,
    });
  }

  partition(p: number): Partition {
    const partition = this.partitions[p];
    if (partition === undefined || !Number.isInteger(p)) {
      throw new RunnelError(
        "invalid_input",
        `stream "${this.meta.name}" has partitions 0–${this.partitions.length - 1}, not ${p}`,
      );
    }
    return partition;
  }

  read(p: number, offset: number, maxRecords: number, maxBytes: number): Promise<LogRecord[]> {
    return this.partition(p).read(offset, maxRecords, maxBytes);
  }

  startOffsets(): number[] {
    return this.partitions.map((p) => p.startOffset);
  }

  endOffsets(): number[] {
    return this.partitions.map((p) => p.highWatermark);
  }

  offsetsForTime(timestamp: number): Promise<number[]> {
    return Promise.all(this.partitions.map((p) => p.offsetForTime(timestamp)));
  }

  enforceRetention(): Promise<RetentionResult> {
    return this.tasks.run(async () => {
      const total: RetentionResult = { deletedSegments: 0, deletedBytes: 0 };
      if (this.closed || (this.meta.retentionMs === undefined && this.meta.retentionBytes === undefined)) return total;
      const now = this.env.clock.now();
      for (const p of this.partitions) {
        const r = await p.enforceRetention(now, this.meta.retentionMs, this.meta.retentionBytes);
        total.deletedSegments += r.deletedSegments;
        total.deletedBytes += r.deletedBytes;
      }
      return total;
    });
  }

  /** Waits for queued groups, then closes every file. Later appends fail with stream_not_found. */
  close(): Promise<void> {
    return this.tasks.run(async () => {
      if (this.closed) return;
      this.closed = true;
      const error = this.closedError();
      for (const a of this.pending) a.reject(error);
      this.pending = [];
      await Promise.all(this.partitions.map((p) => p.close()));
      await this.commitFile.close();
    });
  }
}

/** Moves a directory aside atomically so a crash never leaves half a stream behind. */
export async function renameDurably(from: string, to: string, parent: string): Promise<void> {
  await rename(from, to);
  await fsyncDir(parent);
}

/** True when `path` exists and is a stream directory. */
export async function isStreamDir(path: string): Promise<boolean> {
  try {
    const handle = await open(join(path, META_FILE), "r");
    await handle.close();
    return true;
  } catch {
    return false;
  }
}
