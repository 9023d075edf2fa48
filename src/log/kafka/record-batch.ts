/**
 * Kafka's record batch, format v2 (magic 2), written in one buffer: the produce path's hot loop.
 * The client's own encoder builds a small buffer per field of every record and joins them, which
 * cost the backend most of its CPU (docs/kafka.md); here each record is written in place.
 *
 * Layout (https://kafka.apache.org/documentation/#recordbatch): baseOffset int64, batchLength
 * int32, partitionLeaderEpoch int32, magic int8, crc uint32 (CRC-32C of everything after it),
 * attributes int16, lastOffsetDelta int32, baseTimestamp int64, maxTimestamp int64, producerId
 * int64, producerEpoch int16, baseSequence int32, record count int32, then the records. A record:
 * length, attributes int8, timestampDelta, offsetDelta, key length, key, value length, value,
 * header count, then per header key length, key, value length, value; every length and delta a
 * zigzag varint (-1 for a null key).
 */
import { crc32c } from "@platformatic/kafka";

/** One record as the produce path holds it: what the batch needs, nothing per field allocated. */
export interface BatchRecord {
  /** The record key, written as UTF-8. */
  readonly key: string;
  readonly keyBytes: number;
  readonly value: Uint8Array;
  /** Kafka's record timestamp (ms, non-negative, safe integer). */
  readonly timestampMs: number;
  /** Header names and values, already encoded (shared between the records of one append). */
  readonly headers: RecordHeaders;
  /** Bytes this record takes in a batch at most (its varints at their widest). */
  readonly maxBytes: number;
}

export interface RecordHeaders {
  readonly entries: readonly (readonly [Buffer, Buffer])[];
  /** Bytes of the header count and entries, as written. */
  readonly bytes: number;
}

export interface BatchProducer {
  readonly producerId: bigint;
  readonly producerEpoch: number;
  /** Sequence number of the batch's first record (idempotence: the broker expects exactly this). */
  readonly baseSequence: number;
  readonly transactional: boolean;
}

/** Bytes before the first record: the batch header up to and including the record count. */
export const BATCH_OVERHEAD = 61;
/** A record's fixed fields at their widest: length, attributes, deltas and three lengths/counts. */
const RECORD_OVERHEAD = 5 + 1 + 5 + 5 + 5 + 5;
const IS_TRANSACTIONAL = 1 << 4;
/** Where the CRC starts covering: attributes, right after the crc field. */
const CRC_FROM = 21;
/**
 * Timestamp deltas are written as 32-bit zigzag varints: a batch's records must lie within this
 * distance of its first record's timestamp (the caller starts a new batch otherwise).
 */
export const MAX_TIMESTAMP_DELTA = 2 ** 31 - 1;

export function encodeHeaders(entries: readonly (readonly [Buffer, Buffer])[]): RecordHeaders {
  let bytes = varintBytes(entries.length);
  for (const [k, v] of entries) bytes += varintBytes(k.length) + k.length + varintBytes(v.length) + v.length;
  return { entries, bytes };
}

/** The upper bound of `maxBytes` for a record with these parts. */
export function recordMaxBytes(keyBytes: number, valueBytes: number, headers: RecordHeaders): number {
  return RECORD_OVERHEAD + keyBytes + valueBytes + headers.bytes;
}

/**
 * Encodes records[from, to) as one batch. Their timestamps must lie within MAX_TIMESTAMP_DELTA of
 * records[from]'s; `maxBytes` is the sum of their maxBytes (the buffer is cut to what was written).
 */
export function encodeRecordBatch(
  records: readonly BatchRecord[],
  from: number,
  to: number,
  maxBytes: number,
  producer: BatchProducer,
): Buffer {
  const buf = Buffer.allocUnsafe(BATCH_OVERHEAD + maxBytes);
  const baseTimestamp = records[from]!.timestampMs;
  let maxTimestamp = baseTimestamp;
  let pos = BATCH_OVERHEAD;
  for (let i = from; i < to; i++) {
    const r = records[i]!;
    const delta = r.timestampMs - baseTimestamp;
    if (r.timestampMs > maxTimestamp) maxTimestamp = r.timestampMs;
    const offsetDelta = i - from;
    const valueBytes = r.value.byteLength;
    const body =
      1 +
      varintBytes(delta) +
      varintBytes(offsetDelta) +
      varintBytes(r.keyBytes) +
      r.keyBytes +
      varintBytes(valueBytes) +
      valueBytes +
      r.headers.bytes;
    pos = writeVarint(buf, pos, body);
    buf[pos++] = 0; // record attributes: unused
    pos = writeVarint(buf, pos, delta);
    pos = writeVarint(buf, pos, offsetDelta);
    pos = writeVarint(buf, pos, r.keyBytes);
    pos += buf.write(r.key, pos, r.keyBytes, "utf8");
    pos = writeVarint(buf, pos, valueBytes);
    buf.set(r.value, pos);
    pos += valueBytes;
    const headers = r.headers.entries;
    pos = writeVarint(buf, pos, headers.length);
    for (let h = 0; h < headers.length; h++) {
      const [k, v] = headers[h]!;
      pos = writeVarint(buf, pos, k.length);
      pos += k.copy(buf, pos);
      pos = writeVarint(buf, pos, v.length);
      pos += v.copy(buf, pos);
    }
  }
  buf.writeBigInt64BE(0n, 0); // baseOffset: the broker assigns it
  buf.writeInt32BE(pos - 12, 8);
  buf.writeInt32BE(-1, 12); // partitionLeaderEpoch: set by the broker
  buf.writeInt8(2, 16);
  buf.writeInt16BE(producer.transactional ? IS_TRANSACTIONAL : 0, 21);
  buf.writeInt32BE(to - from - 1, 23);
  buf.writeBigInt64BE(BigInt(baseTimestamp), 27);
  buf.writeBigInt64BE(BigInt(maxTimestamp), 35);
  buf.writeBigInt64BE(producer.producerId, 43);
  buf.writeInt16BE(producer.producerEpoch, 51);
  buf.writeInt32BE(producer.baseSequence, 53);
  buf.writeInt32BE(to - from, 57);
  const out = buf.subarray(0, pos);
  out.writeUInt32BE(crc32c(out.subarray(CRC_FROM)), 17);
  return out;
}

/** Bytes of `n` as a zigzag varint (n within the int32 range). */
function varintBytes(n: number): number {
  const z = ((n << 1) ^ (n >> 31)) >>> 0;
  return z < 0x80 ? 1 : z < 0x4000 ? 2 : z < 0x200000 ? 3 : z < 0x10000000 ? 4 : 5;
}

/** Writes `n` (within the int32 range) as a zigzag varint at `pos`; returns the position after it. */
function writeVarint(buf: Buffer, pos: number, n: number): number {
  let z = ((n << 1) ^ (n >> 31)) >>> 0;
  while (z >= 0x80) {
    buf[pos++] = (z & 0x7f) | 0x80;
    z >>>= 7;
  }
  buf[pos++] = z;
  return pos;
}
