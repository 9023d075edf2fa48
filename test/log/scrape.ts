/**
 * The log's stats as Prometheus sees them: the real metrics module and scrape-time collectors
 * (src/monitoring) over a stats function, so a test checks what an operator's dashboard reads.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { systemClock } from "../../src/core/clock.js";
import type { EventLog } from "../../src/log/types.js";
import { registerCollectors } from "../../src/monitoring/collectors.js";
import { createMetrics } from "../../src/monitoring/metrics.js";
import type { LogStats } from "../../src/monitoring/probes.js";
import { PrometheusProbe } from "../../src/monitoring/prometheus-probe.js";

/** One scrape's value of an unlabelled series (undefined when absent). */
export async function scrapeLogStats(log: EventLog, stats: LogStats): Promise<(series: string) => number | undefined> {
  const dataDir = await mkdtemp(join(tmpdir(), "runnel-log-scrape-"));
  const metrics = createMetrics();
  const remove = registerCollectors(metrics, {
    clock: systemClock,
    log,
    logStats: () => stats,
    dataDir,
    probe: new PrometheusProbe(metrics, () => Date.now()),
  });
  try {
    const text = await metrics.registry.metrics();
    return (series) => {
      const m = new RegExp(`^${series} (\\S+)$`, "m").exec(text);
      return m === null ? undefined : Number(m[1]);
    };
  } finally {
    remove();
    await rm(dataDir, { recursive: true, force: true });
  }
}
