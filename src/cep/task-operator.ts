/**
 * A rule on one partition as a task of the one runtime (src/runtime/driver.ts): the TaskOperator
 * adapter of CepOperator. The driver reads, decodes and checkpoints; this keys each event by the
 * rule's key, stamps it with its log position (alerts name their events by it) and feeds the
 * CepOperator, whose matches become outputs (MatchOutput) that the rule's alert output stores.
 *
 * Event time is the CEP's own, as FlinkCEP's operator keeps it: the operator's watermark (its
 * largest event time, bounded by append time, less the rule's lateness) and `within` timers live in
 * its state, so the driver's watermarks and timer service are not used. Checkpoints are the
 * operator's captures, taken a slice at a time while events keep coming (beginSnapshot) and
 * incremental: after a full one, each holds only what changed (CepOperator.beginDeltaCapture).
 */
import { RunnelError } from "../core/errors.js";
import {
  ACCEPTED,
  FILTERED,
  LATE,
  type OperatorOutput,
  type OperatorStats,
  type ProcessOutcome,
  type SnapshotCapture,
  type TaskOperator,
} from "../runtime/operator.js";
import { joinState } from "../runtime/task-checkpoint.js";
import type { StreamEvent } from "../stream/event.js";
import { matchIdOf } from "./actions.js";
import { encodeRuleState, type RuleStateHead, ruleStateHead, ruleStateOperator } from "./checkpoint.js";
import {
  type CepMatch,
  CepOperator,
  EVENT_META,
  type MetaEvent,
  type OperatorDelta,
  type OperatorSnapshot,
} from "./operator.js";
import type { CompiledRule } from "./rule/compile.js";

/** A match as the driver carries it to the rule's output; its id is the match's (unique in the rule). */
export interface MatchOutput extends OperatorOutput {
  readonly match: CepMatch;
}

export function isMatchOutput(o: OperatorOutput): o is MatchOutput {
  return "match" in o;
}

const NO_VALUE: Record<string, unknown> = Object.freeze({});

export class CepTaskOperator implements TaskOperator {
  readonly cep: CepOperator;
  /** Where matches go while an event is processed. */
  private out: OperatorOutput[] | undefined;
  /** A full capture was taken since the restore: deltas can follow it. */
  private captured = false;

  constructor(
    private readonly rule: CompiledRule,
    /** What this operator's state belongs to; a restored state of another revision is not taken. */
    private readonly head: RuleStateHead,
  ) {
    this.cep = new CepOperator(rule, { onMatch: (m) => this.emit(m) });
  }

  processEvent(e: StreamEvent, out: OperatorOutput[]): ProcessOutcome {
    // decodeRecord made the value for this call alone: it may carry the event's position.
    const value = e.value as MetaEvent;
    const field = this.rule.key;
    const key = field === "user_id" ? e.key : value[field];
    if (key === undefined || key === null) return FILTERED;
    value[EVENT_META] = { ts: e.timestamp, id: `${e.partition}:${e.offset}` };
    const late = this.cep.late;
    this.out = out;
    try {
      this.cep.process(String(key), e.timestamp, value, e.ingestTime);
    } finally {
      this.out = undefined;
    }
    return this.cep.late > late ? LATE : ACCEPTED;
  }

  /** The CEP keeps its own event time (see above). */
  processWatermark(): void {}

  private emit(m: CepMatch): void {
    if (this.out === undefined) throw new RunnelError("internal", "a CEP match outside of processing an event");
    const output: MatchOutput = {
      id: matchIdOf(m),
      key: m.key,
      timestamp: m.timeoutAt ?? lastEventTime(m),
      value: NO_VALUE,
      match: m,
    };
    this.out.push(output);
  }

  snapshot(): Uint8Array {
    return this.completed(this.capture(false));
  }

  snapshotDelta(): Uint8Array | undefined {
    return this.captured ? this.completed(this.capture(true)) : undefined;
  }

  beginSnapshot(delta: boolean): SnapshotCapture | undefined {
    // A delta holds the changes since the last capture: there must be one (since the restore).
    return delta && !this.captured ? undefined : this.capture(delta);
  }

  /** The CepOperator's capture (copy-on-write: it goes on processing while the capture is stepped). */
  private capture(delta: boolean): SnapshotCapture {
    const capture = delta ? this.cep.beginDeltaCapture() : this.cep.beginCapture();
    this.captured = true;
    const { head } = this;
    return {
      step: (deadline) => capture.step(deadline),
      bytes: () => encodeRuleState(head, capture.pieces),
    };
  }

  private completed(capture: SnapshotCapture): Uint8Array {
    capture.step(Number.POSITIVE_INFINITY);
    return joinState(capture.bytes());
  }

  restore(base: Uint8Array, deltas: readonly Uint8Array[]): void {
    this.captured = false;
    // A changed rule keeps the positions (the driver's) and starts its state empty.
    if (ruleStateHead(base).revision !== this.head.revision) return;
    this.cep.restore(
      ruleStateOperator<OperatorSnapshot>(base),
      deltas.map((d) => ruleStateOperator<OperatorDelta>(d)),
    );
  }

  stats(): OperatorStats {
    return { stateKeys: this.cep.activeKeys, openWindows: 0 };
  }
}

function lastEventTime(m: CepMatch): number {
  let last = 0;
  for (const events of m.match.values()) for (const e of events) last = Math.max(last, e[EVENT_META]?.ts ?? 0);
  return last;
}
