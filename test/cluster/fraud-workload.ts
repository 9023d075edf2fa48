/**
 * The fault rig's workload (test/cluster/scenario.test.ts, bench/cluster-capacity.ts): the seed's
 * transactions for 200 users, the seed's fraud rule on them (an alert and a block), a windowed
 * pipeline (per user and 10-second tumbling window: count and sum) and a pipeline copying every
 * event (whose output shows, partition by partition, when work stops and starts again).
 */
import { seedRule } from "../e2e/fraud-data.js";
import type { MakeEvents } from "./load.js";

export const INPUT = "transactions"; // the seed rule's stream
export const COPIED = "copied";
export const WINDOWS = "per_user";
export const WINDOW_MS = 10_000;
/** The windowed pipeline's bounded out-of-orderness, and the rule's lateness: see `eventsOf`. */
export const OUT_OF_ORDER = "60s";
export const OUT_OF_ORDER_MS = 60_000;
export const USERS = 200;
export const BATCH = 20;
/** Event time per event id. */
export const TICK_MS = 10;
/**
 * Event time of id 0: two hours back, so no event is stamped ahead of its append time (the log's
 * clock caps event time there, docs/cep.md) however long the load runs.
 */
export const T0 = Math.floor((Date.now() - 2 * 3_600_000) / WINDOW_MS) * WINDOW_MS;

/** An integer amount, about 3 % of them over $500 (the rule's "large"): a well-mixed hash of the id. */
export function amountOf(id: number): number {
  let h = Math.imul(id ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  const r = ((h ^ (h >>> 16)) >>> 0) % 1000;
  return r < 970 ? r % 500 : 600 + r;
}

/**
 * One user per batch of `BATCH` ids, so a blocked user's batch is refused (423) and nobody else's.
 * Event time follows the id: each partition's events arrive nearly in event-time order (several
 * clients send at once), unless a batch sent to an instance that was then paused is appended once
 * it continues, up to about 20 s later (hence 60 s of out-of-orderness).
 */
export const eventsOf: MakeEvents = (ids) => {
  const user = `u${Math.floor(ids[0]! / BATCH) % USERS}`;
  return ids.map((id) => ({
    user_id: user,
    id,
    tx_id: `t${id}`,
    event_type: "transaction",
    amount: amountOf(id),
    timestamp: T0 + id * TICK_MS,
  }));
};

/**
 * Creates the stream, the rule and both pipelines through `create` (a POST answered 201, its body
 * returned); returns the rule's id.
 */
export async function createWorkload(
  create: (path: string, body: unknown) => Promise<Record<string, unknown>>,
  partitions: number,
): Promise<string> {
  await create("/api/v1/streams", { name: INPUT, partitions });
  const rule = await create("/api/v1/rules", { ...seedRule("fraud"), lateness: OUT_OF_ORDER });
  await create("/api/v1/pipelines", {
    name: WINDOWS,
    sql: `SELECT user_id, window_start, count(*) AS n, sum(amount) AS total
          FROM TUMBLE(${INPUT}, _time, INTERVAL '10 seconds') GROUP BY ALL`,
    startFrom: "earliest",
    // No partition is ever idle under the load; one whose task is moving must hold event time back.
    options: { outOfOrderness: OUT_OF_ORDER, idleTimeout: 0 },
  });
  await create("/api/v1/pipelines", {
    name: COPIED,
    sql: `SELECT id, user_id, amount FROM ${INPUT}`,
    startFrom: "earliest",
  });
  return String(rule.id);
}
