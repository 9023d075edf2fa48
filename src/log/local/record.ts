/**
 * What both on-disk formats share, and the reader of the first one. Every unit in a segment file
 * is framed the same way, so recovery can find the last whole unit without any other file:
 *
 *   u32 bodyLength | u32 crc32(body) | body,  body = u8 magic | u8 attributes | …
 *
 * Magic 2 (batch.ts) is what the log writes: one frame per group commit per partition holding
 * many records. Magic 1, below, is the per-record format written before batches existed; the
 * log still reads, recovers and retains it, and a segment may hold both (batches appended after
 * old records). Little-endian:
 *
 *   body (magic 1) = u8 magic | u8 attributes | u16 keyLength | f64 offset | f64 timestamp
 *        | f64 ingestTime | f64 commitSeq | key (UTF-8) | [headers] | value
 *   headers (only when attributes bit 0 is set) = u32 blockLength | u16 count
 *        | count × (u16 nameLength | name (UTF-8) | u16 valueLength | value (UTF-8))
 *
 * Attributes: bit 0 headers present (magic 1 only), bit 1 self-committing append, bit 2 last
 * unit of one (see ATTR_SELF_COMMIT). Offsets, times and sequence numbers are integers below
 * 2^53, so f64 holds them exactly and is cheaper to read and write than BigInt. `commitSeq` is
 * the stream-wide group-commit sequence the unit was written under; recovery drops tail units
 * whose sequence never reached the commit file (see commit-file.ts).
 */
import { RunnelError } from "../../core/errors.js";
import { crc32Range } from "./crc32.js";

export const RECORD_MAGIC = 1;
/** Length prefix and CRC. */
export const FRAME_BYTES = 8;
/** Fixed part of a magic-1 body before the key. */
export const BODY_HEADER_BYTES = 36;
export const MAX_KEY_BYTES = 0xffff;
/** Header names and values are small metadata: each is bounded like a key. */
export const MAX_HEADER_PART_BYTES = 0xffff;
export const MAX_HEADERS = 0xffff;
/** Sanity bound used to tell a garbage length prefix from a real one during recovery. */
export const MAX_BODY_BYTES = 256 * 1024 * 1024;

export const ATTR_HEADERS = 1;
/**
 * The unit belongs to an append (magic 1) or a group (magic 2) that lies wholly in this
 * partition: it is atomic by itself, so it is durable once this partition's fdatasync returns and
 * needs no commit file. Recovery keeps such units only when the last one (ATTR_APPEND_END) is
 * there too.
 */
export const ATTR_SELF_COMMIT = 2;
export const ATTR_APPEND_END = 4;
export const COMMIT_ATTRIBUTES = ATTR_SELF_COMMIT | ATTR_APPEND_END;
const KNOWN_ATTRIBUTES = ATTR_HEADERS | COMMIT_ATTRIBUTES;

export interface RecordHeader {
  /** Position of the record's first byte (its length prefix) in the buffer. */
  readonly position: number;
  /** Total bytes of the record including the frame. */
  readonly size: number;
  readonly offset: number;
  readonly timestamp: number;
  readonly ingestTime: number;
  readonly commitSeq: number;
  /** ATTR_SELF_COMMIT and ATTR_APPEND_END bits (header presence shows in valueStart). */
  readonly attributes: number;
  readonly keyStart: number;
  readonly keyEnd: number;
  /** The header block lies between keyEnd and valueStart (empty when the record has none). */
  readonly valueStart: number;
  readonly valueEnd: number;
}

/** Why a unit could not be decoded at a position. */
export type DecodeFailure = "incomplete" | "bad_length" | "bad_crc" | "bad_magic";

export type Headers = Readonly<Record<string, string>>;

/**
 * Decodes the magic-1 record at `pos` (its frame already checked by the caller: `bodyLength` is
 * in range and the body lies before `end`); otherwise returns why not. `verify` skips the CRC for
 * callers that have already checked this range.
 */
export function decodeRecord(
  buf: Buffer,
  pos: number,
  bodyLength: number,
  verify: boolean,
): RecordHeader | DecodeFailure {
  if (bodyLength < BODY_HEADER_BYTES) return "bad_length";
  const bodyStart = pos + FRAME_BYTES;
  const bodyEnd = bodyStart + bodyLength;
  const attributes = buf[bodyStart + 1]!;
  if ((attributes & ~KNOWN_ATTRIBUTES) !== 0) return "bad_magic";
  const keyBytes = buf.readUInt16LE(bodyStart + 2);
  const keyStart = bodyStart + BODY_HEADER_BYTES;
  const keyEnd = keyStart + keyBytes;
  if (keyEnd > bodyEnd) return "bad_length";
  let valueStart = keyEnd;
  if ((attributes & ATTR_HEADERS) !== 0) {
    if (keyEnd + 6 > bodyEnd) return "bad_length";
    valueStart = keyEnd + 4 + buf.readUInt32LE(keyEnd);
    if (valueStart > bodyEnd) return "bad_length";
  }
  if (verify && crc32Range(buf, bodyStart, bodyEnd) !== buf.readUInt32LE(pos + 4)) return "bad_crc";
  return {
    position: pos,
    size: FRAME_BYTES + bodyLength,
    offset: buf.readDoubleLE(bodyStart + 4),
    timestamp: buf.readDoubleLE(bodyStart + 12),
    ingestTime: buf.readDoubleLE(bodyStart + 20),
    commitSeq: buf.readDoubleLE(bodyStart + 28),
    attributes: attributes & COMMIT_ATTRIBUTES,
    keyStart,
    keyEnd,
    valueStart,
    valueEnd: bodyEnd,
  };
}

/**
 * The headers in `[start, end)` (u16 count, then the entries; the same in both formats).
 * `offset` names the record in the error a malformed block raises.
 */
export function decodeHeaderEntries(buf: Buffer, start: number, end: number, offset: number): Headers {
  let at = start;
  const count = at + 2 <= end ? buf.readUInt16LE(at) : -1;
  at += 2;
  // Entries, then fromEntries: a header named "__proto__" must stay an own property.
  const entries: [string, string][] = [];
  for (let i = 0; i < count; i++) {
    if (at + 2 > end) break;
    const n = buf.readUInt16LE(at);
    const name = buf.toString("utf8", at + 2, at + 2 + n);
    at += 2 + n;
    if (at + 2 > end) break;
    const v = buf.readUInt16LE(at);
    if (at + 2 + v > end) break;
    entries.push([name, buf.toString("utf8", at + 2, at + 2 + v)]);
    at += 2 + v;
  }
  if (at !== end || entries.length !== count) {
    // The CRC matched, so this is a writer bug or a crafted file, never a torn write.
    throw new RunnelError("storage_corrupt", `record at offset ${offset} has a malformed header block`, {
      details: { offset },
    });
  }
  return Object.fromEntries(entries);
}
