/**
 * The local EventLog: segment files per partition under one directory per stream.
 *
 * Layout:
 *   <dir>/<stream>/stream.json            name, partitions, retention
 *   <dir>/<stream>/commit                 last committed group sequence (commit-file.ts)
 *   <dir>/<stream>/<partition>/<base>.log record batches (batch.ts; older files may also hold
 *                                         per-record entries, record.ts), plus .index/.timeindex
 *                                         once sealed
 *   <dir>/<stream>/offsets/<group>.json   committed consumer positions
 *   <dir>/.lock                           held by the one process that has the log open (dir-lock.ts)
 *
 * Durability: append() resolves after its records are fdatasync'ed, and, for a batch spanning
 * partitions, the stream's commit file too. A full disk refuses the append with storage_full and
 * truncates what the failed group wrote, so the log stays readable and appendable.
 * Recovery (open): a torn tail is truncated and reported through `onRecovery`; damage followed
 * by committed records is never skipped — open() throws RunnelError("storage_corrupt") naming
 * the file and byte position, and an operator must decide (restore, or truncate by hand).
 *
 * @example
 *   const log = new LocalEventLog({ dir: "./data/log" });
 *   await log.open();
 *   await log.createStream("clicks", { partitions: 4, retentionMs: 7 * 86_400_000 });
 *   const [pos] = await log.append("clicks", [{ key: "u1", timestamp: Date.now(), value: bytes }]);
 *   const records = await log.read("clicks", pos.partition, pos.offset);
 */
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { systemClock } from "../../core/clock.js";
import { RunnelError } from "../../core/errors.js";
import { SerialQueue } from "../../core/serial-queue.js";
import type {
  AppendRecord,
  EventLog,
  EventLogCapabilities,
  LogRecord,
  ReadOptions,
  RecordPosition,
  StreamLogOptions,
} from "../types.js";
import { type DirectoryLock, type DirectoryLockOptions, lockDirectory } from "./dir-lock.js";
import { decodeName, encodeName } from "./fs-util.js";
import type { LocalEventLogOptions, RecoveryReport } from "./options.js";
import {
  DEFAULT_READ_MAX_BYTES,
  DEFAULT_READ_MAX_RECORDS,
  DEFAULT_SEGMENT_BYTES,
  DEFAULT_SEGMENT_MAX_AGE_MS,
  MAX_SEGMENT_BYTES,
} from "./options.js";
import { MAX_HEADER_PART_BYTES, MAX_HEADERS, MAX_KEY_BYTES } from "./record.js";
import type { LogCounters, StreamEnv, StreamMeta } from "./stream.js";
import { isStreamDir, renameDurably, StreamLog } from "./stream.js";

/**
 * What monitoring publishes about the local log (src/monitoring maps these to Prometheus names;
 * the log itself stays free of any metrics library).
 */
export interface LocalEventLogStats extends LogCounters {
  readonly streams: number;
  /** Partition tails truncated while opening (torn writes, uncommitted batches), since construction. */
  readonly recoveredTails: number;
  readonly recoveredBytes: number;
}

const STAGING_PREFIX = ".creating-";
const DELETING_PREFIX = ".deleting-";
let stagingCounter = 0;

export class LocalEventLog implements EventLog {
  /** Offsets are dense, and a batch spanning partitions becomes readable at its commit-file write. */
  static readonly capabilities: EventLogCapabilities = Object.freeze({
    denseOffsets: true,
    simultaneousVisibility: true,
  });
  readonly capabilities: EventLogCapabilities = LocalEventLog.capabilities;

  private readonly dir: string;
  private readonly lockOptions: DirectoryLockOptions;
  private readonly env: StreamEnv;
  private readonly onRecovery: (report: RecoveryReport) => void;
  private readonly streams = new Map<string, StreamLog>();
  private readonly recoveries: RecoveryReport[] = [];
  private recoveredBytes = 0;
  private readonly listeners = new Map<string, Set<() => void>>();
  private readonly counters: LogCounters = {
    appends: 0,
    records: 0,
    groups: 0,
    syncs: 0,
    failedAppends: 0,
    rollbacks: 0,
    rolledBackBytes: 0,
  };
  /** Serialises stream creation and deletion. */
  private readonly adminQueue = new SerialQueue();
  private state: "new" | "open" | "closed" = "new";
  private lock: DirectoryLock | undefined;

