/**
 * The record batch (magic 2), what the log writes: Kafka's record batch (KIP-98's format) cut
 * down to what this log needs. One batch holds the records one group commit wrote to one
 * partition, so the frame, CRC, offsets, times and commit sequence are paid once per batch and
 * each record carries only varint-sized deltas and lengths. Little-endian:
 *
 *   u32 bodyLength | u32 crc32(body) | body
 *   body   = u8 magic (2) | u8 attributes | u32 recordCount | f64 baseOffset | f64 baseTimestamp
 *          | f64 maxTimestamp | f64 ingestTime | f64 commitSeq | recordCount × record
 *   record = varint timestampField | varint keyLength | key (UTF-8)
 *          | varint headerBlockLength | [headers] | varint valueLength | value
 *   timestampField = zigzag(timestamp − baseTimestamp) + 1 when that difference is an integer of
 *          magnitude below 2^30 (and gives the timestamp back exactly), else 0 and the timestamp
 *          as f64 (event times are any finite number)
 *   headers (only when headerBlockLength > 0) = u16 count
 *          | count × (u16 nameLength | name (UTF-8) | u16 valueLength | value (UTF-8))
 *
 * Varints are unsigned LEB128. Unlike Kafka's, a record has no offset delta (offsets are dense
 * within a batch: record i is baseOffset + i, as nothing ever compacts a batch) and no ingest time
 * (one group commit accepts all of a batch's records at one instant), which saves two bytes and
 * two varint writes per record. The batch is the unit of atomicity: its CRC covers every record,
 * so recovery keeps or truncates it whole. Attributes are those of record.ts (self-commit, end).
 * The frame and the magic byte sit where magic 1 has them, so one reader takes both (entry.ts).
 */
import { crc32Range } from "./crc32.js";
import { FRAME_BYTES } from "./record.js";

export const BATCH_MAGIC = 2;
/** Fixed part of the body before the first record. */
export const BATCH_BODY_HEADER_BYTES = 46;
export const BATCH_OVERHEAD = FRAME_BYTES + BATCH_BODY_HEADER_BYTES;
/**
 * A group's records for one partition are cut into batches of about this many bytes (one record
 * larger than this gets a batch of its own). Big enough that the frame costs nothing per record,
 * small enough that a read from an offset in the middle of a batch decodes little to skip to it.
 */
export const MAX_BATCH_BYTES = 64 * 1024;

/** Timestamp differences stored as varints stay below this, so zigzag + 1 fits 32 bits. */
const MAX_TIMESTAMP_DELTA = 2 ** 30;
const F64_TIMESTAMP_BYTES = 9;

