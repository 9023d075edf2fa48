import type { LogRecord } from "../log/types.js";
import { decodeRecord } from "./codec.js";
import type { Emitted } from "./event.js";
import type { Operator } from "./operators.js";
import { SqlEvalError } from "./sql/values.js";
import type { OutputRecord } from "./types.js";

export interface ChunkResult {
  readonly outputs: OutputRecord[];
  /** Inputs that produced no output because WHERE rejected them. */
  readonly filtered: number;
  /** Inputs dropped because an expression failed on them (DuckDB would fail the query; a stream cannot stop). */
  readonly failed: number;
  readonly lastError: string | undefined;
}

/**
 * Runs the operator over one chunk of one partition. Pure with respect to the log, so recovery can
 * replay a chunk and get byte-identical outputs with the same deterministic ids.
 */
export function processChunk(pipeline: string, operator: Operator, records: readonly LogRecord[]): ChunkResult {
  const outputs: OutputRecord[] = [];
  const emitted: Emitted[] = [];
  let filtered = 0;
  let failed = 0;
  let lastError: string | undefined;
  for (const record of records) {
    emitted.length = 0;
    try {
      operator.process(decodeRecord(record), emitted);
    } catch (e) {
      if (!(e instanceof SqlEvalError)) throw e;
      failed++;
      lastError = `${record.partition}/${record.offset}: ${e.message}`;
      continue;
    }
    if (emitted.length === 0) filtered++;
    for (let i = 0; i < emitted.length; i++) {
      const out = emitted[i] as Emitted;
      outputs.push({
        id: `${pipeline}/${record.partition}/${record.offset}/${i}`,
        key: out.key,
        timestamp: out.timestamp,
        value: out.value,
        source: { partition: record.partition, offset: record.offset },
      });
    }
  }
  return { outputs, filtered, failed, lastError };
}
