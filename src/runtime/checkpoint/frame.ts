/**
 * The framing of every local checkpoint file: a header with a magic, the payload's length and its
 * CRC-32, then the payload. A file cut short or with a flipped bit fails `unframe`, so a torn or
 * damaged file is recognised instead of being read as state.
 *
 * Header (20 bytes, little-endian): "RNCK", format 1, reserved (3 bytes), length (u64), crc32 (u32).
 */
import { crc32 } from "node:zlib";

const MAGIC = 0x4b434e52; // "RNCK" read as a little-endian u32
const FORMAT = 1;
export const FRAME_HEADER_BYTES = 20;

/** The header to write before `payload` (the payload is not copied: write both, header first). */
export function frameHeader(payload: Uint8Array): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt8(FORMAT, 4);
  header.writeBigUInt64LE(BigInt(payload.byteLength), 8);
  header.writeUInt32LE(crc32(payload), 16);
  return header;
}

/** The payload of a whole frame, or a reason it is not whole. */
export function unframe(file: Buffer): { payload: Uint8Array } | { damage: string } {
  if (file.byteLength < FRAME_HEADER_BYTES) return { damage: `${file.byteLength} bytes, shorter than a header` };
  if (file.readUInt32LE(0) !== MAGIC) return { damage: "no frame magic" };
  if (file.readUInt8(4) !== FORMAT) return { damage: `unknown format ${file.readUInt8(4)}` };
  const length = file.readBigUInt64LE(8);
  if (length !== BigInt(file.byteLength - FRAME_HEADER_BYTES)) {
    return { damage: `length ${length} in the header, ${file.byteLength - FRAME_HEADER_BYTES} bytes after it` };
  }
  const payload = new Uint8Array(file.buffer, file.byteOffset + FRAME_HEADER_BYTES, Number(length));
  if (crc32(payload) !== file.readUInt32LE(16)) return { damage: "CRC-32 mismatch" };
  return { payload };
}
