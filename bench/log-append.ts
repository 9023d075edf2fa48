/**
 * Append throughput of the local log with group commit, and sequential read throughput.
 * Usage: node --import tsx bench/log-append.ts [seconds-per-case=2] [dir=os tmp]
 * Prints one line per case; concurrency 1 is the one-fdatasync-per-append baseline.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalEventLog } from "../src/log/local/index.js";
import type { AppendRecord } from "../src/log/types.js";

const seconds = Number(process.argv[2] ?? 2);
const baseDir = process.argv[3] ?? tmpdir();
const value = new TextEncoder().encode(JSON.stringify({ user_id: "u", type: "click", page: "/x".repeat(60) }));

async function appendCase(concurrency: number, recordsPerAppend: number): Promise<void> {
  const dir = await mkdtemp(join(baseDir, "runnel-bench-log-"));
  const log = new LocalEventLog({ dir });
  await log.open();
  await log.createStream("bench", { partitions: 4 });
  const deadline = performance.now() + seconds * 1000;
  let n = 0;
  const latencies: number[] = [];
  async function worker(w: number): Promise<void> {
    while (performance.now() < deadline) {
      const records: AppendRecord[] = [];
      for (let i = 0; i < recordsPerAppend; i++)
        records.push({ key: `user-${w}-${n + i}`, timestamp: Date.now(), value });
      const t0 = performance.now();
      await log.append("bench", records);
      latencies.push(performance.now() - t0);
      n++;
    }
  }
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const elapsed = (performance.now() - start) / 1000;
  const stats = log.stats();
  latencies.sort((a, b) => a - b);
  const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!.toFixed(2);
  console.log(
    `append concurrency=${String(concurrency).padStart(4)} records/append=${String(recordsPerAppend).padStart(3)}: ` +
      `${Math.round(stats.appends / elapsed)} appends/s, ${Math.round(stats.records / elapsed)} records/s, ` +
      `${(stats.syncs / stats.appends).toFixed(3)} syncs/append, ${(stats.appends / stats.groups).toFixed(1)} appends/group, ` +
      `latency p50 ${p(0.5)} ms p99 ${p(0.99)} ms`,
  );
  if (concurrency === 256 && recordsPerAppend === 1) await readCase(log);
  await log.close();
  await rm(dir, { recursive: true, force: true });
}

async function readCase(log: LocalEventLog): Promise<void> {
  const ends = await log.endOffsets("bench");
  const start = performance.now();
  let records = 0;
  let bytes = 0;
  for (let p = 0; p < ends.length; p++) {
    let next = 0;
    while (next < ends[p]!) {
      const batch = await log.read("bench", p, next, { maxRecords: 5000 });
      records += batch.length;
      for (const r of batch) bytes += r.value.length;
      next = batch[batch.length - 1]!.offset + 1;
    }
  }
  const elapsed = (performance.now() - start) / 1000;
  console.log(
    `read (maxRecords=5000): ${Math.round(records / elapsed)} records/s, ${(bytes / elapsed / 1048576).toFixed(0)} MiB/s of values (${records} records)`,
  );
}

for (const [c, r] of [
  [1, 1],
  [16, 1],
  [256, 1],
  [1024, 1],
  [16, 100],
] as const) {
  await appendCase(c, r);
}
