/**
 * Writes rule checkpoints in the file format of before the checkpoint store (src/cep/legacy-checkpoint.ts
 * reads and imports it), as the runner of that time wrote them: a base replaced by rename (deleting
 * the deltas of other generations after it), deltas appended as fsynced frames (length, CRC-32, JSON).
 */
import { mkdir, open, rename } from "node:fs/promises";
import { dirname } from "node:path";
import { crc32 } from "node:zlib";
import { deltaPath, FRAME_HEADER, removeLeftovers } from "../../src/cep/legacy-checkpoint.js";

/** Writes a base given as JSON text in pieces (naming `generation`); returns the bytes written. */
export async function writeCheckpoint(path: string, generation: number, pieces: Iterable<string>): Promise<number> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  const data = Buffer.from([...pieces].join(""));
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await removeLeftovers(path, (g) => g !== generation);
  return data.length;
}

/** Appends one delta (JSON text in pieces) as a frame; returns the bytes appended. */
export async function appendDelta(path: string, generation: number, pieces: Iterable<string>): Promise<number> {
  const body = Buffer.from([...pieces].join(""));
  const header = Buffer.alloc(FRAME_HEADER);
  header.writeUInt32BE(body.length, 0);
  header.writeUInt32BE(crc32(body), 4);
  const fh = await open(deltaPath(path, generation), "a");
  try {
    await fh.writeFile(Buffer.concat([header, body]));
    await fh.sync();
  } finally {
    await fh.close();
  }
  return FRAME_HEADER + body.length;
}
