/**
 * Rule checkpoints as files in the data directory, the format before the checkpoint store (issue
 * 16): read once, imported into the store on a rule's first start, then removed.
 *
 * The format: positions and operator state of every partition in one JSON base
 * (`<dir>/<rule id>.json`, naming its generation) plus the deltas captured after it, appended to
 * `<rule id>.json.<generation>.delta` as frames (length, CRC-32, JSON). A torn or corrupt last
 * frame (a crash mid-append) ends the chain: the checkpoint is the last whole one. Deltas of
 * another generation belong to an older base and are never applied.
 */
import { readdir, readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { crc32 } from "node:zlib";
import { removeFilesDurable, staleTempsOf } from "../core/durable-file.js";
import type { CheckpointStore } from "../runtime/checkpoint/store.js";
import { ruleTask, writeImported } from "./checkpoint.js";
import type { OperatorDelta, OperatorSnapshot } from "./operator.js";

export interface LegacyRuleCheckpoint {
  readonly version: 1;
  /** Which delta file continues this base (absent in checkpoints written before deltas: 0). */
  readonly generation?: number;
  /** Absent in checkpoints written before rules could change (the only definition there was). */
  readonly revision?: string;
  readonly stream?: string;
  /** Next offset to read, per partition. */
  readonly positions: number[];
  readonly operators: OperatorSnapshot[];
}

export interface LegacyRuleCheckpointDelta {
  readonly positions: number[];
  readonly operators: OperatorDelta[];
}

export interface LegacyStoredCheckpoint {
  readonly base: LegacyRuleCheckpoint;
  readonly generation: number;
  /** In the order they were written; apply each on top of the base. */
  readonly deltas: LegacyRuleCheckpointDelta[];
  readonly baseBytes: number;
  readonly deltaBytes: number;
}

/** Bytes before a frame's body: its length and CRC-32, both big-endian. */
export const FRAME_HEADER = 8;

export function legacyCheckpointPath(dir: string, ruleId: string): string {
  return join(dir, `${ruleId}.json`);
}

export function deltaPath(path: string, generation: number): string {
  return `${path}.${generation}.delta`;
}

export async function readCheckpoint(path: string): Promise<LegacyStoredCheckpoint | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const base = JSON.parse(text) as LegacyRuleCheckpoint;
  const generation = base.generation ?? 0;
  const frames = await readFrames(deltaPath(path, generation));
  return {
    base,
    generation,
    deltas: frames.map((f) => JSON.parse(f.toString("utf8")) as LegacyRuleCheckpointDelta),
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

/** Removes the base, its delta files of every generation and temp files a killed write left, durably. */
export async function removeCheckpoint(path: string): Promise<void> {
  await removeFilesDurable([path]);
  await removeLeftovers(path, () => true);
}

/** Removes the delta files of the generations `which` picks, and temp files of killed base writes. */
export async function removeLeftovers(path: string, which: (generation: number) => boolean): Promise<void> {
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  const doomed = staleTempsOf(path, names);
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(".delta")) continue;
    const generation = Number(name.slice(prefix.length, -".delta".length));
    if (Number.isInteger(generation) && which(generation)) doomed.push(join(dirname(path), name));
  }
  await removeFilesDurable(doomed);
}

export interface LegacyImport {
  readonly store: CheckpointStore;
  readonly ruleId: string;
  readonly path: string;
  readonly owner: string;
  /** What a checkpoint written before rules could change belongs to: the rule as it is. */
  readonly revision: string;
  readonly stream: string;
}

/**
 * Moves a rule's file checkpoint into the store, one task per partition in the task driver's
 * format (src/cep/checkpoint.ts), then removes the files.
 * Only when the store holds nothing of the rule yet: a crash after the import but before the
 * removal leaves files the store has already taken (and may have moved past), so they are only
 * removed. Returns whether anything was imported.
 */
export async function importLegacyCheckpoint(options: LegacyImport): Promise<boolean> {
  const { store, ruleId, path, owner } = options;
  const cp = await readCheckpoint(path);
  if (cp === undefined) return false;
  const { base } = cp;
  const tasks = base.positions.map((_, p) => ruleTask(ruleId, p));
  const held = await Promise.all(tasks.map((t) => store.read(t)));
  const importing = held.every((h) => h === undefined);
  if (importing) {
    const head = {
      revision: base.revision ?? options.revision,
      stream: base.stream ?? options.stream,
      partitions: base.positions.length,
    };
    await Promise.all(
      tasks.map((task, p) =>
        writeImported(store, task, owner, {
          head,
          partition: p,
          position: base.positions[p] as number,
          operator: base.operators[p] as OperatorSnapshot,
          deltas: cp.deltas.map((d) => ({
            position: d.positions[p] as number,
            operator: d.operators[p] as OperatorDelta,
          })),
        }),
      ),
    );
  }
  await removeCheckpoint(path);
  return importing;
}
