import type { AppendRecord, EventLog, FencedWriter } from "../log/types.js";
import { encodeValue } from "../stream/codec.js";
import { collectOutputIds, HEADER_OUTPUT_ID, HEADER_SOURCE_OFFSET } from "../stream/headers.js";
import type { OperatorOutput } from "./operator.js";

/**
 * Where a task's outputs go (the driver's output seam): a log stream (LogStreamOutput, pipelines)
 * or a store that keeps one copy per output id (a rule's alerts, src/cep/alert-output.ts).
 *
 * Exactly once rests on one of two things: the output has positions the checkpoint records
 * (`ends`), so a restarted task reads back the ids written since and skips them; or it is
 * idempotent by id, so it has no positions and a replayed output is written again and kept once.
 */
export interface TaskOutput<T = unknown> {
  /**
   * One output as `write` takes it, made while its input record is being processed: an output
   * that cannot be encoded is that record's fault (the driver dead-letters the record).
   */
  encode(output: OperatorOutput, sourceOffset: string | undefined): T;
  /** One round's outputs, in order, durable when the promise resolves. */
  write(batch: readonly T[]): Promise<void>;
  /** Where the output ends now, per output partition; stored in every checkpoint. */
  ends(): Promise<readonly number[]>;
  /** Where it begins: a task without a checkpoint reads back what was written from there. */
  starts(): Promise<readonly number[]>;
  /**
   * Adds to `into` the ids written from `from` on (in `partitions`, default all): the replay after
   * a restart skips them. An output idempotent by id adds none.
   */
  collectIds(from: readonly number[], into: Set<string>, partitions?: readonly number[]): Promise<void>;
}

/**
 * Outputs as records of a log stream, each with its id in a header (and its source offset, when
 * asked). Appended by `writer` when given (the task's fenced writer, cluster mode), else by the log.
 */
export class LogStreamOutput implements TaskOutput<AppendRecord> {
  constructor(
    private readonly log: EventLog,
    private readonly stream: string,
    private readonly writer?: FencedWriter,
  ) {}

  encode(o: OperatorOutput, sourceOffset: string | undefined): AppendRecord {
    return {
      key: o.key,
      timestamp: o.timestamp,
      value: encodeValue(o.value),
      headers:
        o.headers !== undefined
          ? { ...o.headers, [HEADER_OUTPUT_ID]: o.id }
          : sourceOffset === undefined
            ? { [HEADER_OUTPUT_ID]: o.id }
            : { [HEADER_OUTPUT_ID]: o.id, [HEADER_SOURCE_OFFSET]: sourceOffset },
    };
  }

  async write(batch: readonly AppendRecord[]): Promise<void> {
    if (batch.length === 0) return;
    await (this.writer ?? this.log).append(this.stream, batch);
  }

  ends(): Promise<readonly number[]> {
    return this.log.endOffsets(this.stream);
  }

  starts(): Promise<readonly number[]> {
    return this.log.startOffsets(this.stream);
  }

  collectIds(from: readonly number[], into: Set<string>, partitions?: readonly number[]): Promise<void> {
    return collectOutputIds(this.log, this.stream, from, into, partitions);
  }
}
