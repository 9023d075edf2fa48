/**
 * Runs one rule against its stream as tasks of the one runtime: per partition a TaskDriver
 * (src/runtime/driver.ts) named `rule/<rule id>/<partition>`, feeding a CepTaskOperator in offset
 * order. The driver claims the task (an epoch that fences any earlier owner), restores its
 * checkpoint, dead-letters what the rule cannot process, and writes the partition's state with its
 * input position in one store write, incrementally (deltas after a base); a task fenced by a newer
 * owner stops reading, emitting and writing. Matches go to the sink (which stores each alert under
 * an id derived from the match, idempotently) before the checkpoint that covers them is written;
 * the tasks share one AlertOutput, so a round's matches of every partition reach the sink in one
 * call or close to it.
 *
 * A checkpoint of an earlier definition of the rule (another revision) gives only its position:
 * the new definition starts empty where the old one stopped, so no event is skipped. A checkpoint
 * of another stream, or of the store format of before the driver, is dealt with before the driver
 * reads it (upgradeRuleTask).
 *
 * In a cluster the runner runs the tasks of the partitions its ownership gives it and follows
 * changes (src/runtime/owned-tasks.ts): a partition moved here resumes from the shared store, and
 * a paused instance hands no match to the sink past its lease.
 */
import { ALL_PARTITIONS, type PartitionOwnership } from "../cluster/ownership.js";
import type { DeadLetterSink } from "../core/dead-letters.js";
import type { EventLog, FencedWriter } from "../log/types.js";
import type { CheckpointStore } from "../runtime/checkpoint/store.js";
import { type CheckpointObserver, TaskDriver, type TaskStats } from "../runtime/driver.js";
import { OwnedTasks, type TaskInfo } from "../runtime/owned-tasks.js";
import { AlertOutput, type MatchSink } from "./alert-output.js";
import { type RuleStateHead, ruleJob, ruleTask, upgradeRuleTask } from "./checkpoint.js";
import type { CompiledRule } from "./rule/compile.js";
import { CepTaskOperator } from "./task-operator.js";

export interface RuleRunnerOptions {
  readonly log: EventLog;
  readonly ruleId: string;
  readonly stream: string;
  readonly compiled: CompiledRule;
  /** Where the rule's tasks checkpoint: `rule/<ruleId>/<partition>`. */
  readonly checkpoints: CheckpointStore;
  /** This process, as its claims on the tasks name it (diagnostics). */
  readonly owner: string;
  /**
   * Identifies what the operators' state means (the rule's matching definition). A checkpoint of
   * another revision is a changed rule's: its positions are taken over, its state is not.
   */
  readonly revision?: string;
  readonly sink: MatchSink;
  readonly chunkSize?: number;
  /** Minimum time between checkpoints, ms (every round's matches are stored before it anyway). */
  readonly checkpointEveryMs?: number;
  readonly retryDelayMs?: number;
  /** Where records the rule cannot process go; without it they are counted and skipped. */
  readonly deadLetters?: DeadLetterSink;
  /** The rule as its dead letters name it; default `rule/<ruleId>`. */
  readonly consumer?: string;
  readonly checkpointObserver?: CheckpointObserver;
  /** The partitions whose tasks run here (src/cluster/ownership.ts); default all. */
  readonly ownership?: PartitionOwnership;
  /** Each task's fenced writer, for its dead letters (TaskDriverOptions.fencedWriter; cluster mode on Kafka). */
  readonly fencedWriter?: (task: string) => FencedWriter;
}

/** While the rule's tasks keep failing: since when, how often, why (the task failing longest). */
export interface RuleFailure {
  readonly since: number;
  readonly attempts: number;
  readonly error: string;
}

export class RuleRunner {
  private owned: OwnedTasks<TaskDriver> | undefined;
  /** Each partition's operator, the one its driver restored last. */
  private readonly operators = new Map<number, CepTaskOperator>();

  constructor(private readonly options: RuleRunnerOptions) {}

