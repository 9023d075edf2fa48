/**
 * The Kafka EventLog: each stream is a topic `<topicPrefix><stream>` with the stream's partition
 * count and retention; records are placed by partitionForKey (murmur2, as the local log), so a key
 * lands in the same partition on either implementation.
 *
 * Appends: `transactionsInFlight` transactional, idempotent producers (acks=all), each with one
 * transaction open at a time (Kafka allows no more per transactional id). Appends that arrive while
 * the producers are busy are grouped into the next free producer's transaction (group commit, as
 * the local log's shared fdatasync), so a multi-partition batch is all-or-nothing; append()
 * resolves once its transaction is committed, with the offsets the produce responses gave. The
 * client's producer begins and ends the transactions; the records go as batches Runnel encodes
 * itself (record-batch.ts, one buffer per partition) in Produce requests on the lane's own
 * connections, with the producer's id and epoch and sequence numbers the lane keeps.
 *
 * Kafka answers EndTxn before the commit markers are written, so committed records become readable
 * under read_committed a few milliseconds later; append() resolves once they are (a read by anyone
 * after it resolves sees them). That wait does not hold a producer: its next transaction starts at
 * once, and one shared poll of last stable offsets serves every commit waiting to become readable.
 *
 * Reads: plain Fetch requests at read_committed (no group membership), filtering aborted
 * transactions and control markers. Consumer positions are Kafka consumer-group offsets, committed
 * through the admin API (a group without members), so `kafka-consumer-groups.sh` shows them.
 *
 * Differences from the local log, declared in `capabilities` and checked by the conformance suite:
 * offsets are not dense (every transaction leaves a commit marker that takes one offset per
 * partition), and a committed multi-partition batch becomes visible partition by partition within
 * milliseconds, not at one instant.
 *
 * @example
 *   const log = createKafkaEventLog({ brokers: ["127.0.0.1:19092"] });
 *   await log.open();
 *   await log.createStream("clicks", { partitions: 4, retentionMs: 7 * 86_400_000 });
 *   const [pos] = await log.append("clicks", [{ key: "u1", timestamp: Date.now(), value: bytes }]);
 *   const records = await log.read("clicks", pos.partition, pos.offset);
 */
import { randomUUID } from "node:crypto";
import type { ClusterMetadata, FetchOptions } from "@platformatic/kafka";
import {
  Admin,
  ConfigResourceTypes,
  ConnectionPool,
  Consumer,
  FetchIsolationLevels,
  IncrementalAlterConfigOperationTypes,
  ListOffsetTimestamps,
  ProduceAcks,
  Producer,
} from "@platformatic/kafka";
import { RunnelError } from "../../core/errors.js";
// The local log's placement, partitionForKey with its ASCII fast path (no UTF-8 encode per key).
import { placeKey } from "../local/placement.js";
import type {
  AppendRecord,
  EventLog,
  EventLogCapabilities,
  FencedWriter,
  LogRecord,
  ReadOptions,
  RecordPosition,
  StreamLogOptions,
} from "../types.js";
import { WriterFencedError } from "../types.js";
import { hasKafkaError, isNetworkError, toRunnelError } from "./errors.js";
import type { KafkaEventLogOptions, ResolvedKafkaOptions } from "./options.js";
import {
  DEFAULT_READ_MAX_BYTES,
  DEFAULT_READ_MAX_RECORDS,
  MAX_BATCH_BYTES,
  resolveKafkaOptions,
  streamOf,
  topicOf,
} from "./options.js";
import type { PartitionBatch } from "./produce.js";
import { produce } from "./produce.js";
import { encodeRecordBatch, MAX_TIMESTAMP_DELTA } from "./record-batch.js";
import type { OutgoingRecord } from "./records.js";
import { appendContext, decodeFetched, toKafkaRecord, validateRecord } from "./records.js";

interface StreamMeta {
  readonly topic: string;
  readonly partitions: number;
}

interface PendingAppend {
  readonly stream: string;
  readonly meta: StreamMeta;
  readonly records: readonly OutgoingRecord[];
  readonly bytes: number;
  readonly resolve: (positions: RecordPosition[]) => void;
  readonly reject: (e: unknown) => void;
}

/** One producer and the transaction it has in flight (Kafka allows one per transactional id). */
interface Lane {
  /** A fenced writer's own id (fencedWriter); the log's lanes take a fresh random one per producer. */
  readonly transactionalId?: string;
  /** A transaction begun by FencedWriter.init(), which the writer's first append uses. */
  opened?: Transaction;
  /** Begins, adds partitions to and ends the lane's transactions; the records go by `connections`. */
  producer: Producer | undefined;
  /** The lane's own connections for Produce requests of batches it encodes (record-batch.ts). */
  connections: ConnectionPool | undefined;
  /** The next sequence number of each partition ("topic:partition") for the producer id and epoch. */
  sequences: { producerId: bigint; producerEpoch: number; next: Map<string, number> };
  /** Set after a topic is deleted or a transaction could not be ended: start a new producer. */
  stale: boolean;
  busy: boolean;
  /**
   * Settles once the lane's last transaction is readable, i.e. its commit markers are written.
   * Until then Kafka answers the producer's next AddPartitionsToTxn with CONCURRENT_TRANSACTIONS,
   * which the client retries only after its retry delay (100 ms): waiting for the markers (a few
   * milliseconds, seen by the shared poll) is much shorter.
   */
  previous: Promise<void>;
}

/** A committed transaction's appends, resolved once their records are readable. */
interface CommittedGroup {
  readonly group: readonly PendingAppend[];
  readonly positions: readonly RecordPosition[][];
  readonly last: readonly { topic: string; partition: number; offset: number }[];
  readonly deadline: number;
  /** Tells the lane that committed it that its transaction is complete (markers written). */
  readonly done: () => void;
}

/** The client does not export its Transaction class. */
type Transaction = Awaited<ReturnType<Producer["beginTransaction"]>>;

/** How long ping() waits for a broker before calling the log not ready. */
const PING_TIMEOUT_MS = 2_000;
/** How long deleteStream() waits for every broker to stop listing the deleted topic. */
const TOPIC_GONE_TIMEOUT_MS = 30_000;
/** Upper bound on one group-committed transaction, so one slow giant group cannot starve others. */
const MAX_GROUP_BYTES = 8 * 1024 * 1024;
const READ_COMMITTED = FetchIsolationLevels.READ_COMMITTED;
const NO_VALUE = Buffer.alloc(0);
/** Reads that raced each other on a fetch session are retried this often before failing. */
const MAX_FETCH_SESSION_RETRIES = 10;

