import { checkRecordDepth } from "../core/record-fault.js";
import type { AppendRecord, LogRecord } from "../log/types.js";
import { decodeRecord, encodeValue } from "./codec.js";
import type { Emitted } from "./event.js";
import { HEADER_OUTPUT_ID, HEADER_SOURCE_OFFSET } from "./headers.js";
import type { Operator } from "./operators.js";
import { SqlEvalError } from "./sql/values.js";

/** A record the operator could not process, and why. */
export interface FailedRecord {
  readonly record: LogRecord;
  readonly error: unknown;
}

export interface ChunkResult {
  /** Ready to append: keyed and timed like their inputs, each with its deterministic id. */
  readonly outputs: AppendRecord[];
  /** Inputs that produced no output because WHERE rejected them. */
  readonly filtered: number;
  /**
   * Inputs the operator could not process, in order: an expression failed on them (DuckDB would
   * fail the query; a stream cannot stop), or they are not JSON objects, too deep, or their output
   * cannot be encoded. Processing them again fails the same way: they go to the dead-letter stream.
   */
  readonly failed: FailedRecord[];
  /** Of `failed`, those an expression failed on (a bad CAST, invalid JSON): the `errors` statistic. */
  readonly evalErrors: number;
  readonly lastError: string | undefined;
}

/**
 * Runs the operator over one chunk of one partition. Pure with respect to the log, so recovery can
 * replay a chunk and get byte-identical outputs with the same deterministic ids.
 */
export function processChunk(pipeline: string, operator: Operator, records: readonly LogRecord[]): ChunkResult {
  const outputs: AppendRecord[] = [];
  const emitted: Emitted[] = [];
  const failed: FailedRecord[] = [];
  let filtered = 0;
  let evalErrors = 0;
  let lastError: string | undefined;
  for (const record of records) {
    emitted.length = 0;
    const before = outputs.length;
    try {
      checkRecordDepth(record.value);
      operator.process(decodeRecord(record), emitted);
      for (let i = 0; i < emitted.length; i++) {
        const out = emitted[i] as Emitted;
        outputs.push({
          key: out.key,
          timestamp: out.timestamp,
          value: encodeValue(out.value),
          headers: {
            [HEADER_OUTPUT_ID]: `${pipeline}/${record.partition}/${record.offset}/${i}`,
            [HEADER_SOURCE_OFFSET]: String(record.offset),
          },
        });
      }
    } catch (e) {
      // Whatever throws here is computation on this record alone, so it throws again on a retry.
      outputs.length = before;
      failed.push({ record, error: e });
      if (e instanceof SqlEvalError) evalErrors++;
      lastError = `${record.partition}/${record.offset}: ${e instanceof Error ? e.message : String(e)}`;
      continue;
    }
    if (emitted.length === 0) filtered++;
  }
  return { outputs, filtered, failed, evalErrors, lastError };
}
