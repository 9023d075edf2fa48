/**
 * The per-stream commit file: the highest group-commit sequence whose records are durable in every
 * partition. It is the single point that makes a multi-partition batch atomic: partition files are
 * fdatasync'ed first, then this file; recovery truncates partition tails written under a higher
 * sequence.
 *
 * Two fixed 16-byte slots written alternately (u32 magic | u32 crc32 of the next 8 bytes | f64
 * seq). A torn write can only damage the slot being written, whose previous value is older than
 * the other slot's, so the larger valid slot is always the last acknowledged commit. The file
 * never grows.
 */
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { crc32 } from "node:zlib";
import { RunnelError } from "../../core/errors.js";

const SLOT_BYTES = 16;
const MAGIC = 0x52434d54; // "RCMT"

function encodeSlot(seq: number): Buffer {
  const buf = Buffer.alloc(SLOT_BYTES);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeDoubleLE(seq, 8);
  buf.writeUInt32LE(crc32(buf.subarray(8, 16)), 4);
  return buf;
}

function decodeSlot(buf: Buffer, at: number): number | undefined {
  if (buf.length < at + SLOT_BYTES) return undefined;
  if (buf.readUInt32LE(at) !== MAGIC) return undefined;
  if (crc32(buf.subarray(at + 8, at + 16)) !== buf.readUInt32LE(at + 4)) return undefined;
  return buf.readDoubleLE(at + 8);
}

export class CommitFile {
  private nextSlot: number;

  private constructor(
    private readonly handle: FileHandle,
    private seq: number,
    lastSlot: number,
  ) {
    this.nextSlot = 1 - lastSlot;
  }

  /** Creates a fresh commit file at sequence 0 (durable before it returns). */
  static async create(path: string): Promise<CommitFile> {
    const handle = await open(path, "wx+");
    await handle.write(encodeSlot(0), 0, SLOT_BYTES, 0);
    await handle.sync();
    return new CommitFile(handle, 0, 0);
  }

  static async open(path: string): Promise<CommitFile> {
    const handle = await open(path, "r+");
    try {
      const buf = Buffer.alloc(SLOT_BYTES * 2);
      const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
      const a = decodeSlot(buf.subarray(0, bytesRead), 0);
      const b = decodeSlot(buf.subarray(0, bytesRead), SLOT_BYTES);
      if (a === undefined && b === undefined) {
        throw new RunnelError("storage_corrupt", `commit file ${path} has no valid slot`);
      }
      const useB = b !== undefined && (a === undefined || b > a);
      return new CommitFile(handle, useB ? b : (a as number), useB ? 1 : 0);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  get committedSeq(): number {
    return this.seq;
  }

  /** Records `seq` as committed and makes it durable. */
  async commit(seq: number): Promise<void> {
    const slot = this.nextSlot;
    await this.handle.write(encodeSlot(seq), 0, SLOT_BYTES, slot * SLOT_BYTES);
    await this.handle.datasync();
    this.nextSlot = 1 - slot;
    this.seq = seq;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
