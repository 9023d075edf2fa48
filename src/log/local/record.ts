/**
 * The on-disk record format. Little-endian; every record is self-delimiting and self-checking so
 * recovery can find the last whole record without any other file:
 *
 *   u32 bodyLength | u32 crc32(body) | body
 *   body = u8 magic | u8 attributes | u16 keyLength | f64 offset | f64 timestamp
 *        | f64 ingestTime | f64 commitSeq | key (UTF-8) | value
 *
 * Offsets, times and sequence numbers are integers below 2^53, so f64 holds them exactly and is
 * cheaper to read and write than BigInt. `commitSeq` is the stream-wide group-commit sequence the
 * record was written under; recovery drops tail records whose sequence never reached the commit
 * file (see commit-file.ts).
 */
import { crc32 } from "node:zlib";

export const RECORD_MAGIC = 1;
/** Length prefix and CRC. */
export const FRAME_BYTES = 8;
/** Fixed part of the body before the key. */
export const BODY_HEADER_BYTES = 36;
export const RECORD_OVERHEAD = FRAME_BYTES + BODY_HEADER_BYTES;
export const MAX_KEY_BYTES = 0xffff;
/** Sanity bound used to tell a garbage length prefix from a real one during recovery. */
export const MAX_BODY_BYTES = 256 * 1024 * 1024;

export interface RecordHeader {
  /** Position of the record's first byte (its length prefix) in the buffer. */
  readonly position: number;
  /** Total bytes of the record including the frame. */
  readonly size: number;
  readonly offset: number;
  readonly timestamp: number;
  readonly ingestTime: number;
  readonly commitSeq: number;
  readonly keyStart: number;
  readonly keyEnd: number;
  readonly valueEnd: number;
}

/** Why a record could not be decoded at a position. */
export type DecodeFailure = "incomplete" | "bad_length" | "bad_crc" | "bad_magic";

export function encodedSize(keyBytes: number, valueBytes: number): number {
  return RECORD_OVERHEAD + keyBytes + valueBytes;
}

/** Writes one record at `pos` (the buffer must have room); returns the position after it. */
export function writeRecord(
  buf: Buffer,
  pos: number,
  offset: number,
  timestamp: number,
  ingestTime: number,
  commitSeq: number,
  key: string,
  keyBytes: number,
  value: Uint8Array,
): number {
  const bodyStart = pos + FRAME_BYTES;
  const bodyLength = BODY_HEADER_BYTES + keyBytes + value.length;
  buf.writeUInt32LE(bodyLength, pos);
  buf[bodyStart] = RECORD_MAGIC;
  buf[bodyStart + 1] = 0;
  buf.writeUInt16LE(keyBytes, bodyStart + 2);
  buf.writeDoubleLE(offset, bodyStart + 4);
  buf.writeDoubleLE(timestamp, bodyStart + 12);
  buf.writeDoubleLE(ingestTime, bodyStart + 20);
  buf.writeDoubleLE(commitSeq, bodyStart + 28);
  const keyStart = bodyStart + BODY_HEADER_BYTES;
  if (keyBytes > 0) buf.write(key, keyStart, keyBytes, "utf8");
  buf.set(value, keyStart + keyBytes);
  const end = bodyStart + bodyLength;
  buf.writeUInt32LE(crc32(buf.subarray(bodyStart, end)), pos + 4);
  return end;
}

/**
 * Decodes the record at `pos` if a whole, valid one lies before `end`; otherwise returns why not.
 * `verify` skips the CRC for callers that have already checked this range.
 */
export function decodeRecord(buf: Buffer, pos: number, end: number, verify = true): RecordHeader | DecodeFailure {
  if (end - pos < FRAME_BYTES) return "incomplete";
  const bodyLength = buf.readUInt32LE(pos);
  if (bodyLength < BODY_HEADER_BYTES || bodyLength > MAX_BODY_BYTES) return "bad_length";
  const bodyStart = pos + FRAME_BYTES;
  const bodyEnd = bodyStart + bodyLength;
  if (bodyEnd > end) return "incomplete";
  // Cheap structural checks first: recovery probes every byte position after damage.
  if (buf[bodyStart] !== RECORD_MAGIC) return "bad_magic";
  const keyBytes = buf.readUInt16LE(bodyStart + 2);
  const keyStart = bodyStart + BODY_HEADER_BYTES;
  if (keyStart + keyBytes > bodyEnd) return "bad_length";
  if (verify && crc32(buf.subarray(bodyStart, bodyEnd)) !== buf.readUInt32LE(pos + 4)) return "bad_crc";
  return {
    position: pos,
    size: FRAME_BYTES + bodyLength,
    offset: buf.readDoubleLE(bodyStart + 4),
    timestamp: buf.readDoubleLE(bodyStart + 12),
    ingestTime: buf.readDoubleLE(bodyStart + 20),
    commitSeq: buf.readDoubleLE(bodyStart + 28),
    keyStart,
    keyEnd: keyStart + keyBytes,
    valueEnd: bodyEnd,
  };
}