  /**
   * Claims every owned partition's task and restores what the store holds, or starts at the end
   * of the stream (a new rule sees what arrives after it).
   */
  async start(): Promise<void> {
    const { log, stream, compiled, checkpoints, owner, ruleId } = this.options;
    const partitions = log.partitionCount(stream);
    const head: RuleStateHead = { revision: this.options.revision ?? "", stream, partitions };
    const output = new AlertOutput(this.options.sink);
    const { chunkSize, retryDelayMs, deadLetters, checkpointObserver, fencedWriter } = this.options;
    const ownership = this.options.ownership ?? ALL_PARTITIONS;
    this.owned = new OwnedTasks({
      ownership,
      partitions,
      create: async (p) => {
        await upgradeRuleTask(checkpoints, ruleTask(ruleId, p), p, owner, { name: stream, partitions });
        return new TaskDriver({
          log,
          job: ruleJob(ruleId),
          task: ruleTask(ruleId, p),
          inputStream: stream,
          partitions: [p],
          createOperator: () => {
            const op = new CepTaskOperator(compiled, head);
            this.operators.set(p, op);
            return op;
          },
          output,
          startFrom: "now",
          // Unused by the CEP, which keeps its own event time (CepTaskOperator).
          watermarks: { outOfOrdernessMs: 0, idleTimeoutMs: 0 },
          checkpointIntervalMs: this.options.checkpointEveryMs ?? 1000,
          checkpoints,
          owner,
          group: ruleJob(ruleId),
          consumer: this.options.consumer ?? ruleJob(ruleId),
          validUntil: () => ownership.validUntil(),
          ...(chunkSize !== undefined && { chunkSize }),
          ...(retryDelayMs !== undefined && { retryDelayMs }),
          ...(deadLetters !== undefined && { deadLetters }),
          ...(checkpointObserver !== undefined && { checkpointObserver }),
          ...(fencedWriter !== undefined && { fencedWriter }),
        });
      },
    });
    await this.owned.start();
  }

  /** Stops every task after its round in flight, each with a final checkpoint. */
  async stop(): Promise<void> {
    await this.owned?.stop();
  }

  /** The tasks running here (the owned partitions'). */
  tasks(): TaskInfo[] {
    return this.owned?.info() ?? [];
  }

  async idle(): Promise<void> {
    await Promise.all(this.running().map((d) => d.idle()));
  }

  private running(): TaskDriver[] {
    return this.owned?.list() ?? [];
  }

  private stats(): TaskStats[] {
    return this.running().map((d) => d.stats());
  }

  /** The operators of the partitions running here. */
  private liveOperators(): CepTaskOperator[] {
    return (this.owned?.partitions() ?? []).flatMap((p) => this.operators.get(p) ?? []);
  }

  private sum(field: "recordsIn" | "recordsOut" | "failures" | "deadLetters"): number {
    return this.stats().reduce((n, s) => n + s[field], 0);
  }

  /** Records read and processed, over all partitions. */
  get recordsIn(): number {
    return this.sum("recordsIn");
  }

  /** Matches handed to the sink. */
  get matches(): number {
    return this.sum("recordsOut");
  }

  /** Failed rounds, retried from the task's last checkpoint. */
  get failures(): number {
    return this.sum("failures");
  }

  /** Records moved to the dead-letter stream (or skipped, without one). */
  get deadLetters(): number {
    return this.sum("deadLetters");
  }

  get lastError(): string | undefined {
    const stats = this.stats();
    const fenced = stats.findIndex((s) => s.fenced);
    if (fenced >= 0) {
      const partition = this.owned?.partitions()[fenced];
      return `partition ${partition} was taken over: ${stats[fenced]?.lastError}`;
    }
    return stats.find((s) => s.lastError !== undefined)?.lastError;
  }

  /** Events dropped for arriving behind their partition's watermark, over all partitions (kept in the state). */
  late(): number {
    return this.liveOperators().reduce((n, op) => n + op.cep.late, 0);
  }

  /** Set while rounds keep failing (the sink or the log is away), until they succeed. */
  get failing(): RuleFailure | undefined {
    let longest: RuleFailure | undefined;
    for (const { failing } of this.stats()) {
      if (failing !== undefined && (longest === undefined || failing.since < longest.since)) longest = failing;
    }
    return longest;
  }

  /** Partitions another owner has taken over (their task's epoch was fenced). */
  fencedPartitions(): number[] {
    const partitions = this.owned?.partitions() ?? [];
    return this.stats().flatMap((s, i) => (s.fenced ? [partitions[i] as number] : []));
  }

  /** Every partition was taken over: this runner does nothing more. */
  takenOver(): boolean {
    const stats = this.stats();
    return stats.length > 0 && stats.every((s) => s.fenced);
  }

  partialMatches(): number {
    return this.liveOperators().reduce((n, op) => n + op.cep.partialMatchCount(), 0);
  }

  /** Keys holding partial matches, over all partitions. */
  activeKeys(): number {
    return this.liveOperators().reduce((n, op) => n + op.cep.activeKeys, 0);
  }
}
