/**
 * How a Runnel record travels as a Kafka record, and how fetched batches become LogRecords.
 *
 * key → record key (UTF-8), value → record value, timestamp → record timestamp (CreateTime),
 * headers → record headers. Two headers are reserved ("runnel." prefix, refused on append):
 *   runnel.ingest-time  when this log accepted the record (ms, decimal)
 *   runnel.timestamp    the exact event time, only when the record timestamp cannot hold it
 *                       (negative or fractional: Kafka reserves -1 and refuses negatives)
 */
import type { RecordsBatch } from "@platformatic/kafka";
import { RunnelError } from "../../core/errors.js";
import type { AppendRecord, LogRecord } from "../types.js";
import { MAX_KEY_BYTES } from "./options.js";
import type { BatchRecord, RecordHeaders } from "./record-batch.js";
import { encodeHeaders, recordMaxBytes } from "./record-batch.js";

export const HEADER_INGEST_TIME = "runnel.ingest-time";
export const HEADER_TIMESTAMP = "runnel.timestamp";
const RESERVED_PREFIX = "runnel.";

const IS_TRANSACTIONAL = 1 << 4;
const IS_CONTROL = 1 << 5;
const CONTROL_ABORT = 0;

/** A record on its way to Kafka: the batch encoder's fields and the partition it goes to. */
export interface OutgoingRecord extends BatchRecord {
  readonly partition: number;
}

export function validateRecord(r: AppendRecord): void {
  if (typeof r.key !== "string" || Buffer.byteLength(r.key, "utf8") > MAX_KEY_BYTES) {
    throw new RunnelError("invalid_input", `record key must be a string of at most ${MAX_KEY_BYTES} UTF-8 bytes`);
  }
  if (!Number.isFinite(r.timestamp)) {
    throw new RunnelError("invalid_input", `record timestamp must be a finite number, got ${r.timestamp}`);
  }
  if (!(r.value instanceof Uint8Array)) throw new RunnelError("invalid_input", "record value must be a Uint8Array");
  if (r.headers !== undefined) {
    for (const name of Object.keys(r.headers)) {
      if (name.startsWith(RESERVED_PREFIX)) {
        throw new RunnelError("invalid_input", `record header "${name}" uses the reserved prefix "${RESERVED_PREFIX}"`);
      }
    }
  }
}

const INGEST_TIME_KEY = Buffer.from(HEADER_INGEST_TIME);
const TIMESTAMP_KEY = Buffer.from(HEADER_TIMESTAMP);

/**
 * What the records of one append share, built once per append rather than once per record: the
 * ingest time header and, for records without headers of their own and with an exact timestamp
 * (nearly all), their encoded headers.
 */
export interface AppendContext {
  readonly ingestTime: Buffer;
  readonly plainHeaders: RecordHeaders;
}

export function appendContext(ingestTime: number): AppendContext {
  const value = Buffer.from(String(ingestTime));
  return { ingestTime: value, plainHeaders: encodeHeaders([[INGEST_TIME_KEY, value]]) };
}

export function toKafkaRecord(partition: number, r: AppendRecord, context: AppendContext): OutgoingRecord {
  const exact = Number.isSafeInteger(r.timestamp) && r.timestamp >= 0;
  let headers = context.plainHeaders;
  if (!exact || r.headers !== undefined) {
    const own: [Buffer, Buffer][] = [[INGEST_TIME_KEY, context.ingestTime]];
    if (!exact) own.push([TIMESTAMP_KEY, Buffer.from(String(r.timestamp))]);
    for (const [name, value] of Object.entries(r.headers ?? {})) own.push([Buffer.from(name), Buffer.from(value)]);
    headers = encodeHeaders(own);
  }
  const keyBytes = Buffer.byteLength(r.key, "utf8");
  return {
    partition,
    key: r.key,
    keyBytes,
    // Not copied: the batch is encoded before append() resolves.
    value: r.value,
    // The exact time travels in a header; Kafka's field holds the nearest time it can.
    timestampMs: exact ? r.timestamp : Math.min(Math.max(0, Math.floor(r.timestamp)), Number.MAX_SAFE_INTEGER),
    headers,
    maxBytes: recordMaxBytes(keyBytes, r.value.byteLength, headers),
  };
}

