/**
 * The EventLog seam: a durable, partitioned, append-only log of events per stream.
 * Two implementations share one conformance suite (test/log/conformance.ts): the local
 * segment-file log (src/log/local/) and, later, Apache Kafka (src/log/kafka/).
 */

/** One event as handed to the log. */
export interface AppendRecord {
  /** Partitioning key (the event's user_id): one key's records stay in order in one partition. */
  readonly key: string;
  /** Event time, epoch milliseconds. */
  readonly timestamp: number;
  /** The event, serialised JSON (UTF-8). */
  readonly value: Uint8Array;
  /**
   * Small metadata kept beside the value, as Kafka record headers: pipelines record an output's
   * provenance here so the value holds exactly the columns the SQL selected.
   */
  readonly headers?: Readonly<Record<string, string>>;
}

/** One record as read back. Offsets are dense per partition, starting at 0. */
export interface LogRecord {
  readonly partition: number;
  readonly offset: number;
  readonly key: string;
  readonly timestamp: number;
  /** When the log accepted the record, epoch milliseconds. */
  readonly ingestTime: number;
  readonly value: Uint8Array;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface RecordPosition {
  readonly partition: number;
  readonly offset: number;
}

export interface StreamLogOptions {
  readonly partitions: number;
  /** Delete whole segments older than this (ms); undefined keeps forever. */
  readonly retentionMs?: number;
  /** Delete oldest whole segments past this many bytes per partition; undefined keeps all. */
  readonly retentionBytes?: number;
}

export interface ReadOptions {
  /** Upper bound on records returned by one read. */
  readonly maxRecords?: number;
  /** Upper bound on value bytes returned by one read (at least one record is returned). */
  readonly maxBytes?: number;
}

/**
 * Guarantees that differ between implementations, declared by the implementation (never guessed by
 * its users or by the conformance suite, which checks the stronger property where it is declared
 * and the common ground everywhere). Missing means the strongest (the local log's) behaviour.
 */
export interface EventLogCapabilities {
  /**
   * Records take every offset from start to end. False for Kafka, whose transaction markers take
   * offsets: the next position is then always `lastRecord.offset + 1`, never `end - start` records.
   */
  readonly denseOffsets: boolean;
  /** A multi-partition batch appears in all its partitions at one instant, not only all-or-nothing. */
  readonly simultaneousVisibility: boolean;
}

export interface EventLog {
  /** What this implementation guarantees beyond the interface's common ground (absent: all of it). */
  readonly capabilities?: EventLogCapabilities;

  /**
   * Whether the log can take appends now (readiness): false while its backing store is away (a
   * Kafka cluster that does not answer). Answers within a couple of seconds and never throws;
   * absent means always ready once open.
   */
  ping?(): Promise<boolean>;

  /** Opens the log: recovers every stream found on disk (truncating torn tails). */
  open(): Promise<void>;
  close(): Promise<void>;

  createStream(stream: string, options: StreamLogOptions): Promise<void>;
  deleteStream(stream: string): Promise<void>;
  hasStream(stream: string): boolean;
  partitionCount(stream: string): number;

  /**
   * Appends a batch atomically: after a crash either every record of the batch is readable or
   * none is. Resolves only once the batch is durable (fdatasync; concurrent appends share one
   * sync). Returns the position of each record, in input order.
   */
  append(stream: string, records: readonly AppendRecord[]): Promise<RecordPosition[]>;

  /** Records of one partition from `offset` on (committed records only). */
  read(stream: string, partition: number, offset: number, options?: ReadOptions): Promise<LogRecord[]>;

  /** First offset still retained in each partition. */
  startOffsets(stream: string): Promise<number[]>;
  /** Next offset to be written in each partition (the high watermark). */
  endOffsets(stream: string): Promise<number[]>;
  /** First offset whose timestamp is at or after `timestamp`, per partition (end offset if none). */
  offsetsForTime(stream: string, timestamp: number): Promise<number[]>;

  /** Durable consumer positions (like Kafka's committed offsets for a group). */
  commitOffsets(group: string, stream: string, offsets: ReadonlyMap<number, number>): Promise<void>;
  committedOffsets(group: string, stream: string): Promise<Map<number, number>>;

  /**
   * Calls `listener` (without arguments, possibly coalesced) after new records become readable
   * in `stream`. Returns a function that removes the listener. Consumers use it to avoid polling.
   */
  onAppend(stream: string, listener: () => void): () => void;

  /**
   * A writer whose appends a later writer with the same `transactionalId` fences (Kafka's
   * transactions; absent where the log has none). Cluster mode gives each task one, keyed by the
   * installation and the task, so an instance that lost the task cannot add to its outputs.
   */
  fencedWriter?(transactionalId: string): FencedWriter;
}

/**
 * Appends that only the newest writer of an id can make. `init()` claims the id: a transaction the
 * previous writer left open is settled (aborted, or committed if it was committing) before it
 * resolves, and from then on the previous writer's appends fail with WriterFencedError. Claim the
 * id before reading where the output ends, so no write of the previous owner lands after the read.
 *
 * @example
 *   const writer = log.fencedWriter!("runnel.pipeline-x/3");
 *   await writer.init();
 *   await writer.append("totals", [{ key: "u1", timestamp: Date.now(), value: bytes }]);
 *   await writer.close();
 */
export interface FencedWriter {
  init(): Promise<void>;
  /** Appends all of `records` or none (one transaction); resolves once they are readable. */
  append(stream: string, records: readonly AppendRecord[]): Promise<RecordPosition[]>;
  close(): Promise<void>;
}

/** An append refused because a newer writer claimed the same transactional id (FencedWriter). */
export class WriterFencedError extends Error {
  readonly code = "writer_fenced";
  constructor(
    readonly transactionalId: string,
    options?: { cause?: unknown },
  ) {
    super(`writer ${transactionalId} is fenced: a newer writer claimed its transactional id`, options);
    this.name = "WriterFencedError";
  }
}

/** The stable hash every implementation uses to place a key (murmur2, as Kafka's default partitioner). */
export { partitionForKey } from "./partitioner.js";
