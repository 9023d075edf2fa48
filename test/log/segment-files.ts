/**
 * Raw segment-file content for tests that craft or damage files by hand: record batches (the
 * format the log writes, batch.ts) and records of the per-record format (magic 1) as
 * src/log/local/record.ts wrote them before batches replaced it (commit 9ac591c). The log no
 * longer writes magic 1 but must read it forever, so tests build old-format segments with it:
 * whole ones, mixed with batches, and damaged ones.
 */
import {
  BATCH_OVERHEAD,
  batchRecordBytes,
  headerBlockBytes,
  timestampFieldBytes,
  writeBatchHeader,
  writeBatchRecord,
} from "../../src/log/local/batch.js";
import { crc32Range } from "../../src/log/local/crc32.js";
import {
  ATTR_HEADERS,
  BODY_HEADER_BYTES,
  FRAME_BYTES,
  type Headers,
  RECORD_MAGIC,
} from "../../src/log/local/record.js";

/** Bytes of the magic-1 header block for `headers`, or 0 when there are none. */
export function headerBlockBytesV1(headers: Headers | undefined): number {
  if (headers === undefined) return 0;
  let bytes = 6;
  let count = 0;
  for (const name of Object.keys(headers)) {
    bytes += 4 + Buffer.byteLength(name, "utf8") + Buffer.byteLength(headers[name]!, "utf8");
    count++;
  }
  return count === 0 ? 0 : bytes;
}

export interface V1Record {
  readonly offset: number;
  readonly timestamp: number;
  readonly ingestTime: number;
  readonly commitSeq: number;
  readonly key: string;
  readonly value: Uint8Array;
  readonly headers?: Headers;
  /** ATTR_SELF_COMMIT / ATTR_APPEND_END bits. */
  readonly flags?: number;
}

/** One magic-1 record, framed and checksummed. */
export function encodeV1Record(r: V1Record): Buffer {
  const key = Buffer.from(r.key, "utf8");
  const headerBytes = headerBlockBytesV1(r.headers);
  const bodyLength = BODY_HEADER_BYTES + key.length + headerBytes + r.value.length;
  const buf = Buffer.alloc(FRAME_BYTES + bodyLength);
  const body = FRAME_BYTES;
  buf.writeUInt32LE(bodyLength, 0);
  buf[body] = RECORD_MAGIC;
  buf[body + 1] = (headerBytes > 0 ? ATTR_HEADERS : 0) | (r.flags ?? 0);
  buf.writeUInt16LE(key.length, body + 2);
  buf.writeDoubleLE(r.offset, body + 4);
  buf.writeDoubleLE(r.timestamp, body + 12);
  buf.writeDoubleLE(r.ingestTime, body + 20);
  buf.writeDoubleLE(r.commitSeq, body + 28);
  let at = body + BODY_HEADER_BYTES;
  key.copy(buf, at);
  at += key.length;
  if (headerBytes > 0 && r.headers !== undefined) {
    buf.writeUInt32LE(headerBytes - 4, at);
    const countAt = at + 4;
    at += 6;
    let count = 0;
    for (const name of Object.keys(r.headers)) {
      const n = buf.write(name, at + 2, "utf8");
      buf.writeUInt16LE(n, at);
      at += 2 + n;
      const v = buf.write(r.headers[name]!, at + 2, "utf8");
      buf.writeUInt16LE(v, at);
      at += 2 + v;
      count++;
    }
    buf.writeUInt16LE(count, countAt);
  }
  buf.set(r.value, at);
  buf.writeUInt32LE(crc32Range(buf, body, buf.length), 4);
  return buf;
}

export interface BatchRecord {
  readonly key: string;
  readonly timestamp: number;
  readonly value: Uint8Array;
  readonly headers?: Headers;
}

export interface BatchFields {
  readonly baseOffset: number;
  readonly ingestTime: number;
  readonly commitSeq: number;
  /** ATTR_SELF_COMMIT / ATTR_APPEND_END bits. */
  readonly attributes?: number;
}

/** One record batch holding `records` (at least one), framed and checksummed. */
export function encodeBatch(records: readonly BatchRecord[], fields: BatchFields): Buffer {
  const base = records[0]!.timestamp;
  let size = BATCH_OVERHEAD;
  for (const r of records) {
    size += batchRecordBytes(
      timestampFieldBytes(r.timestamp, base),
      Buffer.byteLength(r.key, "utf8"),
      headerBlockBytes(r.headers),
      r.value.length,
    );
  }
  const buf = Buffer.alloc(size);
  let at = BATCH_OVERHEAD;
  let max = base;
  for (const r of records) {
    const keyBytes = Buffer.byteLength(r.key, "utf8");
    at = writeBatchRecord(
      buf,
      at,
      r.timestamp,
      base,
      r.key,
      keyBytes,
      false,
      r.value,
      r.headers,
      headerBlockBytes(r.headers),
    );
    if (r.timestamp > max) max = r.timestamp;
  }
  if (at !== size) throw new Error(`batch sized ${size} bytes but written in ${at}`);
  writeBatchHeader(
    buf,
    0,
    size,
    fields.attributes ?? 0,
    records.length,
    fields.baseOffset,
    base,
    max,
    fields.ingestTime,
    fields.commitSeq,
  );
  return buf;
}
