/** Options of the local log, with defaults in human units. */
import type { Clock } from "../../core/clock.js";
import type { DirectoryLockOptions } from "./dir-lock.js";

export interface RecoveryReport {
  readonly stream: string;
  readonly partition: number;
  /** The segment file that was truncated. */
  readonly file: string;
  readonly bytesTruncated: number;
  /**
   * `torn_tail`: the last record was incomplete or failed its CRC (a write interrupted by a
   * crash). `uncommitted_batch`: whole records of a group whose commit never became durable, so
   * an atomic batch is dropped from every partition it touched.
   */
  readonly reason: "torn_tail" | "uncommitted_batch";
}

/** One group commit of one stream: the appends that shared its fdatasync round. */
export interface GroupCommitReport {
  readonly stream: string;
  readonly appends: number;
  readonly records: number;
  /** Partitions written and fdatasync'ed (the commit file adds one more when the group spans them). */
  readonly partitions: number;
}

export interface LocalEventLogOptions {
  /** Root directory; one sub-directory per stream. */
  readonly dir: string;
  /** Roll a partition's segment once it would grow past this many bytes. Default 64 MiB. */
  readonly segmentBytes?: number;
  /** Roll a segment whose first record is older than this (ms). Default 7 days, as Kafka. */
  readonly segmentMaxAgeMs?: number;
  readonly clock?: Clock;
  /** Told about every truncation done while opening. */
  readonly onRecovery?: (report: RecoveryReport) => void;
  /** Told about every group made durable (monitoring's batch-size histogram); must not throw. */
  readonly onGroupCommit?: (report: GroupCommitReport) => void;
  /** The directory lock that keeps a second process out (dir-lock.ts); defaults suit a server. */
  readonly lock?: DirectoryLockOptions;
}

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_SEGMENT_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
/** Segment files address records with f64 positions, but a cap keeps one file manageable. */
export const MAX_SEGMENT_BYTES = 1024 * 1024 * 1024;
/** Read limits when the caller gives none. */
export const DEFAULT_READ_MAX_RECORDS = 10_000;
export const DEFAULT_READ_MAX_BYTES = 4 * 1024 * 1024;

export interface RollPolicy {
  readonly segmentBytes: number;
  readonly segmentMaxAgeMs: number;
}