export class KafkaEventLog implements EventLog {
  /** Transaction markers take offsets; partitions of a committed batch become readable one by one. */
  static readonly capabilities: EventLogCapabilities = Object.freeze({
    denseOffsets: false,
    simultaneousVisibility: false,
  });
  readonly capabilities: EventLogCapabilities = KafkaEventLog.capabilities;

  private readonly options: ResolvedKafkaOptions;
  private admin: Admin | undefined;
  private reader: Consumer | undefined;
  /** One per transaction in flight; a producer is created when its lane first commits. */
  private readonly lanes: Lane[];
  /** The lanes of the fenced writers not yet closed, so close() and deleteStream() reach them. */
  private readonly writers = new Set<Lane>();
  /** The lanes' drain loops that are running, so close() can wait for them. */
  private readonly working = new Set<Promise<void>>();
  /** Committed groups whose records are not yet known to be readable. */
  private unseen: CommittedGroup[] = [];
  /** The poll of last stable offsets that resolves `unseen`, while one runs. */
  private watching: Promise<void> | undefined;
  /**
   * The reader's fetches in flight, per broker, chained. The client keeps one incremental fetch
   * session per broker (KIP-227) and every fetch carries its epoch: fetches sent together carry the
   * same one, the broker refuses all but the first (INVALID_FETCH_SESSION_EPOCH) and after three
   * refusals a read fails. One at a time per broker, each fetch sees the epoch the last one left.
   */
  private readonly fetches = new Map<number, Promise<unknown>>();
  private readonly streams = new Map<string, StreamMeta>();
  private readonly listeners = new Map<string, Set<() => void>>();
  private readonly seenEnds = new Map<string, string>();
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private pending: PendingAppend[] = [];
  private state: "new" | "open" | "closed" = "new";
  /** The ping in flight: probes every few seconds from several scrapers share one request. */
  private pinging: Promise<boolean> | undefined;

  constructor(options: KafkaEventLogOptions) {
    this.options = resolveKafkaOptions(options);
    this.lanes = Array.from({ length: this.options.transactionsInFlight }, newLaneState);
  }

  async open(): Promise<void> {
    if (this.state === "open") return;
    const { clientId, brokers, requestTimeoutMs } = this.options;
    const base = {
      clientId,
      bootstrapBrokers: [...brokers],
      timeout: requestTimeoutMs,
      connectTimeout: Math.min(requestTimeoutMs, 3_000),
      retries: 2,
      retryDelay: 100,
      autocreateTopics: false,
    };
    this.admin = new Admin(base);
    this.reader = new Consumer({ ...base, groupId: `${clientId}-reader`, isolationLevel: READ_COMMITTED });
    this.state = "open";
    try {
      await this.refresh();
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  async close(): Promise<void> {
    if (this.state !== "open") {
      this.state = "closed";
      return;
    }
    this.state = "closed";
    this.stopPolling();
    await Promise.all(this.working);
    await this.watching;
    const lanes = [...this.lanes, ...this.writers];
    this.writers.clear();
    const clients = [...lanes.flatMap((l) => [l.producer, l.connections]), this.reader, this.admin];
    for (const lane of lanes) {
      lane.producer = undefined;
      lane.connections = undefined;
    }
    this.reader = undefined;
    this.admin = undefined;
    await Promise.all(clients.map((c) => c?.close().catch(() => undefined)));
    this.streams.clear();
  }

  /**
   * Ready when a broker answers a metadata request within PING_TIMEOUT_MS. A stopped broker refuses
   * the connection at once; a hung one is cut off by the timeout, so /readyz never waits on Kafka's
   * own retries.
   */
  ping(): Promise<boolean> {
    if (this.state !== "open" || this.admin === undefined) return Promise.resolve(false);
    const admin = this.admin;
    this.pinging ??= new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
      const answer = (ready: boolean) => {
        clearTimeout(timer);
        resolve(ready);
      };
      admin.metadata({ topics: [], forceUpdate: true }).then(
        () => answer(true),
        () => answer(false),
      );
    }).finally(() => {
      this.pinging = undefined;
    });
    return this.pinging;
  }

  /**
   * Reloads the streams from the cluster's topics. hasStream() and partitionCount() are synchronous,
   * so they answer from this cache; other calls refresh it themselves when they meet an unknown stream.
   */
  async refresh(): Promise<void> {
    const admin = this.clientAdmin();
    try {
      const topics = (await admin.listTopics()).filter((t) => streamOf(this.options.topicPrefix, t) !== undefined);
      const metadata = topics.length === 0 ? undefined : await admin.metadata({ topics, forceUpdate: true });
      this.streams.clear();
      for (const topic of topics) {
        const partitions = metadata?.topics.get(topic)?.partitionsCount;
        const stream = streamOf(this.options.topicPrefix, topic);
        if (partitions !== undefined && stream !== undefined) this.streams.set(stream, { topic, partitions });
      }
    } catch (e) {
      throw toRunnelError(e, "list topics");
    }
  }

  async createStream(stream: string, options: StreamLogOptions): Promise<void> {
    const admin = this.clientAdmin();
    validateStreamOptions(stream, options);
    const topic = topicOf(this.options.topicPrefix, stream);
    const configs = [
      { name: "retention.ms", value: String(options.retentionMs ?? -1) },
      { name: "retention.bytes", value: String(options.retentionBytes ?? -1) },
      // Kafka 4 refuses records stamped over an hour ahead by default; the log stores event
      // time as given (as the local log does) and leaves judging it to ingest validation.
      { name: "message.timestamp.after.max.ms", value: "9223372036854775807" },
    ];
    try {
      await admin.createTopics({
        topics: [topic],
        partitions: options.partitions,
        replicas: this.options.replicationFactor,
        configs,
      });
      this.streams.set(stream, { topic, partitions: options.partitions });
      this.clearClientMetadata();
      return;
    } catch (e) {
      if (!hasKafkaError(e, "TOPIC_ALREADY_EXISTS")) throw toRunnelError(e, `create topic ${topic}`);
    }
    const existing = await this.describe(stream);
    if (existing === undefined) {
      throw new RunnelError("conflict", `topic ${topic} is being deleted; create the stream again shortly`, {
        retryAfter: 1,
      });
    }
    if (existing.partitions !== options.partitions) {
      throw new RunnelError(
        "conflict",
        `stream "${stream}" exists with ${existing.partitions} partitions, not ${options.partitions}`,
      );
    }
    // Same partitions: idempotent; a changed retention is applied, as the local log does.
    try {
      await admin.incrementalAlterConfigs({
        resources: [
          {
            resourceType: ConfigResourceTypes.TOPIC,
            resourceName: topic,
            configs: configs.map((c) => ({ ...c, configOperation: IncrementalAlterConfigOperationTypes.SET })),
          },
        ],
      });
    } catch (e) {
      throw toRunnelError(e, `alter the retention of topic ${topic}`, stream);
    }
    // A topic another instance created is now known here as if created here (hasStream, partitionCount).
    this.streams.set(stream, existing);
  }

