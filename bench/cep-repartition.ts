/**
 * What the repartition hop costs a rule keyed by a field other than user_id (docs/cep.md, "Keyed by
 * any field"). The CEP benchmark's seed rule (`large{4,}` within 5m, past_last_event) over the seed
 * workload's events (its users folded onto 20,000, so the rule matches), appended to a local log of 4 partitions and read by the RuleManager with a
 * local-file checkpoint store and a PGlite control store (alerts stored), twice per round:
 * - keyed by `user_id`, the partition key: one task per partition reads the stream;
 * - keyed by `device`, a field each event carries with the same value as its user_id: the same
 *   matches, but every event goes through the rule's repartition stage (a copy into
 *   `__repartition_rule_<id>`, durable, checkpointed) before the rule's tasks read it.
 * Each run appends the events in batches of 1,000 and waits until the rule has taken them all;
 * events per second of wall and of process CPU time (appends, the stage, the rule and PGlite
 * included, on both sides). The first round is a warm-up and is dropped; medians of the rest.
 *
 * Usage: flock -x /tmp/runnel-cpu.lock node --import tsx bench/cep-repartition.ts [events] [rounds]
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RuleManager } from "../src/cep/manager.js";
import { EVENT_META } from "../src/cep/operator.js";
import { createPgliteControlStore } from "../src/control/index.js";
import { LocalEventLog } from "../src/log/local/index.js";
import type { AppendRecord } from "../src/log/types.js";
import { LocalFileCheckpointStore } from "../src/runtime/checkpoint/local.js";
import { workload } from "./lib/cep-workload.js";
import { type Comparison, quickMode, ratio, writeResults } from "./report.js";

const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const EVENTS = Number(args[0] ?? (quickMode() ? 50_000 : 200_000));
const ROUNDS = Number(args[1] ?? (quickMode() ? 2 : 4));
const PARTITIONS = 4;
const BATCH = 1000;
const USERS = 20_000;

type Variant = "user_id" | "device";

interface Run {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly alerts: number;
  /** SHA-256 of the alerts' keys and amounts, sorted: equal on both sides when the hop changes nothing. */
  readonly sha256: string;
}

const encoder = new TextEncoder();

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** The seed workload as log records: user `u<n>` is the record's key, its user_id and its device. */
function records(): AppendRecord[] {
  const w = workload("seed", EVENTS);
  return w.values.map((v, i) => {
    // 20,000 of the workload's 100,000 users, so the rule matches (about ten events a user).
    const user = `u${Number((w.keys[i] as string).slice(1)) % USERS}`;
    const { [EVENT_META]: _, ...value } = v;
    return {
      key: user,
      timestamp: w.ts[i] as number,
      value: encoder.encode(JSON.stringify({ ...value, user_id: user, device: user })),
    };
  });
}

async function run(variant: Variant, input: readonly AppendRecord[]): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), "runnel-bench-repartition-"));
  const log = new LocalEventLog({ dir: join(dir, "log") });
  await log.open();
  const control = createPgliteControlStore();
  await control.open();
  try {
    await log.createStream("transactions", { partitions: PARTITIONS });
    const rules = new RuleManager({
      control,
      log,
      checkpoints: new LocalFileCheckpointStore(join(dir, "checkpoints")),
      streamExists: async () => true,
    });
    // Every alert as it is raised (listAlerts stops at 1,000).
    const lines: string[] = [];
    rules.onAlert((a) => lines.push(`${a.key}|${(a.events as { amount: number }[]).map((e) => e.amount).join(",")}`));
    await rules.open();
    const seed = workload("seed", 0).rule;
    const rule = await rules.create({ ...seed, key: variant });
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < input.length; i += BATCH) await log.append("transactions", input.slice(i, i + BATCH));
    // The stage releases copies as event time passes them: wait until the rule has read every event.
    while ((await rules.get(rule.id)).stats.eventsIn < input.length) await new Promise((r) => setTimeout(r, 5));
    await rules.idle();
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    await rules.stop();
    lines.sort();
    return {
      seconds,
      cpuSeconds: (used.user + used.system) / 1e6,
      alerts: lines.length,
      sha256: createHash("sha256").update(lines.join("\n")).digest("hex"),
    };
  } finally {
    await control.close();
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const input = records();
const runs: Record<Variant, Run[]> = { user_id: [], device: [] };
for (let round = 0; round < ROUNDS; round++) {
  // Alternating, so drift in the machine's load falls on both sides alike.
  for (const variant of round % 2 === 0 ? (["user_id", "device"] as const) : (["device", "user_id"] as const)) {
    const r = await run(variant, input);
    console.log(
      `round ${round} ${variant}: ${Math.round(EVENTS / r.seconds)} events/s, ${Math.round(EVENTS / r.cpuSeconds)} events/CPU-s, ${r.alerts} alerts`,
    );
    if (round > 0) runs[variant].push(r);
  }
}

const summary = (rs: readonly Run[]) => ({
  eventsPerSecond: {
    median: Math.round(EVENTS / median(rs.map((r) => r.seconds))),
    runs: rs.map((r) => Math.round(EVENTS / r.seconds)),
  },
  eventsPerCpuSecond: {
    median: Math.round(EVENTS / median(rs.map((r) => r.cpuSeconds))),
    runs: rs.map((r) => Math.round(EVENTS / r.cpuSeconds)),
  },
  alerts: rs[0]?.alerts ?? 0,
  sha256: rs[0]?.sha256 ?? "",
});
const device = summary(runs.device);
const byUser = summary(runs.user_id);
const equal = [...runs.device, ...runs.user_id].every((r) => r.sha256 === byUser.sha256);
const comparisons: Comparison[] = [
  {
    measure: "CEP seed rule keyed by a non-partition field (repartitioned)",
    runnel: device.eventsPerCpuSecond.median,
    peer: byUser.eventsPerCpuSecond.median,
    peerName: "Runnel, the same rule keyed by user_id (no repartition)",
    ratio: ratio(device.eventsPerCpuSecond.median, byUser.eventsPerCpuSecond.median),
    unit: "events/CPU-s",
    outputsEqual: equal,
    caveat: `${EVENTS.toLocaleString("en")} events appended in batches of ${BATCH} to a local log of ${PARTITIONS} partitions, appends and PGlite in the same process; medians of ${ROUNDS - 1} rounds after a warm-up; wall events/s ${device.eventsPerSecond.median.toLocaleString("en")} vs ${byUser.eventsPerSecond.median.toLocaleString("en")}`,
  },
];
const path = await writeResults("cep-repartition", { comparisons, events: EVENTS, device, userId: byUser });
console.log(JSON.stringify(comparisons[0], null, 2));
console.log(`written to ${path}`);
