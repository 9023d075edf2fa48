import type { LogRecord } from "../log/types.js";
import {
  ACCEPTED,
  FILTERED,
  type OperatorOutput,
  type OperatorStats,
  type ProcessOutcome,
  type TaskOperator,
} from "../runtime/operator.js";
import type { Emitted, StreamEvent } from "./event.js";
import type { Operator } from "./operators.js";
import type { Snapshot } from "./state/snapshot-codec.js";

/**
 * The stream engine's operators as task operators (src/runtime/operator.ts), so one driver runs
 * every job type.
 */

/**
 * What keeps keyed state: the window operator, or a keyed process function
 * (src/stream/keyed-process.ts). Its state must result from exactly the events fed since the
 * snapshot it was restored from, and its output ids must be deterministic.
 */
export interface CheckpointedOperator {
  readonly watermark: number;
  readonly openWindows: number;
  /** Keys holding state. */
  readonly groupCount: number;
  process(e: StreamEvent, out: OperatorOutput[]): ProcessOutcome;
  /** See WindowOperator.lookAhead; optional. */
  lookAhead?(events: readonly StreamEvent[], from: number, to: number): void;
  advance(watermark: number, out: OperatorOutput[]): void;
  snapshot(): Snapshot;
  restore(s: Snapshot): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A checkpointed operator's snapshot as checkpoint bytes: its JSON. */
export function encodeSnapshot(s: Snapshot): Uint8Array {
  return encoder.encode(JSON.stringify(s));
}

/** A keyed operator (windows, keyed process function) under the task contract; state as JSON. */
export class KeyedTaskOperator implements TaskOperator {
  constructor(private readonly op: CheckpointedOperator) {
    this.lookAhead = op.lookAhead?.bind(op);
  }

  processEvent(e: StreamEvent, out: OperatorOutput[]): ProcessOutcome {
    return this.op.process(e, out);
  }

  processWatermark(watermark: number, out: OperatorOutput[]): void {
    this.op.advance(watermark, out);
  }

  /** Only for an operator that looks ahead: the driver decodes in slices for it. */
  readonly lookAhead: ((events: readonly StreamEvent[], from: number, to: number) => void) | undefined;

  snapshot(): Uint8Array {
    return encodeSnapshot(this.op.snapshot());
  }

  restore(base: Uint8Array, _deltas: readonly Uint8Array[]): void {
    // It takes no deltas (no snapshotDelta), so a store holds only its bases.
    this.op.restore(JSON.parse(decoder.decode(base)) as Snapshot);
  }

  stats(): OperatorStats {
    return { stateKeys: this.op.groupCount, openWindows: this.op.openWindows };
  }
}

const NO_STATE = new Uint8Array(0);

/**
 * A stateless map/filter (compiled SQL without a window, or a TypeScript chain) under the task
 * contract. Output ids are `<job>/<partition>/<offset>/<n>`: the n-th output of that input record.
 */
export class StatelessTaskOperator implements TaskOperator {
  private readonly emitted: Emitted[] = [];

  constructor(
    private readonly job: string,
    private readonly op: Operator,
  ) {}

  prepare(records: readonly LogRecord[]): Promise<void> {
    return this.op.prepare === undefined ? Promise.resolve() : this.op.prepare(records);
  }

  processEvent(e: StreamEvent, out: OperatorOutput[]): ProcessOutcome {
    const emitted = this.emitted;
    emitted.length = 0;
    this.op.process(e, emitted);
    if (emitted.length === 0) return FILTERED;
    const id = `${this.job}/${e.partition}/${e.offset}/`;
    for (let i = 0; i < emitted.length; i++) {
      const o = emitted[i] as Emitted;
      out.push({ id: `${id}${i}`, key: o.key, timestamp: o.timestamp, value: o.value });
    }
    return ACCEPTED;
  }

  processWatermark(): void {}

  snapshot(): Uint8Array {
    return NO_STATE;
  }

  restore(): void {}

  stats(): OperatorStats {
    return { stateKeys: 0, openWindows: 0 };
  }
}
