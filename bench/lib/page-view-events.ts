/**
 * The ~100-byte page-view events (JSON, as ingestion stores them) that the log benchmarks append,
 * from a pool so generation is not measured; one definition, so bench/log-append.ts and
 * bench/log-kafka.ts append the same records.
 */
import type { AppendRecord } from "../../src/log/types.js";

const encoder = new TextEncoder();
export const POOL = 20_000;
export const events: AppendRecord[] = Array.from({ length: POOL }, (_, i) => {
  const user = `user-${(i * 7919) % 10_000}`;
  const value = encoder.encode(
    JSON.stringify({
      user_id: user,
      type: "page_view",
      page: `/products/${i % 997}`,
      ref: "search",
      ms: 1_700_000_000_000 + i,
    }),
  );
  return { key: user, timestamp: 1_700_000_000_000 + i, value };
});