  constructor(options: LocalEventLogOptions) {
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isInteger(segmentBytes) || segmentBytes < 1 || segmentBytes > MAX_SEGMENT_BYTES) {
      throw new RunnelError("invalid_input", `segmentBytes must be an integer from 1 to ${MAX_SEGMENT_BYTES}`);
    }
    const segmentMaxAgeMs = options.segmentMaxAgeMs ?? DEFAULT_SEGMENT_MAX_AGE_MS;
    if (!(segmentMaxAgeMs > 0)) throw new RunnelError("invalid_input", "segmentMaxAgeMs must be positive");
    this.dir = options.dir;
    this.lockOptions = options.lock ?? {};
    const onRecovery = options.onRecovery;
    this.onRecovery = (report) => {
      this.recoveries.push(report);
      this.recoveredBytes += report.bytesTruncated;
      onRecovery?.(report);
    };
    this.env = {
      clock: options.clock ?? systemClock,
      policy: { segmentBytes, segmentMaxAgeMs },
      counters: this.counters,
      notify: (stream) => this.notify(stream),
      ...(options.onGroupCommit !== undefined && { onGroupCommit: guarded(options.onGroupCommit) }),
    };
  }

  async open(): Promise<void> {
    if (this.state === "open") return;
    await mkdir(this.dir, { recursive: true });
    // Before anything is read: a second process must not even repair a tail the first is writing.
    const lock = await lockDirectory(this.dir, this.lockOptions);
    const opened: StreamLog[] = [];
    try {
      for (const entry of await readdir(this.dir, { withFileTypes: true })) {
        if (!entry.isDirectory()) continue;
        const path = join(this.dir, entry.name);
        if (entry.name.startsWith(STAGING_PREFIX) || entry.name.startsWith(DELETING_PREFIX)) {
          // Left by a crash in the middle of createStream/deleteStream: never part of the log.
          await rm(path, { recursive: true, force: true });
          continue;
        }
        if (!(await isStreamDir(path))) continue;
        const stream = await StreamLog.open(path, this.env, this.onRecovery);
        opened.push(stream);
        if (stream.name !== decodeName(entry.name)) {
          throw new RunnelError("storage_corrupt", `stream directory ${path} holds stream "${stream.name}"`);
        }
      }
    } catch (e) {
      await Promise.all(opened.map((s) => s.close()));
      await lock.release();
      throw e;
    }
    for (const s of opened) this.streams.set(s.name, s);
    this.lock = lock;
    this.state = "open";
  }

  async close(): Promise<void> {
    if (this.state !== "open") {
      this.state = "closed";
      return;
    }
    this.state = "closed";
    await this.adminQueue.idle();
    await Promise.all([...this.streams.values()].map((s) => s.close()));
    this.streams.clear();
    await this.lock?.release();
    this.lock = undefined;
  }

  /**
   * Ready once open. A full disk does not make the log unready: appends are refused with
   * storage_full (507) while reads go on, and the disk's free space has its own metric and alert.
   */
  async ping(): Promise<boolean> {
    return this.state === "open";
  }

  /**
   * Counters since construction, for monitoring to poll: `syncs` shows group commit at work
   * (syncs ≪ appends); `failedAppends` and `rollbacks` show a full disk; `recoveredTails` shows
   * crashes repaired on open.
   */
  stats(): LocalEventLogStats {
    return {
      ...this.counters,
      streams: this.streams.size,
      recoveredTails: this.recoveries.length,
      recoveredBytes: this.recoveredBytes,
    };
  }

  /** Bytes of each stream's segment files (internal streams included), from memory: cheap at every scrape. */
  streamSizes(): Map<string, number> {
    const sizes = new Map<string, number>();
    for (const [name, stream] of this.streams) {
      let bytes = 0;
      for (let p = 0; p < stream.meta.partitions; p++) bytes += stream.partition(p).sizeBytes;
      sizes.set(name, bytes);
    }
    return sizes;
  }

  /** Every truncation done while opening, in order (at most one per partition per open). */
  recoveryReports(): readonly RecoveryReport[] {
    return [...this.recoveries];
  }

  async createStream(stream: string, options: StreamLogOptions): Promise<void> {
    this.assertOpen();
    validateStreamOptions(stream, options);
    return this.adminQueue.run(async () => {
      this.assertOpen();
      const meta: StreamMeta = {
        name: stream,
        partitions: options.partitions,
        ...(options.retentionMs !== undefined && { retentionMs: options.retentionMs }),
        ...(options.retentionBytes !== undefined && { retentionBytes: options.retentionBytes }),
      };
      const existing = this.streams.get(stream);
      if (existing !== undefined) {
        if (existing.partitionCount !== options.partitions) {
          throw new RunnelError(
            "conflict",
            `stream "${stream}" exists with ${existing.partitionCount} partitions, not ${options.partitions}`,
          );
        }
        // Same partitions: idempotent; a changed retention is applied (as Kafka's alter config).
        if (existing.meta.retentionMs !== meta.retentionMs || existing.meta.retentionBytes !== meta.retentionBytes) {
          await existing.updateMeta(meta);
        }
        return;
      }
      const staging = join(this.dir, `${STAGING_PREFIX}${process.pid}-${stagingCounter++}`);
      const target = join(this.dir, encodeName(stream));
      try {
        await StreamLog.initialise(staging, meta);
        await renameDurably(staging, target, this.dir);
      } catch (e) {
        await rm(staging, { recursive: true, force: true });
        throw e;
      }
      this.streams.set(stream, await StreamLog.open(target, this.env, this.onRecovery));
    });
  }

  async deleteStream(stream: string): Promise<void> {
    this.assertOpen();
    return this.adminQueue.run(async () => {
      const s = this.stream(stream);
      this.streams.delete(stream);
      await s.close();
      const aside = join(this.dir, `${DELETING_PREFIX}${process.pid}-${stagingCounter++}`);
      await renameDurably(s.dir, aside, this.dir);
      await rm(aside, { recursive: true, force: true });
    });
  }

  hasStream(stream: string): boolean {
    return this.streams.has(stream);
  }

  partitionCount(stream: string): number {
    return this.stream(stream).partitionCount;
  }

  append(stream: string, records: readonly AppendRecord[]): Promise<RecordPosition[]> {
    try {
      const s = this.stream(stream);
      for (const r of records) validateRecord(r);
      if (records.length === 0) return Promise.resolve([]);
      return s.append(records);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async read(stream: string, partition: number, offset: number, options: ReadOptions = {}): Promise<LogRecord[]> {
    const s = this.stream(stream);
    if (!Number.isInteger(offset) || offset < 0) {
      throw new RunnelError("invalid_input", `offset must be a non-negative integer, got ${offset}`);
    }
    const maxRecords = options.maxRecords ?? DEFAULT_READ_MAX_RECORDS;
    const maxBytes = options.maxBytes ?? DEFAULT_READ_MAX_BYTES;
    if (!(maxRecords >= 1) || !(maxBytes >= 1)) {
      throw new RunnelError("invalid_input", "maxRecords and maxBytes must be at least 1");
    }
    return s.read(partition, offset, maxRecords, maxBytes);
  }

  async startOffsets(stream: string): Promise<number[]> {
    return this.stream(stream).startOffsets();
  }

  async endOffsets(stream: string): Promise<number[]> {
    return this.stream(stream).endOffsets();
  }

  async offsetsForTime(stream: string, timestamp: number): Promise<number[]> {
    return this.stream(stream).offsetsForTime(timestamp);
  }

  async commitOffsets(group: string, stream: string, offsets: ReadonlyMap<number, number>): Promise<void> {
    const s = this.stream(stream);
    if (group.length === 0) throw new RunnelError("invalid_input", "consumer group name must not be empty");
    for (const [p, o] of offsets) {
      s.partition(p);
      if (!Number.isInteger(o) || o < 0) {
        throw new RunnelError("invalid_input", `offset for partition ${p} must be a non-negative integer, got ${o}`);
      }
    }
    await s.offsets.commit(group, offsets);
  }

  async committedOffsets(group: string, stream: string): Promise<Map<number, number>> {
    return this.stream(stream).offsets.get(group);
  }

  onAppend(stream: string, listener: () => void): () => void {
    let set = this.listeners.get(stream);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(stream, set);
    }
    const own = set;
    // Wrapped so the same function can be registered twice and removed once per registration.
    const entry = () => listener();
    own.add(entry);
    return () => {
      own.delete(entry);
      if (own.size === 0 && this.listeners.get(stream) === own) this.listeners.delete(stream);
    };
  }

  /** Deletes old segments of every stream per its retention; call periodically. */
  async enforceRetention(): Promise<{ deletedSegments: number; deletedBytes: number }> {
    this.assertOpen();
    const total = { deletedSegments: 0, deletedBytes: 0 };
    for (const s of [...this.streams.values()]) {
      const r = await s.enforceRetention();
      total.deletedSegments += r.deletedSegments;
      total.deletedBytes += r.deletedBytes;
    }
    return total;
  }

  private notify(stream: string): void {
    const set = this.listeners.get(stream);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        listener();
      } catch {
        // A consumer's listener must not break the append path of every other writer.
      }
    }
  }

  private assertOpen(): void {
    if (this.state !== "open") throw new RunnelError("not_ready", "the event log is not open");
  }

  private stream(name: string): StreamLog {
    this.assertOpen();
    const s = this.streams.get(name);
    if (s === undefined) throw new RunnelError("stream_not_found", `stream "${name}" does not exist`);
    return s;
  }
}

