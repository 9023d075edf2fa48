/**
 * CEP rule-job throughput (issue 16): the seed's rule (bench/lib/cep-workload.ts) through the
 * runtime, not the bare operator (bench/cep.ts measures that): a RuleRunner over a local log of 4
 * partitions, reading, decoding, matching, handing matches to a sink (here: hashed) and
 * checkpointing into the local-file checkpoint store (the server's default) every second and on
 * stop.
 *   node --import tsx bench/cep-job.ts [events=500000] [runs=5] [checkpointEveryMs=1000]
 * Per run, a new log is filled before timing; the rule starts at its beginning (a first runner on
 * the empty stream checkpointed position 0) and is timed from start until it has processed every
 * event and stopped. Prints events per CPU-second of the process (all threads) and per wall
 * second, per run and their medians, and the number of matches and a SHA-256 of them (equal on every run, and to compare with another version);
 * writes bench/results/cep-job.json. RUNNEL_BENCH_QUICK=1: 100,000 events, one run.
 * Run it under the CPU lock: flock -x /tmp/runnel-cpu.lock node --import tsx bench/cep-job.ts
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { EVENT_META } from "../src/cep/operator.js";
import { compileRule } from "../src/cep/rule/compile.js";
import { validateRuleSpec } from "../src/cep/rule/spec.js";
import { RuleRunner } from "../src/cep/runner.js";
import { LocalEventLog } from "../src/log/local/index.js";
import type { AppendRecord } from "../src/log/types.js";
import { LocalFileCheckpointStore } from "../src/runtime/checkpoint/local.js";
import type { CheckpointStore } from "../src/runtime/checkpoint/store.js";
import { workload } from "./lib/cep-workload.js";
import { linesHash, quickMode, writeResults } from "./report.js";

const [eventsArg, runsArg, intervalArg] = process.argv.slice(2);
const EVENTS = Number(eventsArg ?? (quickMode() ? 100_000 : 500_000));
const RUNS = Number(runsArg ?? (quickMode() ? 1 : 5));
/** The rule's checkpoint interval, ms (the server's: 1000). */
const CHECKPOINT_EVERY_MS = Number(intervalArg ?? 1000);
const PARTITIONS = 4;

const w = workload("seed", EVENTS);
const compiled = compileRule(validateRuleSpec(w.rule));
const encoder = new TextEncoder();
const records: AppendRecord[] = w.keys.map((key, i) => {
  const v = w.values[i] as { event_type: string; amount: number };
  const ts = w.ts[i] as number;
  return {
    key,
    timestamp: ts,
    value: encoder.encode(JSON.stringify({ user_id: key, event_type: v.event_type, amount: v.amount, timestamp: ts })),
  };
});

interface Run {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly matches: number;
  /** SHA-256 over the sorted match lines (key and matched events' positions). */
  readonly sha256: string;
  readonly checkpoints: { readonly bases: number; readonly deltas: number; readonly bytes: number };
}

async function run(): Promise<Run> {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-bench-cep-job-"));
  const log = new LocalEventLog({ dir: join(dir, "log") });
  await log.open();
  try {
    await log.createStream("transactions", { partitions: PARTITIONS });
    const store = new LocalFileCheckpointStore(join(dir, "checkpoints"));
    // Counts what the timed runner writes, so versions can be compared by their checkpoints too.
    const written = { bases: 0, deltas: 0, bytes: 0 };
    const checkpoints: CheckpointStore = {
      claim: (task, owner) => store.claim(task, owner),
      read: (task) => store.read(task),
      list: (prefix) => store.list(prefix),
      drop: (task, epoch) => store.drop(task, epoch),
      close: () => store.close(),
      write: (task, epoch, kind, data) => {
        if (kind === "base") written.bases++;
        else written.deltas++;
        written.bytes += data.length;
        return store.write(task, epoch, kind, data);
      },
    };
    const lines: string[] = [];
    const runner = () =>
      new RuleRunner({
        log,
        ruleId: "seed",
        stream: "transactions",
        compiled,
        checkpoints,
        owner: "bench",
        checkpointEveryMs: CHECKPOINT_EVERY_MS,
        sink: async (ms) => {
          // Key and the log positions of the matched events: a faster wrong answer changes the hash.
          for (const m of ms) {
            const ids: string[] = [];
            for (const es of m.match.values()) for (const e of es) ids.push(e[EVENT_META]?.id ?? "?");
            lines.push(`${m.key}|${m.timedOut ? "t" : "m"}|${ids.sort().join(",")}`);
          }
        },
      });
    // Where the rule starts: the beginning of the (still empty) stream.
    const first = runner();
    await first.start();
    await first.stop();
    for (let i = 0; i < records.length; i += 10_000) await log.append("transactions", records.slice(i, i + 10_000));
    Object.assign(written, { bases: 0, deltas: 0, bytes: 0 });
    const timed = runner();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await timed.start();
    while (timed.recordsIn < EVENTS) await timed.idle();
    await timed.stop();
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return {
      seconds,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      matches: lines.length,
      sha256: linesHash(lines),
      checkpoints: written,
    };
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

const runs: Run[] = [];
for (let i = 0; i < RUNS; i++) {
  const r = await run();
  runs.push(r);
  console.log(
    `run ${i + 1}: ${Math.round(EVENTS / r.cpuSeconds).toLocaleString("en")} events/CPU-s, ${Math.round(EVENTS / r.seconds).toLocaleString("en")} events/s, ${r.matches} matches, checkpoints: ${r.checkpoints.bases} full + ${r.checkpoints.deltas} deltas, ${(r.checkpoints.bytes / 1e6).toFixed(1)} MB`,
  );
}
const summary = {
  events: EVENTS,
  partitions: PARTITIONS,
  checkpointEveryMs: CHECKPOINT_EVERY_MS,
  eventsPerCpuSecond: Math.round(median(runs.map((r) => EVENTS / r.cpuSeconds))),
  eventsPerSecond: Math.round(median(runs.map((r) => EVENTS / r.seconds))),
  matches: runs.map((r) => r.matches),
  sha256: runs[0]?.sha256,
  checkpoints: runs.map((r) => r.checkpoints),
};
await writeResults("cep-job", {
  comparisons: [
    {
      measure: "CEP seed rule as a job (log → rule → alerts, checkpoints)",
      runnel: summary.eventsPerCpuSecond,
      peer: null,
      peerName: "none (compare with an earlier version: docs/cep.md)",
      ratio: null,
      unit: "events/CPU-s",
      outputsEqual: null,
      caveat: `${EVENTS.toLocaleString("en")} events on a local log of ${PARTITIONS} partitions, local-file checkpoints every ${CHECKPOINT_EVERY_MS} ms, matches hashed (no alert store), unpinned; median of ${RUNS}`,
    },
  ],
  ...summary,
});
console.log(JSON.stringify(summary));
// Every run must find the same matches; compare `sha256` with another version's run to compare versions.
if (new Set(runs.map((r) => r.sha256)).size !== 1) {
  console.error("runs found different matches");
  process.exit(1);
}
