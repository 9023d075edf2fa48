/**
 * Runnel as a library: code-first stream processing jobs over Runnel's log, with the operators
 * that streaming SQL pipelines compile to (docs/stream-processing.md).
 *
 * @example
 * import { LocalEventLog, stream, tumbling, count, sum } from "runnel";
 * const log = new LocalEventLog({ dir: "./data/log" });
 * await log.open();
 * await log.createStream("transactions", { partitions: 1 });
 * await log.createStream("per_minute", { partitions: 1 });
 * const job = stream<{ user_id: string; amount: number }>(log, "transactions")
 *   .filter((t) => t.amount > 0)
 *   .keyBy("user_id")
 *   .window(tumbling(60_000))
 *   .aggregate({ n: count(), total: sum((t) => t.amount) })
 *   .to("per_minute", { options: { outOfOrderness: "5s" } });
 * await job.start();
 */

export { LocalEventLog } from "./log/local/index.js";
export type { EventLog, LogRecord } from "./log/types.js";
export { LocalFileCheckpointStore } from "./runtime/checkpoint/local.js";
export { MemoryCheckpointStore } from "./runtime/checkpoint/memory.js";
export type { CheckpointStore } from "./runtime/checkpoint/store.js";
export * from "./stream/api/index.js";
export { KeyedProcessOperator, type KeyedState } from "./stream/keyed-process.js";
export {
  CachedLookup,
  type LookupCacheOptions,
  type LookupRow,
  type LookupTable,
  LruTtlCache,
  userSettingsTable,
  usersTable,
} from "./stream/lookup.js";
export type { PipelineOptions, PipelineOptionsInput } from "./stream/options.js";
export { hopping, session, tumbling, type WindowSpec } from "./stream/window/windows.js";
