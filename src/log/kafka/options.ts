/**
 * Options of the Kafka EventLog, with defaults in human units beside them. Validated once at the
 * edge (createKafkaEventLog), naming the offending field, then frozen.
 */
import { RunnelError } from "../../core/errors.js";

export interface KafkaEventLogOptions {
  /** Bootstrap brokers, "host:port" each (RUNNEL_KAFKA_BROKERS, comma-separated). */
  readonly brokers: readonly string[];
  /** Kafka client id; also the stem of this instance's transactional id. */
  readonly clientId?: string;
  /** Prepended to every stream's topic name, so several Runnel installations can share a cluster. */
  readonly topicPrefix?: string;
  /** Replication factor of new topics; undefined uses the broker's default.replication.factor. */
  readonly replicationFactor?: number;
  /** How often end offsets are polled while onAppend listeners exist, to see others' appends. */
  readonly pollIntervalMs?: number;
  /** Per-request timeout; an unreachable broker surfaces as not_ready after about this long. */
  readonly requestTimeoutMs?: number;
  /**
   * Transactions in flight at once, one transactional producer each (Kafka allows one open
   * transaction per transactional id): while one commits, the next group of appends is produced.
   */
  readonly transactionsInFlight?: number;
}

export interface ResolvedKafkaOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly topicPrefix: string;
  readonly replicationFactor: number;
  readonly pollIntervalMs: number;
  readonly requestTimeoutMs: number;
  readonly transactionsInFlight: number;
}

export const DEFAULT_CLIENT_ID = "runnel";
export const DEFAULT_TOPIC_PREFIX = "runnel-";
export const DEFAULT_POLL_INTERVAL_MS = 250;
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
export const DEFAULT_TRANSACTIONS_IN_FLIGHT = 4;
export const DEFAULT_READ_MAX_RECORDS = 10_000;
export const DEFAULT_READ_MAX_BYTES = 4 * 1024 * 1024;
/**
 * Bytes of one record batch at most (as record-batch.ts bounds it). Kafka refuses a batch larger
 * than the topic's max.message.bytes (1 MiB by default); a partition's records beyond this go in
 * further batches of the same transaction, so an append stays atomic.
 */
export const MAX_BATCH_BYTES = 1_000_000;
/** Key length cap shared with the local log's record format, so a stream moves either way. */
export const MAX_KEY_BYTES = 0xffff;

const TOPIC_CHARS = /^[A-Za-z0-9._-]*$/;
const CLIENT_ID = /^[A-Za-z0-9._-]+$/;

export function resolveKafkaOptions(options: KafkaEventLogOptions): ResolvedKafkaOptions {
  const invalid = (field: string, message: string) =>
    new RunnelError("invalid_input", `/options/${field} ${message}`, { details: { field } });
  if (!Array.isArray(options.brokers) || options.brokers.length === 0) {
    throw invalid("brokers", "must list at least one host:port");
  }
  for (const b of options.brokers) {
    if (typeof b !== "string" || !/^[^\s:]+:\d{1,5}$/.test(b)) throw invalid("brokers", `has "${b}", not host:port`);
  }
  const clientId = options.clientId ?? DEFAULT_CLIENT_ID;
  if (!CLIENT_ID.test(clientId)) throw invalid("clientId", "may hold only letters, digits, '.', '_' and '-'");
  const topicPrefix = options.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
  if (!TOPIC_CHARS.test(topicPrefix) || topicPrefix.length > 100) {
    throw invalid("topicPrefix", "may hold only letters, digits, '.', '_' and '-' (at most 100)");
  }
  const replicationFactor = options.replicationFactor ?? -1;
  if (!Number.isInteger(replicationFactor) || (replicationFactor < 1 && replicationFactor !== -1)) {
    throw invalid("replicationFactor", "must be a positive integer");
  }
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  if (!(pollIntervalMs >= 10)) throw invalid("pollIntervalMs", "must be at least 10");
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (!(requestTimeoutMs >= 100)) throw invalid("requestTimeoutMs", "must be at least 100");
  const transactionsInFlight = options.transactionsInFlight ?? DEFAULT_TRANSACTIONS_IN_FLIGHT;
  if (!Number.isInteger(transactionsInFlight) || transactionsInFlight < 1 || transactionsInFlight > 64) {
    throw invalid("transactionsInFlight", "must be an integer from 1 to 64");
  }
  return Object.freeze({
    brokers: Object.freeze([...options.brokers]),
    clientId,
    topicPrefix,
    replicationFactor,
    pollIntervalMs,
    requestTimeoutMs,
    transactionsInFlight,
  });
}

/**
 * Stream name → topic name. Kafka topics allow only [A-Za-z0-9._-]; anything else (and '.', so the
 * mapping stays reversible) becomes ".hh" per UTF-8 byte. Runnel's API names ([a-z][a-z0-9_]*)
 * pass through unchanged.
 */
export function topicOf(prefix: string, stream: string): string {
  let out = prefix;
  for (const byte of Buffer.from(stream, "utf8")) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `.${byte.toString(16).padStart(2, "0")}`;
  }
  if (out.length > 249) {
    throw new RunnelError("invalid_input", `stream name "${stream}" is too long for a Kafka topic`);
  }
  return out;
}

/** Topic name → stream name, or undefined when the topic is not one of this prefix's streams. */
export function streamOf(prefix: string, topic: string): string | undefined {
  if (!topic.startsWith(prefix)) return undefined;
  const body = topic.slice(prefix.length);
  if (body.length === 0) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === ".") {
      const byte = Number.parseInt(body.slice(i + 1, i + 3), 16);
      if (!(byte >= 0)) return undefined;
      bytes.push(byte);
      i += 2;
    } else {
      bytes.push(c.charCodeAt(0));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}
