/**
 * A rule's checkpoint: input positions and operator state per partition, as a full snapshot
 * (the base, replaced atomically and durably by writeFileDurable) plus the deltas captured after
 * it, appended to a file of frames (length, CRC-32, JSON), each fsynced (and the directory, when
 * the append creates the file). A full state is rewritten only once its deltas outgrow it, so a
 * checkpoint costs what changed, not what is held.
 *
 * The base names its generation and the deltas live in a file named by it, so a crash between
 * writing a new base and deleting the old deltas can never apply those to the new base. A torn
 * or corrupt last frame (a crash mid-append) ends the chain: the checkpoint is the last whole one.
 *
 * Alerts carry ids derived from the match, so resuming from any checkpoint replays matches that
 * collide with the stored ones instead of duplicating them.
 */
import { mkdir, readdir, readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { crc32 } from "node:zlib";
import { appendFileDurable, removeFilesDurable, staleTempsOf, writeFileDurable } from "../core/durable-file.js";
import type { OperatorDelta, OperatorSnapshot } from "./operator.js";

export interface RuleCheckpoint {
  readonly version: 1;
  /** Which delta file continues this base (absent in checkpoints written before deltas: 0). */
  readonly generation?: number;
  /**
   * The rule definition the state belongs to (RuleRunnerOptions.revision) and its stream; absent
   * in checkpoints written before rules could change, which belong to the only definition there was.
   */
  readonly revision?: string;
  readonly stream?: string;
  /** Next offset to read, per partition. */
  readonly positions: number[];
  readonly operators: OperatorSnapshot[];
}

export interface RuleCheckpointDelta {
  readonly positions: number[];
  readonly operators: OperatorDelta[];
}

export interface StoredCheckpoint {
  readonly base: RuleCheckpoint;
  readonly generation: number;
  /** In the order they were written; apply each on top of the base. */
  readonly deltas: RuleCheckpointDelta[];
  /** Bytes of the base and of the deltas, for deciding when to write a new base. */
  readonly baseBytes: number;
  readonly deltaBytes: number;
}

const FRAME_HEADER = 8;

/** Bytes handed to one write: big enough to be cheap, small enough that encoding it is a short task. */
const WRITE_CHUNK = 1 << 18;

export function deltaPath(path: string, generation: number): string {
  return `${path}.${generation}.delta`;
}

export async function readCheckpoint(path: string): Promise<StoredCheckpoint | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const base = JSON.parse(text) as RuleCheckpoint;
  const generation = base.generation ?? 0;
  const frames = await readFrames(deltaPath(path, generation));
  return {
    base,
    generation,
    deltas: frames.map((f) => JSON.parse(f.toString("utf8")) as RuleCheckpointDelta),
    baseBytes: Buffer.byteLength(text),
    deltaBytes: frames.reduce((n, f) => n + FRAME_HEADER + f.length, 0),
  };
}

/** The whole frames of a delta file, up to the first torn or corrupt one. */
async function readFrames(file: string): Promise<Buffer[]> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  const frames: Buffer[] = [];
  let pos = 0;
  while (pos + FRAME_HEADER <= data.length) {
    const length = data.readUInt32BE(pos);
    const end = pos + FRAME_HEADER + length;
    if (end > data.length) break;
    const body = data.subarray(pos + FRAME_HEADER, end);
    if (crc32(body) !== data.readUInt32BE(pos + 4)) break;
    frames.push(body);
    pos = end;
  }
  return frames;
}

/**
 * Writes a full checkpoint given as JSON text in pieces (a RuleCheckpoint naming `generation`),
 * a chunk at a time, so a large state never becomes one string or one long synchronous task; then
 * deletes the deltas of earlier generations. Returns the bytes written.
 */
export async function writeCheckpoint(path: string, generation: number, pieces: Iterable<string>): Promise<number> {
  await mkdir(dirname(path), { recursive: true });
  const bytes = await writeFileDurable(path, chunks(pieces));
  await removeLeftovers(path, (g) => g !== generation);
  return bytes;
}

/** Appends one delta (JSON text in pieces, a RuleCheckpointDelta) as a frame and fsyncs it. Returns the bytes appended. */
export async function appendDelta(path: string, generation: number, pieces: Iterable<string>): Promise<number> {
  const header = Buffer.alloc(FRAME_HEADER);
  const parts: Buffer[] = [header];
  let length = 0;
  let crc = 0;
  for (const chunk of chunks(pieces)) {
    parts.push(chunk);
    length += chunk.length;
    crc = crc32(chunk, crc);
  }
  header.writeUInt32BE(length, 0);
  header.writeUInt32BE(crc, 4);
  // One buffer, so the frame goes down in one append.
  await appendFileDurable(deltaPath(path, generation), Buffer.concat(parts, FRAME_HEADER + length));
  return FRAME_HEADER + length;
}

export async function removeCheckpoint(path: string): Promise<void> {
  await removeFilesDurable([path]);
  await removeLeftovers(path, () => true);
}

/** Removes the delta files of the generations `which` picks, and temp files of killed base writes. */
async function removeLeftovers(path: string, which: (generation: number) => boolean): Promise<void> {
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  // A base a crash interrupted left its temp file: as large as the state, so never left to pile up.
  const doomed = staleTempsOf(path, names);
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(".delta")) continue;
    const generation = Number(name.slice(prefix.length, -".delta".length));
    if (Number.isInteger(generation) && which(generation)) doomed.push(join(dirname(path), name));
  }
  await removeFilesDurable(doomed);
}

/** Pieces of text as UTF-8 buffers of about WRITE_CHUNK bytes. */
function* chunks(pieces: Iterable<string>): Generator<Buffer> {
  let chunk: string[] = [];
  let size = 0;
  for (const piece of pieces) {
    chunk.push(piece);
    size += piece.length;
    if (size >= WRITE_CHUNK) {
      yield Buffer.from(chunk.join(""));
      chunk = [];
      size = 0;
    }
  }
  if (size > 0) yield Buffer.from(chunk.join(""));
}
