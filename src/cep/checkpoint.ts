/**
 * A rule's checkpoint: input positions and operator snapshots per partition, written atomically
 * (temporary file, fsync, rename). Alerts carry ids derived from the match, so resuming from any
 * checkpoint replays matches that collide with the stored ones instead of duplicating them.
 */
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import type { OperatorSnapshot } from "./operator.js";

export interface RuleCheckpoint {
  readonly version: 1;
  /** Next offset to read, per partition. */
  readonly positions: number[];
  readonly operators: OperatorSnapshot[];
}

export async function readCheckpoint(path: string): Promise<RuleCheckpoint | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as RuleCheckpoint;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Bytes handed to one write: big enough to be cheap, small enough that encoding it is a short task. */
const WRITE_CHUNK = 1 << 18;

/**
 * Writes a checkpoint given as JSON text in pieces (a RuleCheckpoint), a chunk at a time, so a
 * large state never becomes one string or one long synchronous task.
 */
export async function writeCheckpoint(path: string, pieces: Iterable<string>): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, "w");
  try {
    let chunk: string[] = [];
    let size = 0;
    for (const piece of pieces) {
      chunk.push(piece);
      size += piece.length;
      if (size >= WRITE_CHUNK) {
        await fh.writeFile(chunk.join(""));
        chunk = [];
        size = 0;
      }
    }
    if (size > 0) await fh.writeFile(chunk.join(""));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

export async function removeCheckpoint(path: string): Promise<void> {
  await rm(path, { force: true });
}