function varintBytes(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/**
 * Whether `timestamp` is stored as a varint difference from the base: the difference must be a
 * small integer that gives the timestamp back exactly (fractions and far-apart times do not, and
 * neither does -0, which base + difference would turn into +0).
 */
function fitsDelta(timestamp: number, baseTimestamp: number, delta: number): boolean {
  return (
    delta > -MAX_TIMESTAMP_DELTA &&
    delta < MAX_TIMESTAMP_DELTA &&
    (delta | 0) === delta &&
    baseTimestamp + delta === timestamp &&
    (timestamp !== 0 || 1 / timestamp > 0)
  );
}

/** Bytes of a record's timestamp field relative to its batch's base timestamp. */
export function timestampFieldBytes(timestamp: number, baseTimestamp: number): number {
  const delta = timestamp - baseTimestamp;
  return fitsDelta(timestamp, baseTimestamp, delta) ? varintBytes(zigzag(delta) + 1) : F64_TIMESTAMP_BYTES;
}

/** Bytes of the header block for `headers` (without its length prefix), or 0 when there are none. */
export function headerBlockBytes(headers: Readonly<Record<string, string>> | undefined): number {
  if (headers === undefined) return 0;
  let bytes = 2;
  let count = 0;
  for (const name of Object.keys(headers)) {
    bytes += 4 + Buffer.byteLength(name, "utf8") + Buffer.byteLength(headers[name]!, "utf8");
    count++;
  }
  return count === 0 ? 0 : bytes;
}

/** Bytes of one record inside a batch. */
export function batchRecordBytes(
  timestampBytes: number,
  keyBytes: number,
  headerBytes: number,
  valueBytes: number,
): number {
  return (
    timestampBytes +
    varintBytes(keyBytes) +
    keyBytes +
    varintBytes(headerBytes) +
    headerBytes +
    varintBytes(valueBytes) +
    valueBytes
  );
}

function zigzag(v: number): number {
  return ((v << 1) ^ (v >> 31)) >>> 0;
}

/** Inverse of zigzag for the values it produces here (below 2^31). */
export function unzigzag(v: number): number {
  return (v >>> 1) ^ -(v & 1);
}

function writeVarint(buf: Buffer, at: number, v: number): number {
  while (v >= 0x80) {
    buf[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[at] = v;
  return at + 1;
}

/**
 * Writes one record of a batch at `at` (the buffer must have room: `batchRecordBytes` with the
 * same arguments); returns the position after it. `asciiKey` says the key is 7-bit, so its
 * bytes are its char codes.
 */
export function writeBatchRecord(
  buf: Buffer,
  at: number,
  timestamp: number,
  baseTimestamp: number,
  key: string,
  keyBytes: number,
  asciiKey: boolean,
  value: Uint8Array,
  headers: Readonly<Record<string, string>> | undefined,
  headerBytes: number,
): number {
  const delta = timestamp - baseTimestamp;
  if (fitsDelta(timestamp, baseTimestamp, delta)) {
    at = writeVarint(buf, at, zigzag(delta) + 1);
  } else {
    buf[at] = 0;
    writeF64(buf, at + 1, timestamp);
    at += F64_TIMESTAMP_BYTES;
  }
  if (keyBytes < 0x80) buf[at++] = keyBytes;
  else at = writeVarint(buf, at, keyBytes);
  if (keyBytes > 0) {
    // Short ASCII keys (user ids) copy faster by hand than through a native string write.
    if (asciiKey && keyBytes <= 32) for (let i = 0; i < keyBytes; i++) buf[at + i] = key.charCodeAt(i);
    else buf.write(key, at, keyBytes, asciiKey ? "latin1" : "utf8");
    at += keyBytes;
  }
  if (headerBytes === 0 || headers === undefined) buf[at++] = 0;
  else at = writeHeaderBlock(buf, writeVarint(buf, at, headerBytes), headers);
  const n = value.length;
  if (n < 0x80) buf[at++] = n;
  else at = writeVarint(buf, at, n);
  // A native copy has a fixed cost that only a byte loop over a few bytes beats (measured).
  if (n <= 8) for (let i = 0; i < n; i++) buf[at + i] = value[i]!;
  else buf.set(value, at);
  return at + n;
}

function writeHeaderBlock(buf: Buffer, at: number, headers: Readonly<Record<string, string>>): number {
  const countAt = at;
  at += 2;
  let count = 0;
  for (const name of Object.keys(headers)) {
    const n = buf.write(name, at + 2, "utf8");
    buf.writeUInt16LE(n, at);
    at += 2 + n;
    const v = buf.write(headers[name]!, at + 2, "utf8");
    buf.writeUInt16LE(v, at);
    at += 2 + v;
    count++;
  }
  buf.writeUInt16LE(count, countAt);
  return at;
}

/**
 * Fills in the frame and fixed fields of the batch whose records lie in `[pos + BATCH_OVERHEAD,
 * end)`, then its CRC; the records must already be written.
 */
export function writeBatchHeader(
  buf: Buffer,
  pos: number,
  end: number,
  attributes: number,
  recordCount: number,
  baseOffset: number,
  baseTimestamp: number,
  maxTimestamp: number,
  ingestTime: number,
  commitSeq: number,
): void {
  const body = pos + FRAME_BYTES;
  writeU32(buf, pos, end - body);
  buf[body] = BATCH_MAGIC;
  buf[body + 1] = attributes;
  writeU32(buf, body + 2, recordCount);
  writeF64(buf, body + 6, baseOffset);
  writeF64(buf, body + 14, baseTimestamp);
  writeF64(buf, body + 22, maxTimestamp);
  writeF64(buf, body + 30, ingestTime);
  writeF64(buf, body + 38, commitSeq);
  writeU32(buf, pos + 4, crc32Range(buf, body, end));
}

function writeU32(buf: Buffer, at: number, v: number): void {
  buf[at] = v & 0xff;
  buf[at + 1] = (v >>> 8) & 0xff;
  buf[at + 2] = (v >>> 16) & 0xff;
  buf[at + 3] = v >>> 24;
}

/*
 * f64 fields go through a typed-array scratch and a byte loop: Buffer#writeDoubleLE bounds-checks
 * and converts each value separately, which showed in the encode cost. The scratch holds the
 * platform's byte order, so big-endian platforms take writeDoubleLE.
 */
const F64 = new Float64Array(1);
const F64_BYTES = new Uint8Array(F64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function writeF64(buf: Buffer, at: number, v: number): void {
  if (!LITTLE_ENDIAN) {
    buf.writeDoubleLE(v, at);
    return;
  }
  F64[0] = v;
  const f = F64_BYTES;
  for (let k = 0; k < 8; k++) buf[at + k] = f[k]!;
}
