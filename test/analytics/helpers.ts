import type { TestContext } from "node:test";
import { createDuckDbAnalyticsStore, type DuckDbAnalyticsStore } from "../../src/analytics/index.js";
import type { AnalyticsRow } from "../../src/analytics/types.js";
import type { StreamDefinition } from "../../src/control/types.js";

export function streamDef(name: string, partitions = 1): StreamDefinition {
  return { name, partitions, timestampField: "timestamp", createdAt: new Date(0).toISOString() };
}

/** An open in-memory store closed when the test ends. */
export async function openStore(t: TestContext, options: Parameters<typeof createDuckDbAnalyticsStore>[0] = {}) {
  const store: DuckDbAnalyticsStore = createDuckDbAnalyticsStore({ sandbox: { warm: 1 }, ...options });
  await store.open();
  t.after(() => store.close());
  return store;
}

export function row(offset: number, userId: string, fields: Record<string, unknown>, time = Date.now()): AnalyticsRow {
  return { partition: 0, offset, userId, time, ingestTime: time, fields };
}
