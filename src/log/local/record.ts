/**
 * The on-disk record format. Little-endian; every record is self-delimiting and self-checking so
 * recovery can find the last whole record without any other file:
 *
 *   u32 bodyLength | u32 crc32(body) | body
 *   body = u8 magic | u8 attributes | u16 keyLength | f64 offset | f64 timestamp
 *        | f64 ingestTime | f64 commitSeq | key (UTF-8) | [headers] | value
 *   headers (only when attributes bit 0 is set) = u32 blockLength | u16 count
 *        | count × (u16 nameLength | name (UTF-8) | u16 valueLength | value (UTF-8))
 *
 * Attributes: bit 0 headers present, bit 1 self-committing append, bit 2 last record of one (see
 * ATTR_SELF_COMMIT). A record without headers has no header bytes, so headers cost nothing when
 * absent (and files written before headers existed read unchanged). `blockLength` counts the bytes
 * after itself, so readers that want only the value skip the block without parsing it.
 *
 * Offsets, times and sequence numbers are integers below 2^53, so f64 holds them exactly and is
 * cheaper to read and write than BigInt. `commitSeq` is the stream-wide group-commit sequence the
 * record was written under; recovery drops tail records whose sequence never reached the commit
 * file (see commit-file.ts).
 */
import { RunnelError } from "../../core/errors.js";
import { crc32Range } from "./crc32.js";

export const RECORD_MAGIC = 1;
/** Length prefix and CRC. */
export const FRAME_BYTES = 8;
/** Fixed part of the body before the key. */
export const BODY_HEADER_BYTES = 36;
export const RECORD_OVERHEAD = FRAME_BYTES + BODY_HEADER_BYTES;
export const MAX_KEY_BYTES = 0xffff;
/** Header names and values are small metadata: each is bounded like a key. */
export const MAX_HEADER_PART_BYTES = 0xffff;
export const MAX_HEADERS = 0xffff;
/** Sanity bound used to tell a garbage length prefix from a real one during recovery. */
export const MAX_BODY_BYTES = 256 * 1024 * 1024;

const ATTR_HEADERS = 1;
/**
 * The record belongs to an append that lies wholly in this partition: such an append is atomic
 * by itself, so it is durable once this partition's fdatasync returns and needs no commit file.
 * Recovery keeps its records only when the append's last record (ATTR_APPEND_END) is there too.
 */
export const ATTR_SELF_COMMIT = 2;
export const ATTR_APPEND_END = 4;
const KNOWN_ATTRIBUTES = ATTR_HEADERS | ATTR_SELF_COMMIT | ATTR_APPEND_END;

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

/** Why a record could not be decoded at a position. */
export type DecodeFailure = "incomplete" | "bad_length" | "bad_crc" | "bad_magic";

export type Headers = Readonly<Record<string, string>>;

/** Bytes of the header block for `headers`, or 0 when there are none (the record stores no block). */
export function headerBlockBytes(headers: Headers | undefined): number {
  if (headers === undefined) return 0;
  let bytes = 6;
  let count = 0;
  for (const name of Object.keys(headers)) {
    bytes += 4 + Buffer.byteLength(name, "utf8") + Buffer.byteLength(headers[name]!, "utf8");
    count++;
  }
  return count === 0 ? 0 : bytes;
}

export function encodedSize(keyBytes: number, valueBytes: number, headerBytes = 0): number {
  return RECORD_OVERHEAD + keyBytes + headerBytes + valueBytes;
}

/**
 * Writes one record at `pos` (the buffer must have room, `headerBytes` from headerBlockBytes);
 * returns the position after it. `asciiKey` says the key is 7-bit, so its bytes are its char codes.
 */
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
  headers?: Headers,
  headerBytes = 0,
  asciiKey = false,
  commitFlags = 0,
): number {
  const bodyStart = pos + FRAME_BYTES;
  const bodyLength = BODY_HEADER_BYTES + keyBytes + headerBytes + value.length;
  writeU32(buf, pos, bodyLength);
  buf[bodyStart] = RECORD_MAGIC;
  buf[bodyStart + 1] = (headerBytes > 0 ? ATTR_HEADERS : 0) | commitFlags;
  buf[bodyStart + 2] = keyBytes & 0xff;
  buf[bodyStart + 3] = keyBytes >>> 8;
  if (LITTLE_ENDIAN) {
    F64[0] = offset;
    F64[1] = timestamp;
    F64[2] = ingestTime;
    F64[3] = commitSeq;
    const f = F64_BYTES;
    for (let k = 0; k < 32; k++) buf[bodyStart + 4 + k] = f[k]!;
  } else {
    buf.writeDoubleLE(offset, bodyStart + 4);
    buf.writeDoubleLE(timestamp, bodyStart + 12);
    buf.writeDoubleLE(ingestTime, bodyStart + 20);
    buf.writeDoubleLE(commitSeq, bodyStart + 28);
  }
  let at = bodyStart + BODY_HEADER_BYTES;
  if (keyBytes > 0) {
    // Short ASCII keys (user ids) copy faster by hand than through a native string write.
    if (asciiKey && keyBytes <= 32) for (let i = 0; i < keyBytes; i++) buf[at + i] = key.charCodeAt(i);
    else buf.write(key, at, keyBytes, asciiKey ? "latin1" : "utf8");
    at += keyBytes;
  }
  if (headerBytes > 0 && headers !== undefined) at = writeHeaderBlock(buf, at, headers, headerBytes);
  buf.set(value, at);
  const end = bodyStart + bodyLength;
  writeU32(buf, pos + 4, crc32Range(buf, bodyStart, end));
  return end;
}

/*
 * The four f64 fields go through one typed-array scratch and a byte loop: Buffer#writeDoubleLE
 * bounds-checks and converts each value separately, which showed as a tenth of the encode cost.
 * The scratch holds the platform's byte order, so big-endian platforms take writeDoubleLE.
 */
const F64 = new Float64Array(4);
const F64_BYTES = new Uint8Array(F64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function writeU32(buf: Buffer, at: number, v: number): void {
  buf[at] = v & 0xff;
  buf[at + 1] = (v >>> 8) & 0xff;
  buf[at + 2] = (v >>> 16) & 0xff;
  buf[at + 3] = v >>> 24;
}

function writeHeaderBlock(buf: Buffer, at: number, headers: Headers, headerBytes: number): number {
  buf.writeUInt32LE(headerBytes - 4, at);
  const countAt = at + 4;
  at += 6;
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
    attributes,
    keyStart,
    keyEnd,
    valueStart,
    valueEnd: bodyEnd,
  };
}

/** The headers of a decoded record, or undefined when it has none. */
export function decodeHeaders(buf: Buffer, h: RecordHeader): Headers | undefined {
  if (h.valueStart === h.keyEnd) return undefined;
  const end = h.valueStart;
  let at = h.keyEnd + 4;
  const count = buf.readUInt16LE(at);
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
    throw new RunnelError("storage_corrupt", `record at offset ${h.offset} has a malformed header block`, {
      details: { offset: h.offset },
    });
  }
  return Object.fromEntries(entries);
}
