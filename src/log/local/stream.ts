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
 */
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import type { Clock } from "../../core/clock.js";
import { RunnelError } from "../../core/errors.js";
import { partitionForKey } from "../partitioner.js";
import type { AppendRecord, LogRecord, RecordPosition } from "../types.js";
import { CommitFile } from "./commit-file.js";
import { ConsumerOffsets } from "./consumer-offsets.js";
import { fsyncDir, writeFileDurable } from "./fs-util.js";
import type { RecoveryReport, RollPolicy } from "./options.js";
import type { RetentionResult } from "./partition.js";
import { Partition } from "./partition.js";

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
}

export interface StreamEnv {
  readonly clock: Clock;
  readonly policy: RollPolicy;
  readonly counters: LogCounters;
  /** Called after a group becomes visible. */
  readonly notify: (stream: string) => void;
}

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
  private flushQueued = false;
  private chain: Promise<unknown> = Promise.resolve();
  /** Set when a group failed half-way: the files' state is unknown until the log is reopened. */
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
    this.lastSeq = commitFile.committedSeq;
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

  /** Runs `task` after every earlier group and task of this stream has finished. */
  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.chain.then(task);
    this.chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  append(records: readonly AppendRecord[]): Promise<RecordPosition[]> {
    if (this.closed) return Promise.reject(this.closedError());
    if (this.failure !== undefined) return Promise.reject(this.failedError());
    return new Promise<RecordPosition[]>((resolve, reject) => {
      this.pending.push({ records, resolve, reject });
      if (!this.flushQueued) {
        this.flushQueued = true;
        void this.exclusive(() => this.flushGroup());
      }
    });
  }

  private async flushGroup(): Promise<void> {
    const group = this.pending;
    this.pending = [];
    this.flushQueued = false;
    if (this.closed || this.failure !== undefined) {
      const error = this.closed ? this.closedError() : this.failedError();
      for (const a of group) a.reject(error);
      return;
    }
    const n = this.partitions.length;
    const buckets: AppendRecord[][] = Array.from({ length: n }, () => []);
    // For each request, the partition of each record and its index within that partition's bucket.
    const placements: Int32Array[] = [];
    let recordCount = 0;
    for (const a of group) {
      const place = new Int32Array(a.records.length * 2);
      for (let i = 0; i < a.records.length; i++) {
        const r = a.records[i]!;
        const p = partitionForKey(r.key, n);
        const bucket = buckets[p]!;
        place[i * 2] = p;
        place[i * 2 + 1] = bucket.length;
        bucket.push(r);
      }
      placements.push(place);
      recordCount += a.records.length;
    }
    const seq = this.lastSeq + 1;
    const ingestTime = this.env.clock.now();
    const firstOffsets = new Array<number>(n).fill(0);
    const touched: number[] = [];
    for (let p = 0; p < n; p++) if (buckets[p]!.length > 0) touched.push(p);
    try {
      await Promise.all(
        touched.map(async (p) => {
          const partition = this.partitions[p]!;
          firstOffsets[p] = await partition.write(buckets[p]!, ingestTime, seq, this.env.policy);
          await partition.sync();
        }),
      );
      this.env.counters.syncs += touched.length;
      await this.commitFile.commit(seq);
      this.env.counters.syncs += 1;
    } catch (e) {
      // After a failed write or fdatasync the kernel may have dropped dirty pages: trust nothing
      // until reopen, which recovers from what is really on disk.
      this.failure = e;
      const error = this.failedError();
      for (const a of group) a.reject(error);
      return;
    }
    this.lastSeq = seq;
    for (const p of touched) this.partitions[p]!.publish();
    const counters = this.env.counters;
    counters.groups++;
    counters.appends += group.length;
    counters.records += recordCount;
    for (let g = 0; g < group.length; g++) {
      const place = placements[g]!;
      const positions = new Array<RecordPosition>(place.length / 2);
      for (let i = 0; i < positions.length; i++) {
        const p = place[i * 2]!;
        positions[i] = { partition: p, offset: firstOffsets[p]! + place[i * 2 + 1]! };
      }
      group[g]!.resolve(positions);
    }
    this.env.notify(this.meta.name);
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
    return this.exclusive(async () => {
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
    return this.exclusive(async () => {
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
