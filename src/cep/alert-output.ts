/**
 * Where a rule's tasks put their matches (a TaskOutput of src/runtime/output.ts): a sink that
 * stores each alert under an id derived from the match, idempotently, so the output has no
 * positions to checkpoint: a match replayed after a restart is stored again and kept once.
 *
 * The rule's tasks share one AlertOutput, which gathers their matches into one sink call (a group
 * commit): woken by the same append, the tasks finish their rounds close together, and one call
 * (one statement in the alert store) costs less latency than one per partition. Writes arriving
 * while a call is in flight go together in the next one.
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import { RunnelError } from "../core/errors.js";
import { SerialQueue } from "../core/serial-queue.js";
import type { OperatorOutput } from "../runtime/operator.js";
import type { TaskOutput } from "../runtime/output.js";
import type { CepMatch } from "./operator.js";
import { isMatchOutput } from "./task-operator.js";

export type MatchSink = (matches: readonly CepMatch[]) => Promise<void>;

const NONE: readonly number[] = [];

export class AlertOutput implements TaskOutput<CepMatch> {
  private readonly queue = new SerialQueue();
  /** Matches waiting for the next sink call. */
  private gathered: CepMatch[] = [];
  /** The next sink call, while it still takes matches. */
  private next: Promise<void> | undefined;

  constructor(private readonly sink: MatchSink) {}

  encode(o: OperatorOutput): CepMatch {
    if (!isMatchOutput(o)) throw new RunnelError("internal", `output ${o.id} of a rule is not a match`);
    return o.match;
  }

  /** Resolves once the sink call that took the batch has stored it; rejects if that call fails. */
  write(batch: readonly CepMatch[]): Promise<void> {
    for (const m of batch) this.gathered.push(m);
    this.next ??= this.queue.run(async () => {
      // The other tasks woken with this one finish their rounds meanwhile.
      await nextTurn();
      const matches = this.gathered;
      this.gathered = [];
      this.next = undefined;
      await this.sink(matches);
    });
    return this.next;
  }

  async ends(): Promise<readonly number[]> {
    return NONE;
  }

  async starts(): Promise<readonly number[]> {
    return NONE;
  }

  async collectIds(): Promise<void> {}
}
