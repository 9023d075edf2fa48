/**
 * The same load on 1, 2 and 3 instances of one installation (issue 19, "Scale, on paper and in a
 * simulation"; docs/cluster.md "Capacity on the rig").
 *
 * For each count: a fresh installation (its own PostgreSQL database and topic prefix) on the fault
 * rig's three brokers (scripts/kafka-cluster.sh), `runnel start` processes sharing 6 slots, running
 * the rig's workload (test/cluster/fraud-workload.ts: the fraud rule, a windowed pipeline, a
 * copying pipeline, analytics on every instance). Clients post the seed's transactions as fast as
 * they are answered for `--seconds`, round robin over the instances; then the clock runs until the
 * copy holds every event in the log (the pipelines have caught up). Measured: events acknowledged
 * per second while sending, events processed per second (in the log, over sending + catching up),
 * and CPU-seconds of each instance and of the three brokers over that time (/proc).
 *
 * This machine has 2 cores: every instance, the brokers and PostgreSQL share them, so more
 * instances cannot be faster here; the question is whether the work stays the same and nothing
 * collapses (the capacity model is in docs/cluster.md).
 *
 * Needs RUNNEL_TEST_DATABASE_URL (source /work/test-env.sh) and the rig (started if it is not).
 * Usage: flock -x /tmp/runnel-cpu.lock node --import tsx bench/cluster-capacity.ts [--seconds=60] [--instances=1,2,3] [--lanes=4]
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Admin } from "@platformatic/kafka";
import { createKafkaEventLog } from "../src/log/kafka/index.js";
import { BATCH, COPIED, createWorkload, eventsOf, INPUT } from "../test/cluster/fraud-workload.js";
import { Instance, waitFor } from "../test/cluster/instances.js";
import { readFrom, SteadyLoad } from "../test/cluster/load.js";
import { holdRig, kafkaCluster } from "../test/helpers/kafka-cluster.js";
import { onServer, postgresServerUrl, withDatabase } from "../test/helpers/postgres.js";
import { quickMode, writeResults } from "./report.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k!, v ?? "true"] as const;
  }),
);
// Quick mode (a sanity check): 5 s on one and on three instances.
const SECONDS = Number(args.get("seconds") ?? (quickMode() ? 5 : 60));
const COUNTS = (args.get("instances") ?? (quickMode() ? "1,3" : "1,2,3")).split(",").map(Number);
const LANES = Number(args.get("lanes") ?? 4);
const SLOTS = 6;
const TICKS_PER_SECOND = 100; // getconf CLK_TCK on Linux

/** CPU-seconds (user + system) a process has used so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

async function brokerPids(): Promise<number[]> {
  const dir = `/tmp/runnel-kafka-cluster-${process.env.RUNNEL_KAFKA_CLUSTER_PORT ?? 19192}`;
  return Promise.all([1, 2, 3].map(async (n) => Number((await readFile(`${dir}/node-${n}.pid`, "utf8")).trim())));
}

interface Run {
  readonly instances: number;
  readonly ackedPerSecond: number;
  readonly processedPerSecond: number;
  readonly catchUpSeconds: number;
  readonly events: number;
  readonly instanceCpuSeconds: number[];
  readonly brokerCpuSeconds: number;
  readonly loadAverage: number[];
}

async function measure(count: number, brokers: string): Promise<Run> {
  const tag = randomBytes(3).toString("hex");
  const server = postgresServerUrl();
  const name = `runnel_capacity_${tag}`;
  await onServer(server, `CREATE DATABASE ${name}`);
  const settings = {
    brokers,
    databaseUrl: withDatabase(server, name),
    topicPrefix: `runnel-bench-cap-${tag}-`,
    installation: `cap-${tag}`,
    slots: SLOTS,
  };
  const members = Array.from({ length: count }, (_, i) => new Instance(String.fromCharCode(97 + i), settings));
  const log = createKafkaEventLog({
    brokers: brokers.split(","),
    clientId: "runnel-bench-cap",
    topicPrefix: settings.topicPrefix,
  });
  try {
    const [first] = members as [Instance];
    await first.start();
    const token = await first.login();
    await createWorkload(async (path, body) => {
      const res = await fetch(`${first.url}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const answer = (await res.json()) as Record<string, unknown>;
      if (res.status !== 201) throw new Error(`${path}: ${res.status} ${JSON.stringify(answer)}`);
      return answer;
    }, SLOTS);
    await Promise.all(members.slice(1).map((m) => m.start()));
    await waitFor("the instances to share the slots", 90_000, () => {
      const owned = members.flatMap((m) => m.owned());
      return owned.length === SLOTS && members.every((m) => m.owned().length > 0) ? true : undefined;
    });
    for (const m of members) {
      await waitFor(`${m.id} ready`, 60_000, async () => ((await m.get("/readyz")).status === 200 ? true : undefined));
    }
    await log.open();
    const pids = members.map((m) => m.pid);
    const kafka = await brokerPids();
    const cpu0 = await Promise.all(pids.map(cpuSeconds));
    const kafka0 = await Promise.all(kafka.map(cpuSeconds));
    const load = new SteadyLoad(() => members, token, INPUT, {
      batch: BATCH,
      pauseMs: 0,
      makeEvents: eventsOf,
      timeoutMs: 20_000,
      lanes: LANES,
    });
    const started = Date.now();
    load.start();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    await load.stop();
    const sentFor = (Date.now() - started) / 1000;
    // Records, not end offsets: both topics are written in transactions, whose markers take offsets.
    const inLog = (await readFrom(log, INPUT)).length;
    let copied = 0;
    await waitFor("the copy to hold every event", 300_000, async () => {
      copied = (await readFrom(log, COPIED)).length;
      return copied >= inLog ? true : undefined;
    }).catch((e: Error) => {
      throw new Error(`${e.message}: the copy holds ${copied} of ${inLog} events`);
    });
    const done = (Date.now() - started) / 1000;
    const cpu1 = await Promise.all(pids.map(cpuSeconds));
    const kafka1 = await Promise.all(kafka.map(cpuSeconds));
    return {
      instances: count,
      ackedPerSecond: Math.round(load.acked.size / sentFor),
      processedPerSecond: Math.round(inLog / done),
      catchUpSeconds: Math.round((done - sentFor) * 10) / 10,
      events: inLog,
      instanceCpuSeconds: cpu1.map((c, i) => Math.round((c - cpu0[i]!) * 10) / 10),
      brokerCpuSeconds: Math.round(kafka1.reduce((s, c, i) => s + c - kafka0[i]!, 0) * 10) / 10,
      loadAverage: (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).map(Number),
    };
  } finally {
    await log.close().catch(() => undefined);
    await Promise.all(members.map((m) => m.remove()));
    await onServer(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    const admin = new Admin({ clientId: "runnel-bench-cap", bootstrapBrokers: brokers.split(",") });
    try {
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(settings.topicPrefix));
      if (topics.length > 0) await admin.deleteTopics({ topics });
    } finally {
      await admin.close();
    }
  }
}

const hold = await holdRig();
try {
  const rig = await kafkaCluster();
  const runs: Run[] = [];
  for (const count of COUNTS) {
    const run = await measure(count, rig.brokers);
    runs.push(run);
    console.log(JSON.stringify(run));
  }
  console.log("| instances | acknowledged/s | processed/s | catch-up | CPU-s per instance | CPU-s brokers | load |");
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  for (const r of runs) {
    console.log(
      `| ${r.instances} | ${r.ackedPerSecond} | ${r.processedPerSecond} | ${r.catchUpSeconds} s | ${r.instanceCpuSeconds.join(", ")} | ${r.brokerCpuSeconds} | ${r.loadAverage.join(" ")} |`,
    );
  }
  const path = await writeResults("cluster-capacity", {
    comparisons: [],
    seconds: SECONDS,
    lanes: LANES,
    runs,
  });
  console.log(`results: ${path}`);
} finally {
  await hold.release();
}
