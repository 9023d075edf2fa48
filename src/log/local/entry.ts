/**
 * Reading a segment file, whatever wrote it: each framed unit (an entry) is either a magic-1
 * record (record.ts) or a magic-2 batch (batch.ts). Scans, recovery and indexes work entry by
 * entry; RecordCursor walks the records inside one.
 */
import { RunnelError } from "../../core/errors.js";
import { BATCH_BODY_HEADER_BYTES, BATCH_MAGIC, unzigzag } from "./batch.js";
import { crc32Range } from "./crc32.js";
import type { DecodeFailure, Headers, RecordHeader } from "./record.js";
import {
  BODY_HEADER_BYTES,
  COMMIT_ATTRIBUTES,
  decodeHeaderEntries,
  decodeRecord,
  FRAME_BYTES,
  MAX_BODY_BYTES,
  RECORD_MAGIC,
} from "./record.js";

export interface Entry {
  /** Position of the entry's first byte (its length prefix) in the buffer. */
  readonly position: number;
  /** Total bytes including the frame. */
  readonly size: number;
  readonly baseOffset: number;
  /** Records in the entry: offsets baseOffset … baseOffset + count − 1. */
  readonly count: number;
  readonly maxTimestamp: number;
  readonly ingestTime: number;
  readonly commitSeq: number;
  /** ATTR_SELF_COMMIT and ATTR_APPEND_END bits. */
  readonly attributes: number;
  /** The record, when the entry is a magic-1 record; undefined for a batch. */
  readonly legacy: RecordHeader | undefined;
}

/**
 * Decodes the entry at `pos` if a whole, valid one lies before `end`; otherwise returns why not.
 * `verify` skips the CRC for callers that have already checked this range.
 */
export function decodeEntry(buf: Buffer, pos: number, end: number, verify = true): Entry | DecodeFailure {
  if (end - pos < FRAME_BYTES + 1) return "incomplete";
  const bodyLength = buf.readUInt32LE(pos);
  if (bodyLength < 2 || bodyLength > MAX_BODY_BYTES) return "bad_length";
  const body = pos + FRAME_BYTES;
  if (body + bodyLength > end) return "incomplete";
  // Cheap structural checks first: recovery probes every byte position after damage.
  const magic = buf[body];
  if (magic === BATCH_MAGIC) return decodeBatch(buf, pos, bodyLength, verify);
  if (magic !== RECORD_MAGIC) return "bad_magic";
  const h = decodeRecord(buf, pos, bodyLength, verify);
  if (typeof h === "string") return h;
  return {
    position: pos,
    size: h.size,
    baseOffset: h.offset,
    count: 1,
    maxTimestamp: h.timestamp,
    ingestTime: h.ingestTime,
    commitSeq: h.commitSeq,
    attributes: h.attributes,
    legacy: h,
  };
}

function decodeBatch(buf: Buffer, pos: number, bodyLength: number, verify: boolean): Entry | DecodeFailure {
  const body = pos + FRAME_BYTES;
  if (bodyLength < BATCH_BODY_HEADER_BYTES) return "bad_length";
  const attributes = buf[body + 1]!;
  if ((attributes & ~COMMIT_ATTRIBUTES) !== 0) return "bad_magic";
  const count = buf.readUInt32LE(body + 2);
  // Every record takes at least four bytes (timestamp, key, header and value lengths).
  if (count === 0 || count * 4 > bodyLength - BATCH_BODY_HEADER_BYTES) return "bad_length";
  if (verify && crc32Range(buf, body, body + bodyLength) !== buf.readUInt32LE(pos + 4)) return "bad_crc";
  return {
    position: pos,
    size: FRAME_BYTES + bodyLength,
    baseOffset: buf.readDoubleLE(body + 6),
    count,
    maxTimestamp: buf.readDoubleLE(body + 22),
    ingestTime: buf.readDoubleLE(body + 30),
    commitSeq: buf.readDoubleLE(body + 38),
    attributes,
    legacy: undefined,
  };
}

/**
 * The commit sequence an entry at `pos` claims, without checking its CRC (it failed): recovery
 * uses it to tell a torn write of the last group from damage to an earlier, committed one.
 * Undefined when the bytes there do not even look like an entry's fixed fields.
 */
