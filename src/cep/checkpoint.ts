/**
 * A rule's checkpoints in the runtime's checkpoint store (src/runtime/checkpoint/store.ts): one
 * task per partition of the rule's stream, `rule/<rule id>/<partition>`, each checkpointing its
 * operator's state and its input position together, in one store write. A full state (the base)
 * also names the rule definition it belongs to (its revision) and the stream with its partition
 * count; a delta holds what changed since the previous capture and the position after it
 * (CepOperator.beginDeltaCapture). Each is JSON, kept by the store as opaque bytes.
 *
 * Alerts carry ids derived from the match, so resuming from any checkpoint replays matches that
 * collide with the stored ones instead of duplicating them.
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import type { CheckpointStore, StoredTaskCheckpoint } from "../runtime/checkpoint/store.js";
import { taskName } from "../runtime/checkpoint/store.js";
import type { OperatorDelta, OperatorSnapshot } from "./operator.js";

/** A partition's full checkpoint. */
export interface RuleTaskBase {
  readonly version: 2;
  /** The rule definition the state belongs to (RuleRunnerOptions.revision). */
  readonly revision: string;
  readonly stream: string;
  /** The stream's partition count when written: a stream created again under the name differs. */
  readonly partitions: number;
  /** Next offset to read. */
  readonly position: number;
  readonly operator: OperatorSnapshot;
}

export interface RuleTaskDelta {
  readonly position: number;
  readonly operator: OperatorDelta;
}

export interface RuleTaskCheckpoint {
  readonly base: RuleTaskBase;
  /** In the order they were written; apply each on top of the base. */
  readonly deltas: RuleTaskDelta[];
}

/** The head of a base: everything but the position and the operator. */
export type RuleTaskHead = Omit<RuleTaskBase, "position" | "operator">;

/** The job every task of a rule belongs to. */
export function ruleJob(ruleId: string): string {
  return `rule/${ruleId}`;
}

export function ruleTask(ruleId: string, partition: number): string {
  return taskName(ruleJob(ruleId), partition);
}

const decoder = new TextDecoder();

export function decodeTaskCheckpoint(stored: StoredTaskCheckpoint): RuleTaskCheckpoint {
  return {
    base: JSON.parse(decoder.decode(stored.base)) as RuleTaskBase,
    deltas: stored.deltas.map((d) => JSON.parse(decoder.decode(d)) as RuleTaskDelta),
  };
}

/** The position a checkpoint resumes reading at: its last delta's, else its base's. */
export function resumePosition(cp: RuleTaskCheckpoint): number {
  return (cp.deltas[cp.deltas.length - 1] ?? cp.base).position;
}

/** Text encoded between two looks at the clock: big enough to be cheap, small enough to be a short task. */
const ENCODE_CHUNK = 1 << 18;

/** Longest run of encoding before the event loop gets a turn, ms. */
const ENCODE_SLICE_MS = 1;

/**
 * A base (with `head`) or a delta (without) as the bytes the store keeps, from a capture's JSON
 * pieces. Encoded a chunk at a time, yielding the loop between slices, so a large state never
 * becomes one string or one long synchronous task.
 */
export async function encodeTaskCheckpoint(
  position: number,
  operator: readonly string[],
  head?: RuleTaskHead,
): Promise<Uint8Array> {
  const fields = head === undefined ? "{" : `${JSON.stringify(head).slice(0, -1)},`;
  const parts: Buffer[] = [];
  let chunk = [`${fields}"position":${position},"operator":`];
  let size = chunk[0]?.length ?? 0;
  let deadline = performance.now() + ENCODE_SLICE_MS;
  for (const piece of operator) {
    chunk.push(piece);
    size += piece.length;
    if (size < ENCODE_CHUNK) continue;
    parts.push(Buffer.from(chunk.join("")));
    chunk = [];
    size = 0;
    if (performance.now() > deadline) {
      await nextTurn();
      deadline = performance.now() + ENCODE_SLICE_MS;
    }
  }
  chunk.push("}");
  parts.push(Buffer.from(chunk.join("")));
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

/**
 * Removes every checkpoint of a rule (deleted, or disabled: enabled again it starts afresh). Each
 * task is claimed first, so a runner of the rule still writing somewhere is fenced off.
 */
export async function dropRuleCheckpoints(store: CheckpointStore, ruleId: string, owner: string): Promise<void> {
  const tasks = await store.list(`${ruleJob(ruleId)}/`);
  await Promise.all(
    tasks.map(async (task) => {
      const { epoch } = await store.claim(task, owner);
      await store.drop(task, epoch);
    }),
  );
}
