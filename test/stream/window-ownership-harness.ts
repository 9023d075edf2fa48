/** What the tests of windowed jobs on several instances share: the job, its input, the cases. */

import type { SlotOwnership } from "../../src/cluster/ownership.js";
import type { EventLog, FencedWriter } from "../../src/log/types.js";
import { partitionForKey } from "../../src/log/types.js";
import type { CheckpointStore } from "../../src/runtime/checkpoint/store.js";
import { parsePipelineOptions } from "../../src/stream/options.js";
import { compilePipeline } from "../../src/stream/sql/index.js";
import { WindowedPipelineRunner } from "../../src/stream/window-runner.js";
import { rng } from "../helpers/rng.js";

export const PARTITIONS = 4;
export const T0 = Date.UTC(2024, 0, 1);
export function runner(
  log: EventLog,
  sql: string,
  checkpoints: CheckpointStore,
  ownership?: SlotOwnership,
  fencedWriter?: (task: string) => FencedWriter,
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
    options: parsePipelineOptions({ idleTimeout: 0, outOfOrderness: "0s", checkpointInterval: "100ms" }),
    checkpoints,
    chunkSize: 50,
    retryDelayMs: 10,
    tickMs: 20,
    ...(ownership !== undefined && { ownership }),
    ...(fencedWriter !== undefined && { fencedWriter }),
  });
}

export interface Tx {
  readonly user_id: string;
  readonly device: string;
  readonly amount: number;
  readonly t: number;
}

/** Timestamps rise with the offset, so no event is late, however the partitions interleave. */
export function transactions(seed: number, n: number): Tx[] {
  const random = rng(seed);
  return Array.from({ length: n }, (_, i) => ({
    user_id: `u${Math.floor(random() * 23)}`,
    device: `d${Math.floor(random() * 7)}`,
    amount: Math.floor(random() * 100),
    t: T0 + i * 1_500,
  }));
}

/** One event per input partition past every window, so the last ones fire. */
export function flush(t: number): Tx[] {
  const out: Tx[] = [];
  for (let i = 0; out.length < PARTITIONS; i++) {
    const user_id = `flush${i}`;
    if (!out.some((e) => partitionForKey(e.user_id, PARTITIONS) === partitionForKey(user_id, PARTITIONS))) {
      out.push({ user_id, device: "flush", amount: 0, t });
    }
  }
  return out;
}

export async function ingest(log: EventLog, events: readonly Tx[]): Promise<void> {
  await log.append(
    "tx",
    events.map(({ t, ...value }) => ({
      key: value.user_id,
      timestamp: t,
      value: encoder.encode(JSON.stringify(value)),
    })),
  );
}

export const CASES = [
  {
    mode: "direct (marker stream)",
    sql: `SELECT user_id, count(*) AS n, sum(amount) AS total FROM TUMBLE(tx, _time, INTERVAL '1 minute') GROUP BY ALL`,
  },
  {
    mode: "behind the exchange",
    sql: `SELECT device, count(*) AS n, sum(amount) AS total FROM TUMBLE(tx, _time, INTERVAL '1 minute') GROUP BY ALL`,
  },
];

const encoder = new TextEncoder();