export interface AbortedTransaction {
  readonly producerId: bigint;
  readonly firstOffset: bigint;
}

export interface DecodedFetch {
  readonly records: LogRecord[];
  /** Offset after the last batch the broker returned (records, markers or aborted data). */
  readonly nextOffset: number | undefined;
}

/**
 * Committed records of one fetched partition from `fromOffset`, up to the limits. The broker sends
 * whole batches (a batch may start before `fromOffset`) including aborted transactions' data and
 * control markers; read_committed filtering is the client's job (KIP-98): a transactional batch
 * is dropped while its producer has an aborted transaction open at that point of the log.
 */
export function decodeFetched(
  partition: number,
  batches: readonly RecordsBatch[],
  abortedTransactions: readonly AbortedTransaction[],
  fromOffset: number,
  maxRecords: number,
  maxBytes: number,
): DecodedFetch {
  const aborted = [...abortedTransactions].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : 1));
  const abortedProducers = new Set<bigint>();
  const out: LogRecord[] = [];
  let bytes = 0;
  let nextOffset: number | undefined;
  const from = BigInt(fromOffset);
  for (const batch of batches) {
    const lastOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta);
    while (aborted.length > 0 && aborted[0]!.firstOffset <= lastOffset)
      abortedProducers.add(aborted.shift()!.producerId);
    if ((batch.attributes & IS_CONTROL) !== 0) {
      const type = batch.records[0]?.key?.readInt16BE(2);
      if (type === CONTROL_ABORT) abortedProducers.delete(batch.producerId);
      nextOffset = Number(lastOffset + 1n);
      continue;
    }
    if ((batch.attributes & IS_TRANSACTIONAL) !== 0 && abortedProducers.has(batch.producerId)) {
      nextOffset = Number(lastOffset + 1n);
      continue;
    }
    for (const r of batch.records) {
      const offset = batch.firstOffset + BigInt(r.offsetDelta);
      if (offset < from) continue;
      const value = r.value ?? Buffer.alloc(0);
      if (out.length >= maxRecords || (out.length > 0 && bytes + value.length > maxBytes)) {
        return { records: out, nextOffset: Number(offset) };
      }
      bytes += value.length;
      out.push(
        fromKafkaRecord(partition, Number(offset), batch.firstTimestamp + r.timestampDelta, r.key, value, r.headers),
      );
    }
    nextOffset = Number(lastOffset + 1n);
  }
  return { records: out, nextOffset };
}

function fromKafkaRecord(
  partition: number,
  offset: number,
  kafkaTimestamp: bigint,
  key: Buffer | null,
  value: Buffer,
  rawHeaders: readonly [Buffer | null, Buffer | null][],
): LogRecord {
  let timestamp = Number(kafkaTimestamp);
  let ingestTime = Number.NaN;
  let headers: Record<string, string> | undefined;
  for (const [k, v] of rawHeaders) {
    if (k === null) continue;
    const name = k.toString("utf8");
    const text = v === null ? "" : v.toString("utf8");
    if (name === HEADER_INGEST_TIME) ingestTime = Number(text);
    else if (name === HEADER_TIMESTAMP) timestamp = Number(text);
    else {
      headers ??= {};
      headers[name] = text;
    }
  }
  const record: LogRecord = {
    partition,
    offset,
    key: key === null ? "" : key.toString("utf8"),
    timestamp,
    // Records produced by other Kafka clients carry no ingest header: their timestamp is the best guess.
    ingestTime: Number.isNaN(ingestTime) ? Number(kafkaTimestamp) : ingestTime,
    value: new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
  };
  return headers === undefined ? record : { ...record, headers };
}
