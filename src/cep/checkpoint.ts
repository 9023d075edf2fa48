/**
 * A rule's checkpoints: one task per partition of the rule's stream, `rule/<rule id>/<partition>`,
 * in the task driver's format (src/runtime/task-checkpoint.ts: input position, event-time progress,
 * operator state, in one store write). The operator's part (CepTaskOperator) is a line of JSON
 * naming what the state belongs to (RuleStateHead), then the CepOperator's snapshot or delta as
 * JSON: the head is read without parsing the state.
 *
 * Rules checkpointed in the same store before they ran on the task driver, in a format of their own
 * (a JSON document per base or delta holding the position beside the operator's state):
 * `upgradeRuleTask` rewrites such a task into the driver's format once, before the driver reads it,
 * so an upgraded installation keeps its partial matches.
 *
 * Alerts carry ids derived from the match, so resuming from any checkpoint replays matches that
 * collide with the stored ones instead of duplicating them.
 */
import type { CheckpointStore } from "../runtime/checkpoint/store.js";
import { CheckpointCorruptError, taskName } from "../runtime/checkpoint/store.js";
import { decodeTaskCheckpoint, encodeTaskCheckpoint, type TaskCheckpointHeader } from "../runtime/task-checkpoint.js";
import type { OperatorDelta, OperatorSnapshot } from "./operator.js";

/** What a rule task's state belongs to. */
export interface RuleStateHead {
  /** The rule's matching definition: a state of another revision is a changed rule's (RuleRunnerOptions.revision). */
  readonly revision: string;
  readonly stream: string;
  /** The stream's partition count when written: a stream created again under the name differs. */
  readonly partitions: number;
}

/** The job every task of a rule belongs to. */
export function ruleJob(ruleId: string): string {
  return `rule/${ruleId}`;
}

export function ruleTask(ruleId: string, partition: number): string {
  return taskName(ruleJob(ruleId), partition);
}

const decoder = new TextDecoder();
const NEWLINE = 0x0a;

/**
 * A state as the parts of its bytes: the head's JSON line, then the operator's JSON (in pieces, as
 * a capture makes it), encoded once, into the checkpoint (encodeTaskCheckpoint).
 */
export function encodeRuleState(head: RuleStateHead, operator: readonly string[]): string[] {
  return [`${JSON.stringify(head)}\n`, ...operator];
}

/** The head of a state's bytes; JSON.stringify writes no raw newline, so the first one ends it. */
export function ruleStateHead(bytes: Uint8Array): RuleStateHead {
  const end = bytes.indexOf(NEWLINE);
  return JSON.parse(decoder.decode(end < 0 ? bytes : bytes.subarray(0, end))) as RuleStateHead;
}

/** The operator's part of a state's bytes (an OperatorSnapshot for a base, an OperatorDelta for a delta). */
export function ruleStateOperator<T extends OperatorSnapshot | OperatorDelta>(bytes: Uint8Array): T {
  return JSON.parse(decoder.decode(bytes.subarray(bytes.indexOf(NEWLINE) + 1))) as T;
}

/** One partition's checkpoint as written before the task driver: a base and the deltas after it. */
export interface ImportedRuleTask {
  readonly head: RuleStateHead;
  readonly partition: number;
  /** The position the base resumes at, and its operator state. */
  readonly position: number;
  readonly operator: OperatorSnapshot;
  readonly deltas: ReadonlyArray<{ readonly position: number; readonly operator: OperatorDelta }>;
}

/**
 * A checkpoint of before the driver, as the driver's base and deltas. Its event-time progress is
 * the operator's own (the CEP keeps its watermark in its state), so the driver's starts empty.
 */
export function toDriverCheckpoint(cp: ImportedRuleTask, takenAt: number): { base: Uint8Array; deltas: Uint8Array[] } {
  const header = (position: number): TaskCheckpointHeader => ({
    v: 2,
    partitions: [cp.partition],
    positions: [position],
    maxTimestamps: [null],
    watermark: null,
    outputEnds: [],
    lateEnds: [],
    timers: { eventTime: [], processingTime: [] },
    takenAt,
  });
  const state = (operator: OperatorSnapshot | OperatorDelta) => encodeRuleState(cp.head, [JSON.stringify(operator)]);
  return {
    base: encodeTaskCheckpoint(header(cp.position), state(cp.operator)),
    deltas: cp.deltas.map((d) => encodeTaskCheckpoint(header(d.position), state(d.operator))),
  };
}

/** Writes `cp` as the task's checkpoint, replacing what it held (claims the task first). */
export async function writeImported(
  store: CheckpointStore,
  task: string,
  owner: string,
  cp: ImportedRuleTask,
  takenAt = Date.now(),
): Promise<void> {
  const { base, deltas } = toDriverCheckpoint(cp, takenAt);
  const { epoch } = await store.claim(task, owner);
  await store.write(task, epoch, "base", base);
  for (const d of deltas) await store.write(task, epoch, "delta", d);
}

/** A base of the store format of before the driver. */
interface PreDriverBase extends RuleStateHead {
  readonly version: 2;
  readonly position: number;
  readonly operator: OperatorSnapshot;
}

/** The driver's checkpoints begin with a 4-byte big-endian header length, so never with `{`. */
const OPEN_BRACE = 0x7b;

/**
 * Makes the task's checkpoint one the driver and this rule can take over: one of the store format
 * of before the driver is rewritten in the driver's (its state and position kept); one of another
 * stream (or of the stream before it was created again) is dropped, so the task starts afresh at
 * the stream's end, as a new rule. Returns what was done.
 */
export async function upgradeRuleTask(
  store: CheckpointStore,
  task: string,
  partition: number,
  owner: string,
  stream: { readonly name: string; readonly partitions: number },
): Promise<"none" | "upgraded" | "dropped"> {
  const held = await store.read(task);
  if (held === undefined) return "none";
  let head: RuleStateHead;
  if (held.base[0] === OPEN_BRACE) {
    let base: PreDriverBase;
    let deltas: Array<{ position: number; operator: OperatorDelta }>;
    try {
      base = JSON.parse(decoder.decode(held.base)) as PreDriverBase;
      deltas = held.deltas.map((d) => JSON.parse(decoder.decode(d)) as { position: number; operator: OperatorDelta });
    } catch (e) {
      throw new CheckpointCorruptError(task, `not JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    head = { revision: base.revision, stream: base.stream, partitions: base.partitions };
    if (head.stream === stream.name && head.partitions === stream.partitions) {
      await writeImported(store, task, owner, {
        head,
        partition,
        position: base.position,
        operator: base.operator,
        deltas,
      });
      return "upgraded";
    }
  } else {
    head = ruleStateHead(decodeTaskCheckpoint(task, held.base, []).state);
    if (head.stream === stream.name && head.partitions === stream.partitions) return "none";
  }
  const { epoch } = await store.claim(task, owner);
  await store.drop(task, epoch);
  return "dropped";
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