function validateStreamOptions(stream: string, options: StreamLogOptions): void {
  if (typeof stream !== "string" || stream.length === 0 || stream.length > 200) {
    throw new RunnelError("invalid_input", "stream name must be 1–200 characters");
  }
  if (!Number.isInteger(options.partitions) || options.partitions < 1 || options.partitions > 10_000) {
    throw new RunnelError("invalid_input", `partitions must be an integer from 1 to 10000, got ${options.partitions}`);
  }
  for (const field of ["retentionMs", "retentionBytes"] as const) {
    const v = options[field];
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) {
      throw new RunnelError("invalid_input", `${field} must be a positive number, got ${v}`);
    }
  }
}

function validateRecord(r: AppendRecord): void {
  // A UTF-16 unit is at most 3 UTF-8 bytes, so short keys need no byte count.
  if (
    typeof r.key !== "string" ||
    (r.key.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(r.key, "utf8") > MAX_KEY_BYTES)
  ) {
    throw new RunnelError("invalid_input", `record key must be a string of at most ${MAX_KEY_BYTES} UTF-8 bytes`);
  }
  if (r.headers !== undefined) validateHeaders(r.headers);
  if (!Number.isFinite(r.timestamp)) {
    throw new RunnelError("invalid_input", `record timestamp must be a finite number, got ${r.timestamp}`);
  }
  if (!(r.value instanceof Uint8Array)) throw new RunnelError("invalid_input", "record value must be a Uint8Array");
}

function validateHeaders(headers: unknown): void {
  if (typeof headers !== "object" || headers === null || Array.isArray(headers)) {
    throw new RunnelError("invalid_input", "record headers must be an object of string values");
  }
  const names = Object.keys(headers);
  if (names.length > MAX_HEADERS) throw new RunnelError("invalid_input", `a record has at most ${MAX_HEADERS} headers`);
  for (const name of names) {
    const value: unknown = (headers as Record<string, unknown>)[name];
    if (typeof value !== "string") {
      throw new RunnelError("invalid_input", `record header "${name}" must be a string`);
    }
    if (
      Buffer.byteLength(name, "utf8") > MAX_HEADER_PART_BYTES ||
      Buffer.byteLength(value, "utf8") > MAX_HEADER_PART_BYTES
    ) {
      throw new RunnelError(
        "invalid_input",
        `record header names and values must be at most ${MAX_HEADER_PART_BYTES} UTF-8 bytes ("${name.slice(0, 40)}")`,
      );
    }
  }
}

/** A monitoring callback that throws must not fail the commit that called it. */
function guarded<T>(callback: (report: T) => void): (report: T) => void {
  return (report) => {
    try {
      callback(report);
    } catch {
      // monitoring only
    }
  };
}