  async deleteStream(stream: string): Promise<void> {
    const meta = await this.meta(stream);
    try {
      await this.clientAdmin().deleteTopics({ topics: [meta.topic] });
      await this.awaitTopicGone(stream);
    } catch (e) {
      throw toRunnelError(e, `delete topic ${meta.topic}`, stream);
    } finally {
      this.streams.delete(stream);
      this.seenEnds.delete(stream);
      // The idempotent producers' sequence numbers for the topic are stale.
      for (const lane of [...this.lanes, ...this.writers]) lane.stale = true;
      this.clearClientMetadata();
    }
  }

  /**
   * The controller answers DeleteTopics before every broker has applied the deletion, so a read
   * right after could still find the topic through a broker's stale metadata. Deleted means gone
   * everywhere this log looks; wait for that (bounded) before returning.
   */
  private async awaitTopicGone(stream: string): Promise<void> {
    const deadline = Date.now() + TOPIC_GONE_TIMEOUT_MS;
    for (;;) {
      this.clearClientMetadata();
      if ((await this.describe(stream)) === undefined) return;
      if (Date.now() >= deadline) {
        throw new RunnelError(
          "internal",
          `topic of stream "${stream}" still listed ${TOPIC_GONE_TIMEOUT_MS} ms after its deletion`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  hasStream(stream: string): boolean {
    this.assertOpen();
    return this.streams.has(stream);
  }

  partitionCount(stream: string): number {
    this.assertOpen();
    const meta = this.streams.get(stream);
    if (meta === undefined) throw notFound(stream);
    return meta.partitions;
  }

  async append(stream: string, records: readonly AppendRecord[]): Promise<RecordPosition[]> {
    const prepared = await this.prepare(stream, records);
    if (prepared === undefined) return [];
    return new Promise<RecordPosition[]>((resolve, reject) => {
      this.pending.push({ stream, ...prepared, resolve, reject });
      this.startLanes();
    });
  }

  /** The records validated, placed and encoded for a transaction; undefined when there are none. */
  private async prepare(
    stream: string,
    records: readonly AppendRecord[],
  ): Promise<{ meta: StreamMeta; records: OutgoingRecord[]; bytes: number } | undefined> {
    const meta = await this.meta(stream);
    for (const r of records) validateRecord(r);
    if (records.length === 0) return undefined;
    const context = appendContext(Date.now());
    let bytes = 0;
    const outgoing = records.map((r) => {
      const o = toKafkaRecord(placeKey(r.key, meta.partitions), r, context);
      bytes += o.maxBytes;
      return o;
    });
    return { meta, records: outgoing, bytes };
  }

  async read(stream: string, partition: number, offset: number, options: ReadOptions = {}): Promise<LogRecord[]> {
    const meta = await this.meta(stream);
    checkPartition(meta, stream, partition);
    if (!Number.isInteger(offset) || offset < 0) {
      throw new RunnelError("invalid_input", `offset must be a non-negative integer, got ${offset}`);
    }
    const maxRecords = options.maxRecords ?? DEFAULT_READ_MAX_RECORDS;
    const maxBytes = options.maxBytes ?? DEFAULT_READ_MAX_BYTES;
    if (!(maxRecords >= 1) || !(maxBytes >= 1)) {
      throw new RunnelError("invalid_input", "maxRecords and maxBytes must be at least 1");
    }
    let from = offset;
    // A fetch that returns only markers or aborted data moves the position without records; go on
    // until records come or the broker has nothing more (bounded, so a read never spins).
    for (let attempt = 0; attempt < 50; attempt++) {
      const fetched = await this.fetch(meta, stream, partition, from, maxBytes);
      if (fetched === "below_start") {
        from = (await this.listOffsets(meta, stream, ListOffsetTimestamps.EARLIEST))[partition]!;
        continue;
      }
      if (fetched === undefined) return [];
      const decoded = decodeFetched(partition, fetched.batches, fetched.aborted, from, maxRecords, maxBytes);
      if (decoded.records.length > 0) return decoded.records;
      if (decoded.nextOffset === undefined || decoded.nextOffset <= from) return [];
      from = decoded.nextOffset;
    }
    return [];
  }

  async startOffsets(stream: string): Promise<number[]> {
    return this.listOffsets(await this.meta(stream), stream, ListOffsetTimestamps.EARLIEST);
  }

  /** The last stable offset of each partition: everything below it is committed or aborted. */
  async endOffsets(stream: string): Promise<number[]> {
    return this.listOffsets(await this.meta(stream), stream, ListOffsetTimestamps.LATEST);
  }

  async offsetsForTime(stream: string, timestamp: number): Promise<number[]> {
    const meta = await this.meta(stream);
    if (!Number.isFinite(timestamp)) throw new RunnelError("invalid_input", "timestamp must be a finite number");
    // Kafka reserves negative timestamps (-1 latest, -2 earliest); stored times are never negative.
    const lowerBound =
      timestamp <= 0
        ? await this.listOffsets(meta, stream, ListOffsetTimestamps.EARLIEST)
        : await this.listOffsets(meta, stream, BigInt(Math.floor(timestamp)));
    const ends = await this.listOffsets(meta, stream, ListOffsetTimestamps.LATEST);
    // Kafka's answer is a lower bound, not the answer: transaction markers carry the wall-clock
    // time of their commit and take part in the lookup, so it may stop at a marker ahead of the
    // first record that qualifies. Nothing before it qualifies; scan forward from there.
    return Promise.all(
      lowerBound.map((from, p) => this.firstAtOrAfter(stream, p, from < 0 ? ends[p]! : from, ends[p]!, timestamp)),
    );
  }

  private async firstAtOrAfter(
    stream: string,
    partition: number,
    from: number,
    end: number,
    at: number,
  ): Promise<number> {
    let next = from;
    while (next < end) {
      const records = await this.read(stream, partition, next, { maxRecords: 1000 });
      if (records.length === 0) return end;
      for (const r of records) if (r.timestamp >= at) return r.offset;
      next = records[records.length - 1]!.offset + 1;
    }
    return end;
  }

  async commitOffsets(group: string, stream: string, offsets: ReadonlyMap<number, number>): Promise<void> {
    const meta = await this.meta(stream);
    if (group.length === 0) throw new RunnelError("invalid_input", "consumer group name must not be empty");
    const partitionOffsets: { partition: number; offset: bigint }[] = [];
    for (const [p, o] of offsets) {
      checkPartition(meta, stream, p);
      if (!Number.isInteger(o) || o < 0) {
        throw new RunnelError("invalid_input", `offset for partition ${p} must be a non-negative integer, got ${o}`);
      }
      partitionOffsets.push({ partition: p, offset: BigInt(o) });
    }
    if (partitionOffsets.length === 0) return;
    try {
      await this.clientAdmin().alterConsumerGroupOffsets({
        groupId: group,
        topics: [{ name: meta.topic, partitionOffsets }],
      });
    } catch (e) {
      if (hasKafkaError(e, "UNKNOWN_MEMBER_ID") || hasKafkaError(e, "REBALANCE_IN_PROGRESS")) {
        throw new RunnelError("conflict", `consumer group "${group}" has active members; their positions are theirs`, {
          cause: e,
        });
      }
      throw toRunnelError(e, `commit offsets of group ${group}`, stream);
    }
  }

  async committedOffsets(group: string, stream: string): Promise<Map<number, number>> {
    const meta = await this.meta(stream);
    const out = new Map<number, number>();
    try {
      const groups = await this.clientAdmin().listConsumerGroupOffsets({
        groups: [
          {
            groupId: group,
            topics: [{ name: meta.topic, partitionIndexes: Array.from({ length: meta.partitions }, (_, i) => i) }],
          },
        ],
        requireStable: true,
      });
      for (const g of groups) {
        for (const t of g.topics) {
          if (t.name !== meta.topic) continue;
          for (const p of t.partitions) {
            if (p.committedOffset >= 0n) out.set(p.partitionIndex, Number(p.committedOffset));
          }
        }
      }
    } catch (e) {
      if (hasKafkaError(e, "GROUP_ID_NOT_FOUND")) return out;
      throw toRunnelError(e, `read offsets of group ${group}`, stream);
    }
    return out;
  }

  /**
   * Listeners hear this instance's appends as soon as they are readable, and other writers'
   * (other Runnel instances, any Kafka producer) through a light poll of end offsets every
   * `pollIntervalMs` while any listener exists.
   */
  onAppend(stream: string, listener: () => void): () => void {
    let set = this.listeners.get(stream);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(stream, set);
    }
    const own = set;
    const entry = () => listener();
    own.add(entry);
    this.startPolling();
    return () => {
      own.delete(entry);
      if (own.size === 0 && this.listeners.get(stream) === own) {
        this.listeners.delete(stream);
        this.seenEnds.delete(stream);
      }
      if (this.listeners.size === 0) this.stopPolling();
    };
  }

  /**
   * A writer fenced by the next writer of the same transactional id (Kafka Streams' exactly-once
   * producer per task): its own producer, whose InitProducerId (init(), or the first append) bumps
   * the id's epoch, so the broker aborts the previous writer's open transaction and refuses its
   * later produce and commit (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH), which the previous writer's
   * append reports as WriterFencedError. Appends are one at a time, each its own transaction.
   */
  fencedWriter(transactionalId: string): FencedWriter {
    this.assertOpen();
    if (typeof transactionalId !== "string" || transactionalId.length === 0 || transactionalId.length > 255) {
      throw new RunnelError("invalid_input", "transactionalId must be 1–255 characters");
    }
    const lane: Lane = { ...newLaneState(), transactionalId };
    this.writers.add(lane);
    let fenced: WriterFencedError | undefined;
    let closed = false;
    // One transaction at a time per transactional id: appends wait for the one before.
    let turn: Promise<unknown> = Promise.resolve();
    const inTurn = <T>(work: () => Promise<T>): Promise<T> => {
      const result = turn.then(work, work);
      turn = result.catch(() => undefined);
      return result;
    };
    const guard = async <T>(work: () => Promise<T>, stream?: string): Promise<T> => {
      if (fenced !== undefined) throw fenced;
      if (closed) throw new RunnelError("not_ready", `writer ${transactionalId} is closed`);
      try {
        return await work();
      } catch (e) {
        if (!hasKafkaError(e, "PRODUCER_FENCED") && !hasKafkaError(e, "INVALID_PRODUCER_EPOCH")) {
          throw toRunnelError(e, stream === undefined ? "claim a transactional id" : "append", stream);
        }
        // Never initialise the id again here: that would fence the writer that fenced this one.
        fenced = new WriterFencedError(transactionalId, { cause: e });
        throw fenced;
      }
    };
    const close = async (): Promise<void> => {
      closed = true;
      await turn;
      this.writers.delete(lane);
      const clients = [lane.producer, lane.connections];
      lane.producer = undefined;
      lane.connections = undefined;
      lane.opened = undefined;
      await Promise.all(clients.map((c) => c?.close().catch(() => undefined)));
    };
    return {
      init: () =>
        inTurn(() =>
          guard(async () => {
            if (lane.opened === undefined) lane.opened = await this.beginTransaction(lane);
          }),
        ),
      append: async (stream, records) => {
        const prepared = await this.prepare(stream, records);
        if (prepared === undefined) return [];
        return inTurn(() =>
          guard(
            () =>
              new Promise<RecordPosition[]>((resolve, reject) => {
                this.commitGroup([{ stream, ...prepared, resolve, reject }], lane).catch(reject);
              }),
            stream,
          ),
        );
      },
      close: () => (closed ? Promise.resolve() : close()),
    };
  }

  // ---- appends ---------------------------------------------------------------------------------

  private newProducer(lane: Lane): Producer {
    const { clientId, brokers, requestTimeoutMs } = this.options;
    const fixed = lane.transactionalId;
    return new Producer({
      clientId,
      bootstrapBrokers: [...brokers],
      timeout: requestTimeoutMs,
      connectTimeout: Math.min(requestTimeoutMs, 3_000),
      retries: 2,
      retryDelay: 100,
      autocreateTopics: false,
      // One transactional id per producer of each log instance: they never fence each other, and a
      // crashed instance's open transactions are aborted by the broker after transaction.timeout.ms.
      transactionalId: fixed ?? `${clientId}-${randomUUID()}`,
      idempotent: true,
      acks: ProduceAcks.ALL,
      // The client asks for producer id 0, epoch 0 by default, which the broker refuses as fenced
      // once the id has a newer epoch; -1/-1 asks for the id's next epoch (KIP-360).
      ...(fixed !== undefined && { producerId: -1n, producerEpoch: -1 }),
    });
  }

  private newConnections(): ConnectionPool {
    const { clientId, requestTimeoutMs } = this.options;
    return new ConnectionPool(clientId, {
      connectTimeout: Math.min(requestTimeoutMs, 3_000),
      requestTimeout: requestTimeoutMs,
    });
  }

  /** Puts every idle lane to work while appends are waiting. */
  private startLanes(): void {
    for (const lane of this.lanes) {
      if (this.pending.length === 0) return;
      if (lane.busy) continue;
      lane.busy = true;
      const work: Promise<void> = this.drain(lane).finally(() => {
        lane.busy = false;
        this.working.delete(work);
        // An append that came while this lane was finishing found it busy.
        if (this.pending.length > 0) this.startLanes();
      });
      this.working.add(work);
    }
  }

  private async drain(lane: Lane): Promise<void> {
    while (this.pending.length > 0) {
      // The lane's next transaction cannot start before its last one's markers are written. Waiting
      // for that before taking the group, and then for the appenders it released to come back (a
      // turn of the event loop), makes one transaction of every append that arrived meanwhile:
      // each transaction costs the broker far more than the records in it.
      await lane.previous;
      await new Promise((r) => setImmediate(r));
      if (this.pending.length === 0) break;
      let bytes = 0;
      let n = 0;
      while (n < this.pending.length && (n === 0 || bytes + this.pending[n]!.bytes <= MAX_GROUP_BYTES)) {
        bytes += this.pending[n]!.bytes;
        n++;
      }
      const group = this.pending.splice(0, n);
      try {
        await this.commitGroup(group, lane);
      } catch (e) {
        // An unreachable cluster fails every append alike: refuse the whole group now, since
        // retrying each on its own would make the last of N concurrent requests wait N timeouts.
        if (group.length === 1 || toRunnelError(e, "append").code === "not_ready") {
          for (const a of group) a.reject(toRunnelError(e, "append", a.stream));
          continue;
        }
        // One append's failure (say, its topic was just deleted) must not fail its neighbours:
        // retry each on its own, so only the guilty one is refused.
        for (const a of group) {
          try {
            await this.commitGroup([a], lane);
          } catch (e2) {
            a.reject(toRunnelError(e2, "append", a.stream));
          }
        }
      }
    }
  }

  /**
   * Begins a transaction on a working producer. A transaction coordinator that is still starting
   * (a new cluster creating __transaction_state, a broker loading it after a restart) is waited for
   * within requestTimeoutMs, as Kafka's own clients do; anything else fails at once, so a broker
   * that is away turns into not_ready quickly.
   */
  private async beginTransaction(lane: Lane): Promise<Transaction> {
    const deadline = Date.now() + this.options.requestTimeoutMs;
    for (let delay = 100; ; delay = Math.min(delay * 2, 1_000)) {
      if (lane.opened !== undefined && !lane.stale) {
        const opened = lane.opened;
        lane.opened = undefined;
        return opened;
      }
      lane.opened = undefined;
      if (lane.stale || lane.producer === undefined) {
        const old = [lane.producer, lane.connections];
        lane.producer = this.newProducer(lane);
        lane.connections = this.newConnections();
        lane.stale = false;
        await Promise.all(old.map((c) => c?.close().catch(() => undefined)));
      }
      try {
        return await lane.producer.beginTransaction();
      } catch (e) {
        // The client keeps a transaction that failed to begin as its active one and refuses every
        // later beginTransaction(): only a new producer gets out of that.
        lane.stale = true;
        if (!isCoordinatorStarting(e) || Date.now() + delay > deadline || this.state !== "open") throw e;
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private async commitGroup(group: readonly PendingAppend[], lane: Lane): Promise<void> {
    if (this.state !== "open") throw new RunnelError("not_ready", "the event log is closed");
    await lane.previous;
    const tx = await this.beginTransaction(lane);
    const producer = lane.producer!;
    const writer = this.batchWriter(lane, producer);
    const positions = group.map((a) => new Array<RecordPosition>(a.records.length));
    const lastOffsets: { topic: string; partition: number; offset: number }[] = [];
    // Sequence numbers are spent once a batch is sent: if its answer is lost, only a new producer
    // knows where they stand.
    let inDoubt = false;
    try {
      const parts = partitionsOf(group);
      const topics = [...new Set(parts.map((p) => p.topic))];
      const metadata = await producer.metadata({ topics });
      // The client reads only the topic and partition of these.
      await tx.addPartitions(
        metadata,
        parts.map(({ topic, partition }) => ({ topic, partition, value: NO_VALUE })),
      );
      // Request k carries the k-th batch of every partition (Kafka takes one per partition and request).
      const cuts = parts.map(cutBatches);
      const requests = Math.max(...cuts.map((c) => c.length - 1));
      for (let k = 0; k < requests; k++) {
        const batches: EncodedBatch[] = [];
        for (let i = 0; i < parts.length; i++) {
          const cut = cuts[i]!;
          if (k + 1 >= cut.length) continue;
          const part = parts[i]!;
          batches.push({ part, from: cut[k]!, to: cut[k + 1]!, batch: writer.encode(part, cut[k]!, cut[k + 1]!) });
        }
        inDoubt = true;
        const bases = await this.send(lane, producer, tx.id, topics, batches, metadata);
        inDoubt = false;
        batches.forEach(({ part, from, to }, b) => {
          const base = bases[b]!;
          for (let j = from; j < to; j++) {
            positions[part.owners[j]!]![part.indexes[j]!] = { partition: part.partition, offset: base + j - from };
          }
          if (to === part.records.length) {
            lastOffsets.push({ topic: part.topic, partition: part.partition, offset: base + to - from - 1 });
          }
        });
      }
      await tx.commit();
    } catch (e) {
      if (inDoubt) lane.stale = true;
      try {
        await tx.abort();
      } catch {
        // The producer's state is unknown (fenced, or the broker went away): start afresh next time.
        lane.stale = true;
      }
      throw e;
    }
    let done = () => {};
    lane.previous = new Promise<void>((resolve) => {
      done = resolve;
    });
    this.unseen.push({
      group,
      positions,
      last: lastOffsets,
      deadline: Date.now() + this.options.requestTimeoutMs,
      done,
    });
    this.watching ??= this.watch().finally(() => {
      this.watching = undefined;
    });
  }

  /**
   * Sends one request's batches to their partitions' leaders and returns each batch's base offset.
   * A leader that moved (or is not elected yet, on a new topic) or a lost connection is retried
   * with fresh metadata: the batches keep their sequence numbers, so the broker writes each once.
   */
  private async send(
    lane: Lane,
    producer: Producer,
    transactionalId: string,
    topics: readonly string[],
    batches: readonly EncodedBatch[],
    known: ClusterMetadata,
  ): Promise<number[]> {
    const bases = new Array<number>(batches.length);
    let metadata = known;
    for (let attempt = 0; ; attempt++) {
      try {
        const byLeader = new Map<number, number[]>();
        batches.forEach(({ part }, b) => {
          const { leader } = leaderOf(metadata, part.meta, part.stream, part.partition);
          const list = byLeader.get(leader);
          if (list === undefined) byLeader.set(leader, [b]);
          else list.push(b);
        });
        await Promise.all(
          [...byLeader].map(async ([leader, indexes]) => {
            const broker = metadata.brokers.get(leader);
            if (broker === undefined) throw new LeaderGone(leader);
            const connection = await lane.connections!.get(broker);
            const request = new Map<string, PartitionBatch[]>();
            for (const b of indexes) {
              const { part, batch } = batches[b]!;
              const list = request.get(part.topic);
              if (list === undefined) request.set(part.topic, [{ partition: part.partition, batch }]);
              else list.push({ partition: part.partition, batch });
            }
            const offsets = await produce(
              connection,
              transactionalId,
              this.options.requestTimeoutMs,
              [...request].map(([topic, partitions]) => ({ topic, partitions })),
            );
            for (const b of indexes) {
              const { part } = batches[b]!;
              const base = offsets.get(part.topic)?.get(part.partition);
              if (base === undefined) {
                throw new RunnelError("internal", `Kafka returned no offset for ${part.topic}:${part.partition}`);
              }
              bases[b] = base;
            }
          }),
        );
        return bases;
      } catch (e) {
        if (attempt >= PRODUCE_RETRY_DELAYS_MS.length || !isRetriableProduce(e) || this.state !== "open") throw e;
        await new Promise((r) => setTimeout(r, PRODUCE_RETRY_DELAYS_MS[attempt]));
        metadata = await producer.metadata({ topics: [...topics], forceUpdate: true });
      }
    }
  }

  /**
   * Encodes batches for the lane's producer, continuing each partition's sequence numbers (the
   * broker checks them: idempotence), which start again at 0 for a new producer id or epoch.
   */
  private batchWriter(lane: Lane, producer: Producer): { encode: (p: Partition, from: number, to: number) => Buffer } {
    const producerId = producer.producerId;
    const producerEpoch = producer.producerEpoch;
    if (producerId === undefined || producerEpoch === undefined) {
      throw new RunnelError("internal", "the transactional producer has no producer id");
    }
    if (lane.sequences.producerId !== producerId || lane.sequences.producerEpoch !== producerEpoch) {
      lane.sequences = { producerId, producerEpoch, next: new Map() };
    }
    const next = lane.sequences.next;
    return {
      encode: (p, from, to) => {
        const tp = `${p.topic}:${p.partition}`;
        const baseSequence = next.get(tp) ?? 0;
        next.set(tp, nextSequence(baseSequence, to - from));
        let maxBytes = 0;
        for (let i = from; i < to; i++) maxBytes += p.records[i]!.maxBytes;
        return encodeRecordBatch(p.records, from, to, maxBytes, {
          producerId,
          producerEpoch,
          baseSequence,
          transactional: true,
        });
      },
    };
  }

  /**
   * Resolves committed groups once the last stable offset has passed all their records: one
   * ListOffsets request per round for every group waiting, polled with a short back-off. The
   * transactions are committed whatever happens now; failing an append would invite a duplicate
   * retry, so neither an error (the broker went away just after the commit) nor the deadline fails
   * one: it resolves, and readers catch up when the markers land.
   */
  private async watch(): Promise<void> {
    const admin = this.clientAdmin();
    for (let delay = 1; this.unseen.length > 0; delay = Math.min(delay * 2, 50)) {
      const byTopic = new Map<string, Set<number>>();
      for (const c of this.unseen) {
        for (const l of c.last) {
          let partitions = byTopic.get(l.topic);
          if (partitions === undefined) {
            partitions = new Set();
            byTopic.set(l.topic, partitions);
          }
          partitions.add(l.partition);
        }
      }
      const listed = await admin
        .listOffsets({
          topics: [...byTopic].map(([name, partitions]) => ({
            name,
            partitions: [...partitions].map((partitionIndex) => ({
              partitionIndex,
              timestamp: ListOffsetTimestamps.LATEST,
            })),
          })),
          isolationLevel: READ_COMMITTED,
        })
        .catch(() => []);
      const stable = new Map<string, bigint>();
      for (const t of listed) for (const p of t.partitions) stable.set(`${t.name}:${p.partitionIndex}`, p.offset);
      const now = Date.now();
      const waiting: CommittedGroup[] = [];
      const readable: CommittedGroup[] = [];
      for (const c of this.unseen) {
        const seen = c.last.every((l) => (stable.get(`${l.topic}:${l.partition}`) ?? -1n) > BigInt(l.offset));
        (seen || now > c.deadline ? readable : waiting).push(c);
      }
      this.unseen = waiting;
      if (readable.length > 0) delay = 1;
      const streams = new Set<string>();
      for (const c of readable) {
        c.done();
        c.group.forEach((a, k) => {
          streams.add(a.stream);
          a.resolve(c.positions[k]!);
        });
      }
      for (const s of streams) this.notify(s);
      if (this.unseen.length > 0) await new Promise((r) => setTimeout(r, delay));
    }
  }

  // ---- reads -----------------------------------------------------------------------------------

  private async fetch(
    meta: StreamMeta,
    stream: string,
    partition: number,
    offset: number,
    maxBytes: number,
  ): Promise<
    | { batches: import("@platformatic/kafka").RecordsBatch[]; aborted: { producerId: bigint; firstOffset: bigint }[] }
    | "below_start"
    | undefined
  > {
    const reader = this.clientReader();
    // The broker sends whole batches and always at least one (KIP-74), so a small budget still
    // makes progress; trimming to maxRecords/maxBytes happens on our side.
    const budget = Math.min(Math.max(maxBytes, 64 * 1024) + 64 * 1024, 16 * 1024 * 1024);
    for (let attempt = 0; ; attempt++) {
      try {
        const metadata = await reader.metadata({ topics: [meta.topic], forceUpdate: attempt > 0 });
        const { topicId, leader } = leaderOf(metadata, meta, stream, partition);
        const request: FetchOptions<Buffer, Buffer, Buffer, Buffer> = {
          node: leader,
          topics: [
            {
              topicId,
              partitions: [
                {
                  partition,
                  currentLeaderEpoch: -1,
                  fetchOffset: BigInt(offset),
                  lastFetchedEpoch: -1,
                  partitionMaxBytes: budget,
                },
              ],
            },
          ],
          maxWaitTime: 0,
          minBytes: 0,
          maxBytes: budget,
          isolationLevel: READ_COMMITTED,
        };
        const response = await this.fetchInTurn(leader, () => reader.fetch(request));
        const p = response.responses[0]?.partitions[0];
        // 2.x types an absent record set or abort list as null (the protocol's nullable arrays).
        if (p === undefined || p.records == null || p.records.length === 0) return undefined;
        return { batches: p.records, aborted: p.abortedTransactions ?? [] };
      } catch (e) {
        if (hasKafkaError(e, "OFFSET_OUT_OF_RANGE")) {
          const start = (await this.listOffsets(meta, stream, ListOffsetTimestamps.EARLIEST))[partition]!;
          return offset < start ? "below_start" : undefined;
        }
        const stale = hasKafkaError(e, "UNKNOWN_TOPIC_ID") || hasKafkaError(e, "NOT_LEADER_OR_FOLLOWER");
        if (stale && attempt === 0) continue;
        // Deleted since this log last looked it up (by another instance, or just now).
        if (isUnknownTopic(e)) throw notFound(stream);
        // Concurrent reads share the client's incremental fetch session with each broker, and one
        // that raced another's epoch is refused; the client has dropped the session, so go again.
        const raced = hasKafkaError(e, "INVALID_FETCH_SESSION_EPOCH") || hasKafkaError(e, "FETCH_SESSION_ID_NOT_FOUND");
        if (raced && attempt < MAX_FETCH_SESSION_RETRIES) {
          await new Promise((r) => setTimeout(r, Math.random() * 5));
          continue;
        }
        throw toRunnelError(e, `read ${meta.topic}/${partition}`, stream);
      }
    }
  }

  /** Runs `request` once the fetches sent to `node` before it have ended (see `fetches`). */
  private fetchInTurn<T>(node: number, request: () => Promise<T>): Promise<T> {
    const turn = (this.fetches.get(node) ?? Promise.resolve()).then(request, request);
    const settled = turn.catch(() => undefined);
    this.fetches.set(node, settled);
    void settled.then(() => {
      if (this.fetches.get(node) === settled) this.fetches.delete(node);
    });
    return turn;
  }

  private async listOffsets(meta: StreamMeta, stream: string, timestamp: bigint): Promise<number[]> {
    try {
      const listed = await this.clientAdmin().listOffsets({
        topics: [
          {
            name: meta.topic,
            partitions: Array.from({ length: meta.partitions }, (_, partitionIndex) => ({ partitionIndex, timestamp })),
          },
        ],
        isolationLevel: READ_COMMITTED,
      });
      const out = new Array<number>(meta.partitions).fill(-1);
      for (const t of listed) for (const p of t.partitions) out[p.partitionIndex] = Number(p.offset);
      return out;
    } catch (e) {
      throw toRunnelError(e, `list offsets of ${meta.topic}`, stream);
    }
  }

  // ---- notifications ---------------------------------------------------------------------------

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

  private startPolling(): void {
    if (this.pollTimer !== undefined || this.state !== "open") return;
    this.pollTimer = setInterval(() => void this.poll(), this.options.pollIntervalMs);
    this.pollTimer.unref();
  }

  private stopPolling(): void {
    if (this.pollTimer !== undefined) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  private async poll(): Promise<void> {
    if (this.polling || this.state !== "open") return;
    this.polling = true;
    try {
      for (const stream of [...this.listeners.keys()]) {
        let ends: number[];
        try {
          // meta() also finds streams that another instance created after this one opened.
          ends = await this.listOffsets(await this.meta(stream), stream, ListOffsetTimestamps.LATEST);
        } catch {
          continue; // The next tick tries again; an unreachable broker is reported by the data path.
        }
        const key = ends.join(",");
        const before = this.seenEnds.get(stream);
        if (!this.listeners.has(stream)) continue;
        this.seenEnds.set(stream, key);
        // The first look wakes the listeners too: another instance's append committed between a
        // listener's own last read and this look would otherwise be in the baseline, never heard of.
        if (before !== key) this.notify(stream);
      }
    } finally {
      this.polling = false;
    }
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private async meta(stream: string): Promise<StreamMeta> {
    this.assertOpen();
    const known = this.streams.get(stream);
    if (known !== undefined) return known;
    // Another instance may have created it since open().
    const found = await this.describe(stream);
    if (found === undefined) throw notFound(stream);
    this.streams.set(stream, found);
    return found;
  }

  private async describe(stream: string): Promise<StreamMeta | undefined> {
    const topic = topicOf(this.options.topicPrefix, stream);
    try {
      const metadata = await this.clientAdmin().metadata({ topics: [topic], forceUpdate: true });
      const partitions = metadata.topics.get(topic)?.partitionsCount;
      return partitions === undefined ? undefined : { topic, partitions };
    } catch (e) {
      if (hasKafkaError(e, "UNKNOWN_TOPIC_OR_PARTITION") || isUnknownTopic(e)) return undefined;
      throw toRunnelError(e, `describe topic ${topic}`);
    }
  }

  private clearClientMetadata(): void {
    this.admin?.clearMetadata();
    this.reader?.clearMetadata();
    for (const lane of [...this.lanes, ...this.writers]) lane.producer?.clearMetadata();
  }

  private assertOpen(): void {
    if (this.state !== "open") throw new RunnelError("not_ready", "the event log is not open");
  }

  private clientAdmin(): Admin {
    this.assertOpen();
    return this.admin!;
  }

  private clientReader(): Consumer {
    this.assertOpen();
    return this.reader!;
  }
}

function newLaneState(): Lane {
  return {
    producer: undefined,
    connections: undefined,
    sequences: { producerId: -1n, producerEpoch: -1, next: new Map() },
    stale: false,
    busy: false,
    previous: Promise.resolve(),
  };
}

function isCoordinatorStarting(e: unknown): boolean {
  return (
    hasKafkaError(e, "NOT_COORDINATOR") ||
    hasKafkaError(e, "COORDINATOR_NOT_AVAILABLE") ||
    hasKafkaError(e, "COORDINATOR_LOAD_IN_PROGRESS")
  );
}

/** The client reports a missing topic in a metadata request as a UserError without the Kafka code. */
function isUnknownTopic(e: unknown): boolean {
  return e instanceof Error && e.message.startsWith("Unknown topic ");
}

/** One partition's records [from, to) as an encoded record batch. */
interface EncodedBatch {
  readonly part: Partition;
  readonly from: number;
  readonly to: number;
  readonly batch: Buffer;
}

/**
 * Waits before each resend of a produce request that failed for a reason that may pass: 3.6 s in
 * all. 0.4 s was not enough for a topic created a moment before (a new stream) under CI's load:
 * its first append met NOT_LEADER_OR_FOLLOWER after every resend. Kafka's own producer resends
 * such errors until `delivery.timeout.ms` (2 minutes); past these the caller gets a 503.
 */
const PRODUCE_RETRY_DELAYS_MS = [10, 30, 60, 100, 200, 400, 800, 1000, 1000];

/**
 * A partition's leader is missing from the brokers the metadata lists: the broker was just lost
 * and no new leader is elected yet (seen on the fault rig after a broker's SIGKILL). Fresh metadata
 * names the new leader, so the send is tried again; if the election takes longer than the retries,
 * the client is told to come back (503 with Retry-After), as for any unreachable broker.
 */
class LeaderGone extends RunnelError {
  constructor(leader: number) {
    super("not_ready", `Kafka broker ${leader} is not in the metadata`, { retryAfter: 1 });
  }
}

/** A leader that moved or is not elected yet, or a connection lost: worth a resend. */
function isRetriableProduce(e: unknown): boolean {
  return (
    e instanceof LeaderGone ||
    hasKafkaError(e, "NOT_LEADER_OR_FOLLOWER") ||
    hasKafkaError(e, "LEADER_NOT_AVAILABLE") ||
    hasKafkaError(e, "UNKNOWN_TOPIC_OR_PARTITION") ||
    hasKafkaError(e, "REQUEST_TIMED_OUT") ||
    isNetworkError(e)
  );
}

/** The records of a group bound for one partition, in append order, with the append and index each came from. */
interface Partition {
  readonly meta: StreamMeta;
  readonly stream: string;
  readonly topic: string;
  readonly partition: number;
  readonly records: OutgoingRecord[];
  readonly owners: number[];
  readonly indexes: number[];
}

function partitionsOf(group: readonly PendingAppend[]): Partition[] {
  // Per topic, its partitions by index (hot loop: no string key per record).
  const byTopic = new Map<string, (Partition | undefined)[]>();
  const out: Partition[] = [];
  for (let a = 0; a < group.length; a++) {
    const { meta, stream, records } = group[a]!;
    let parts = byTopic.get(meta.topic);
    if (parts === undefined) {
      parts = new Array<Partition | undefined>(meta.partitions);
      byTopic.set(meta.topic, parts);
    }
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      let part = parts[r.partition];
      if (part === undefined) {
        part = { meta, stream, topic: meta.topic, partition: r.partition, records: [], owners: [], indexes: [] };
        parts[r.partition] = part;
        out.push(part);
      }
      part.records.push(r);
      part.owners.push(a);
      part.indexes.push(i);
    }
  }
  return out;
}

/**
 * Where a partition's records are cut into batches ([0, c1, c2, ..., length]): a batch stays within
 * MAX_BATCH_BYTES and its records within MAX_TIMESTAMP_DELTA of its first one's timestamp.
 */
function cutBatches(part: Partition): number[] {
  const cuts = [0];
  let bytes = 0;
  let first = part.records[0]!.timestampMs;
  for (let i = 0; i < part.records.length; i++) {
    const r = part.records[i]!;
    const delta = r.timestampMs - first;
    const farApart = delta > MAX_TIMESTAMP_DELTA || delta < -MAX_TIMESTAMP_DELTA;
    if (i > cuts.at(-1)! && (bytes + r.maxBytes > MAX_BATCH_BYTES || farApart)) {
      cuts.push(i);
      bytes = 0;
      first = r.timestampMs;
    }
    bytes += r.maxBytes;
  }
  cuts.push(part.records.length);
  return cuts;
}

/** Kafka's sequence numbers wrap to 0 after the largest int32. */
function nextSequence(sequence: number, records: number): number {
  const max = 0x7fffffff;
  return sequence > max - records ? records - (max - sequence) - 1 : sequence + records;
}

function notFound(stream: string): RunnelError {
  return new RunnelError("stream_not_found", `stream "${stream}" does not exist`);
}

function checkPartition(meta: StreamMeta, stream: string, partition: number): void {
  if (!Number.isInteger(partition) || partition < 0 || partition >= meta.partitions) {
    throw new RunnelError("invalid_input", `stream "${stream}" has no partition ${partition}`);
  }
}

function leaderOf(
  metadata: ClusterMetadata,
  meta: StreamMeta,
  stream: string,
  partition: number,
): { topicId: string; leader: number } {
  const topic = metadata.topics.get(meta.topic);
  if (topic === undefined) throw notFound(stream);
  const leader = topic.partitions[partition]?.leader;
  if (leader === undefined || leader < 0) {
    throw new RunnelError("not_ready", `partition ${partition} of ${meta.topic} has no leader`, { retryAfter: 1 });
  }
  return { topicId: topic.id, leader };
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
    if (v !== undefined && !(Number.isSafeInteger(v) && v > 0)) {
      throw new RunnelError("invalid_input", `${field} must be a positive integer, got ${v}`);
    }
  }
}
