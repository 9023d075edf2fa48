import { ManualClock } from "../../src/core/clock.js";
import { partitionForKey } from "../../src/log/types.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import type { CheckpointStore } from "../../src/runtime/checkpoint/store.js";
import { type PipelineOptionsInput, parsePipelineOptions } from "../../src/stream/options.js";
import { compilePipeline } from "../../src/stream/sql/index.js";
import { WindowedPipelineRunner } from "../../src/stream/window-runner.js";
import { FakeLog } from "../helpers/fake-log.js";
import { rng } from "../helpers/rng.js";

export const PARTITIONS = 3;
const encoder = new TextEncoder();

export interface Input {
  readonly user_id: string;
  readonly t: number;
  readonly [field: string]: unknown;
}

export async function windowLog(): Promise<FakeLog> {
  const log = new FakeLog();
  await log.createStream("transactions", { partitions: PARTITIONS });
  await log.createStream("out", { partitions: PARTITIONS });
  await log.createStream("out_late", { partitions: PARTITIONS });
  return log;
}

export async function ingest(log: FakeLog, events: readonly Input[]): Promise<void> {
  if (events.length === 0) return;
  await log.append(
    "transactions",
    events.map(({ t, ...value }) => ({
      key: value.user_id,
      timestamp: t,
      value: encoder.encode(JSON.stringify(value)),
    })),
  );
}

export function windowRunner(
  log: FakeLog,
  sql: string,
  options: PipelineOptionsInput = {},
  extra: { clock?: ManualClock; checkpoints?: CheckpointStore; chunkSize?: number } = {},
): WindowedPipelineRunner {
  const compiled = compilePipeline(sql, (n) => log.hasStream(n));
  if (compiled.kind !== "window") throw new Error("expected a windowed pipeline");
  return new WindowedPipelineRunner({
    log,
    name: "out",
    inputStream: compiled.inputStream,
    plan: compiled.plan,
    outputStream: "out",
    lateStream: "out_late",
    startFrom: "earliest",
    options: parsePipelineOptions({ idleTimeout: 0, outOfOrderness: 0, ...options }),
    checkpoints: extra.checkpoints ?? new MemoryCheckpointStore(),
    clock: extra.clock ?? new ManualClock(0),
    chunkSize: extra.chunkSize ?? 1000,
    retryDelayMs: 1,
    tickMs: 0,
  });
}

/** One user per partition, to push every partition's watermark past `t`. */
export function flushUsers(): string[] {
  const users: string[] = [];
  for (let i = 0; users.length < PARTITIONS; i++) {
    const u = `flush${i}`;
    const p = partitionOf(u);
    if (!users.some((x) => partitionOf(x) === p)) users.push(u);
  }
  return users;
}

export function partitionOf(key: string): number {
  return partitionForKey(key, PARTITIONS);
}

export function flush(t: number): Input[] {
  return flushUsers().map((user_id) => ({ user_id, t }));
}

/** Output rows of a stream (values), without the flush users' groups. */
export function rows(log: FakeLog, stream = "out"): Record<string, unknown>[] {
  return log
    .dump(stream)
    .map((r): Record<string, unknown> => ({ ...(r.value as Record<string, unknown>), _key: r.key, _time: r.timestamp }))
    .filter((r) => !String(r.user_id ?? "").startsWith("flush"));
}

/** A deterministic pseudo-random generator, so a failing input can be replayed. */
export const random = rng;