export function claimedCommitSeq(buf: Buffer, pos: number, end: number): number | undefined {
  const body = pos + FRAME_BYTES;
  if (buf[body] === BATCH_MAGIC && end - body >= BATCH_BODY_HEADER_BYTES) return buf.readDoubleLE(body + 38);
  if (buf[body] === RECORD_MAGIC && end - body >= BODY_HEADER_BYTES) return buf.readDoubleLE(body + 28);
  return undefined;
}

const EMPTY = Buffer.alloc(0);

/**
 * The records of one entry, one at a time, as positions in the read buffer (nothing is copied
 * or decoded until asked for: a read that skips records to reach an offset in the middle of a
 * batch only steps over their lengths). Reused across entries.
 *
 * @example
 *   const cursor = new RecordCursor();
 *   cursor.start(buf, entry);
 *   while (cursor.next()) if (cursor.offset >= wanted) use(cursor.key(), cursor.value());
 */
export class RecordCursor {
  buf: Buffer = EMPTY;
  offset = 0;
  timestamp = 0;
  ingestTime = 0;
  keyStart = 0;
  keyEnd = 0;
  /** The header entries (after the block's length prefix); empty when the record has none. */
  headersStart = 0;
  headersEnd = 0;
  valueStart = 0;
  valueEnd = 0;
  private at = 0;
  private end = 0;
  private left = 0;
  private baseTimestamp = 0;
  /** The entry is one magic-1 record, already loaded by start(). */
  private legacy = false;

  start(buf: Buffer, entry: Entry): void {
    this.buf = buf;
    this.ingestTime = entry.ingestTime;
    this.left = entry.count;
    this.offset = entry.baseOffset - 1;
    this.end = entry.position + entry.size;
    const h = entry.legacy;
    this.legacy = h !== undefined;
    if (h === undefined) {
      const body = entry.position + FRAME_BYTES;
      this.baseTimestamp = buf.readDoubleLE(body + 14);
      this.at = body + BATCH_BODY_HEADER_BYTES;
      return;
    }
    // A magic-1 entry is its one record: next() only has to report it.
    this.timestamp = h.timestamp;
    this.keyStart = h.keyStart;
    this.keyEnd = h.keyEnd;
    this.headersStart = h.valueStart === h.keyEnd ? h.keyEnd : h.keyEnd + 4;
    this.headersEnd = h.valueStart;
    this.valueStart = h.valueStart;
    this.valueEnd = h.valueEnd;
  }

  /** Moves to the next record; false after the last. Throws storage_corrupt on a malformed batch. */
  next(): boolean {
    if (this.left === 0) return false;
    this.left--;
    this.offset++;
    if (this.legacy) return true;
    if (this.at >= this.end) throw this.malformed();
    const t = this.varint();
    if (t === 0) {
      if (this.at + 8 > this.end) throw this.malformed();
      this.timestamp = this.buf.readDoubleLE(this.at);
      this.at += 8;
    } else this.timestamp = this.baseTimestamp + unzigzag(t - 1);
    const keyBytes = this.varint();
    this.keyStart = this.at;
    this.keyEnd = this.at += keyBytes;
    const headerBytes = this.varint();
    this.headersStart = this.at;
    this.headersEnd = this.at += headerBytes;
    const valueBytes = this.varint();
    this.valueStart = this.at;
    this.valueEnd = this.at += valueBytes;
    if (this.at > this.end || (this.left === 0 && this.at !== this.end)) throw this.malformed();
    return true;
  }

  key(): string {
    return this.buf.toString("utf8", this.keyStart, this.keyEnd);
  }

  /** A view into the read buffer, not a copy. */
  value(): Buffer {
    return this.buf.subarray(this.valueStart, this.valueEnd);
  }

  headers(): Headers | undefined {
    if (this.headersStart === this.headersEnd) return undefined;
    return decodeHeaderEntries(this.buf, this.headersStart, this.headersEnd, this.offset);
  }

  /** The varint at the cursor's position, which moves past it. */
  private varint(): number {
    const buf = this.buf;
    let at = this.at;
    let b = buf[at++]!;
    if (b < 0x80) {
      this.at = at;
      return b;
    }
    let v = b & 0x7f;
    let scale = 0x80;
    for (;;) {
      if (at >= this.end || scale > 2 ** 28) throw this.malformed();
      b = buf[at++]!;
      v += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
    }
    this.at = at;
    return v;
  }

  private malformed(): RunnelError {
    // The CRC matched, so this is a writer bug or a crafted file, never a torn write.
    return new RunnelError("storage_corrupt", `batch holding offset ${this.offset} is malformed`, {
      details: { offset: this.offset },
    });
  }
}
