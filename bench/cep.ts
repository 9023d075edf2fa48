/**
 * CEP benchmark (issue 6). Usage:
 *   node --import tsx bench/cep.ts [events=1000000] [runs=3] [latencySeconds=30] [--only=throughput|latency]
 *     [--server-node-options="--cpu-prof --cpu-prof-dir=/tmp/prof"]   (NODE_OPTIONS of the latency server)
 * Writes bench/results/cep.json with the machine description (not with --only, which prints a
 * part's figures for quick iterations and leaves the recorded results alone).
 *
 * - throughput: events/s through the seed's rule (`large{4,}` within 5m, past_last_event) and
 *   through a three-step sequence (`a followedBy b followedBy c within 10m`) with 100,000 keys
 *   holding partial matches, events already decoded, on one core: Runnel's CepOperator, and
 *   Apache Flink's own NFA (tools/flinkcep-oracle `bench` mode, per key a heap shared buffer,
 *   advanceTime + process per event, `taskset` to one core, one active processor for the JVM) over
 *   the same events with the same patterns, in the same run; medians after a warm-up round;
 * - memory: V8 heap per partial match left in the seed rule's operator after a run;
 * - alert latency: the real server (a child process) takes 20,000 events/s over HTTP in
 *   sequential batches; probe users complete the seed's rule in a batch, and the time from that
 *   batch's acknowledgement to the alert on /api/v1/alerts/stream is recorded (p50/p99; an alert
 *   that arrives before the acknowledgement counts as 0; one that has not arrived 5 s after the
 *   end is counted as missing and as the longest latency, not left out).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { CepOperator } from "../src/cep/operator.js";
import { compileRule } from "../src/cep/rule/compile.js";
import { validateRuleSpec } from "../src/cep/rule/spec.js";
import { Client } from "../test/helpers/http.js";
import { rng } from "../test/helpers/rng.js";
import { ADMIN_PASSWORD, startServerProcess, tempDataDir } from "../test/helpers/server-process.js";

const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const ONLY = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length);
if (ONLY !== undefined && ONLY !== "throughput" && ONLY !== "latency")
  throw new Error(`--only=${ONLY}: throughput or latency`);
const SERVER_NODE_OPTIONS = process.argv
  .find((a) => a.startsWith("--server-node-options="))
  ?.split("=")
  .slice(1)
  .join("=");
const EVENTS = Number(args[0] ?? 1_000_000);
const RUNS = Number(args[1] ?? 3);
// About 9 probes a second: 10 s made the p99 the single slowest of ~94 probes; 30 s gives ~280.
const LATENCY_SECONDS = Number(args[2] ?? 30);
const KEYS = 100_000;
const LATENCY_RATE = 20_000;
const ROOT = join(import.meta.dirname, "..");
const T0 = Date.UTC(2025, 0, 6);

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}
function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

interface Workload {
  readonly name: string;
  readonly rule: Record<string, unknown>;
  /** The same pattern for the oracle (its condition format: type IN (…) AND v >= minV). */
  readonly flink: Record<string, unknown>;
  readonly keys: string[];
  readonly ts: Float64Array;
  readonly values: Array<{ event_type: string; amount: number }>;
}

/**
 * Keys drawn uniformly, event time advancing evenly over `spanMs`: every key sees an event about
 * every spanMs·KEYS/EVENTS, inside both rules' windows, so all 100,000 keys hold partial matches.
 */
function workload(name: "seed" | "sequence", seed: number): Workload {
  const r = rng(seed);
  const spanMs = name === "seed" ? 10 * 60_000 : 20 * 60_000;
  const keys: string[] = new Array(EVENTS);
  const ts = new Float64Array(EVENTS);
  const values: Array<{ event_type: string; amount: number }> = new Array(EVENTS);
  const names = Array.from({ length: KEYS }, (_, i) => `u${i}`);
  for (let i = 0; i < EVENTS; i++) {
    keys[i] = names[Math.floor(r() * KEYS)] as string;
    ts[i] = T0 + Math.floor((i / EVENTS) * spanMs);
    if (name === "seed") {
      const type = r() < 0.95 ? "transaction" : "refund";
      values[i] = { event_type: type, amount: Math.round(r() * 100_000) / 100 };
    } else {
      values[i] = { event_type: "abcd"[Math.floor(r() * 4)] as string, amount: 1 };
    }
  }
  const step = (n: string, types: string[], minV: number | null, extra: Record<string, unknown> = {}) => ({
    name: n,
    contiguity: "followedBy",
    where: { types, minV, sumMax: null },
    quantifier: { kind: "one" },
    ...extra,
  });
  if (name === "seed") {
    return {
      name,
      keys,
      ts,
      values,
      rule: {
        name: "burst-of-large-transactions",
        stream: "transactions",
        pattern: [{ name: "large", where: "event_type = 'transaction' AND amount > 500", times: { min: 4 } }],
        within: "5m",
        skip: "past_last_event",
        actions: [{ type: "alert" }],
      },
      // Amounts have two decimals, so v >= 500.01 is amount > 500.
      flink: {
        steps: [step("large", ["transaction"], 500.01, { quantifier: { kind: "timesOrMore", from: 4 } })],
        within: 300_000,
        skip: "past_last_event",
      },
    };
  }
  return {
    name,
    keys,
    ts,
    values,
    rule: {
      name: "a-b-c",
      stream: "events",
      pattern: [
        { name: "a", where: "event_type = 'a'" },
        { name: "b", where: "event_type = 'b'", contiguity: "followedBy" },
        { name: "c", where: "event_type = 'c'", contiguity: "followedBy" },
      ],
      within: "10m",
      actions: [{ type: "alert" }],
    },
    flink: {
      steps: [step("a", ["a"], null), step("b", ["b"], null), step("c", ["c"], null)],
      within: 600_000,
      skip: "no_skip",
    },
  };
}

interface RunnelRun {
  eps: number;
  matches: number;
  keys: number;
  partialMatches: number;
  heapBytes: number;
}

function runnelRun(w: Workload): RunnelRun {
  const compiled = compileRule(validateRuleSpec(w.rule));
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  let matches = 0;
  const op = new CepOperator(compiled, {
    onMatch: () => {
      matches++;
    },
  });
  const { keys, ts, values } = w;
  const start = performance.now();
  for (let i = 0; i < keys.length; i++) op.process(keys[i] as string, ts[i] as number, values[i] as never);
  const seconds = (performance.now() - start) / 1000;
  gc();
  const heapBytes = process.memoryUsage().heapUsed - heapBefore;
  const partialMatches = op.partialMatchCount();
  return { eps: keys.length / seconds, matches, keys: op.activeKeys, partialMatches, heapBytes };
}

interface FlinkRun {
  eventsPerSecond: number[];
  matches: number;
  partialMatches: number;
  keys: number;
}

function flinkRun(w: Workload, classpath: string): FlinkRun {
  const events = w.keys.map((k, i) => ({
    k,
    ts: w.ts[i],
    type: (w.values[i] as { event_type: string }).event_type,
    v: (w.values[i] as { amount: number }).amount,
  }));
  const input = `${JSON.stringify({ id: 1, ...w.flink, events, rounds: RUNS + 1 })}\n`;
  const java = ["java", "-Xss4m", "-Xmx6g", "-XX:ActiveProcessorCount=1", "-XX:+UseSerialGC"];
  const cmd = hasTaskset() ? ["taskset", "-c", "1", ...java] : java;
  const r = spawnSync(cmd[0] as string, [...cmd.slice(1), "-cp", classpath, "dev.runnel.oracle.Oracle", "bench"], {
    input,
    encoding: "utf8",
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`oracle failed (${r.status}): ${r.stderr}`);
  // JVM warnings may share stdout; the result is the one JSON line.
  const line = r.stdout.split("\n").find((l) => l.startsWith("{")) ?? "{}";
  const out = JSON.parse(line) as {
    roundSeconds?: number[];
    matches: number;
    partialMatches: number;
    keys: number;
    error?: string;
  };
  if (out.error !== undefined) throw new Error(`oracle: ${out.error}`);
  // The first round warms the JIT up; the rest are measured, as Runnel's runs are.
  const rounds = (out.roundSeconds ?? []).slice(1);
  return {
    eventsPerSecond: rounds.map((s) => w.keys.length / s),
    matches: out.matches,
    partialMatches: out.partialMatches,
    keys: out.keys,
  };
}

function hasTaskset(): boolean {
  return spawnSync("taskset", ["-c", "1", "true"]).status === 0;
}

interface LatencyRun {
  p50: number;
  p99: number;
  max: number;
  /** Acknowledgement → the runner beginning to store the alert (server clock, 1 ms resolution). */
  ackToStoreP50: number;
  ackToStoreP99: number;
  samples: number;
  /** Probes acknowledged whose alert never came (within 5 s of the end). */
  missing: number;
  /** Batches refused (not 200), each dropped. */
  refused: number;
  eventsPerSecond: number;
}

async function latencyRun(): Promise<LatencyRun> {
  const data = await tempDataDir();
  const server = await startServerProcess(data.dir, {
    RUNNEL_LOG_LEVEL: "error",
    ...(SERVER_NODE_OPTIONS === undefined ? {} : { NODE_OPTIONS: SERVER_NODE_OPTIONS }),
  });
  try {
    const login = await new Client(server.url).post<{ token: string }>("/api/v1/auth/login", {
      username: "admin",
      password: ADMIN_PASSWORD,
    });
    const token = login.body.token;
    const admin = new Client(server.url, token);
    await admin.post("/api/v1/streams", { name: "transactions", partitions: 4 });
    const rule = await admin.post("/api/v1/rules", workload("seed", 1).rule);
    if (rule.status !== 201) throw new Error(`rule: ${JSON.stringify(rule.body)}`);
    const arrived = new Map<string, number>();
    // Wall-clock time the server stamped on the alert as its runner began storing it.
    const detected = new Map<string, number>();
    const ackedWall = new Map<string, number>();
    const sse = new AbortController();
    const res = await fetch(`${server.url}/api/v1/alerts/stream`, {
      headers: { authorization: `Bearer ${token}` },
      signal: sse.signal,
    });
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buf = "";
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
          let i = buf.indexOf("\n\n");
          while (i >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = frame.split("\n").find((l) => l.startsWith("data: "));
            if (data !== undefined) {
              const alert = JSON.parse(data.slice(6)) as { key: string; detectedAt: string };
              if (alert.key.startsWith("probe") && !arrived.has(alert.key)) {
                arrived.set(alert.key, performance.now());
                detected.set(alert.key, Date.parse(alert.detectedAt));
              }
            }
            i = buf.indexOf("\n\n");
          }
        }
      } catch {
        // aborted at the end
      }
    })();

    // Sequential batches carrying what 20,000 events/s accumulates since the last send; every
    // 100 ms a probe user's four large transactions, the fourth in the next batch.
    const r = rng(7);
    const acked = new Map<string, number>();
    let probes = 0;
    let refused = 0;
    let opening: string | undefined;
    const start = performance.now();
    let last = start;
    let nextProbe = start + 2000;
    const warmupEnd = start + 2000;
    let measuredEvents = 0;
    while (performance.now() - start < (LATENCY_SECONDS + 2) * 1000) {
      const now = performance.now();
      const n = Math.max(1, Math.round(((now - last) / 1000) * LATENCY_RATE));
      last = now;
      const ts = Date.now();
      const batch: Record<string, unknown>[] = [];
      for (let i = 0; i < n; i++) {
        batch.push({
          user_id: `u${Math.floor(r() * KEYS)}`,
          event_type: "transaction",
          amount: Math.round(r() * 60_000) / 100,
          timestamp: ts,
        });
      }
      let closing: string | undefined;
      if (opening !== undefined) {
        batch.push({ user_id: opening, event_type: "transaction", amount: 900, timestamp: ts });
        closing = opening;
        opening = undefined;
      } else if (now >= nextProbe) {
        opening = `probe${probes++}`;
        for (let i = 0; i < 3; i++)
          batch.push({ user_id: opening, event_type: "transaction", amount: 900, timestamp: ts });
        nextProbe = now + 100;
      }
      const reply = await admin.post("/api/v1/streams/transactions/events", batch);
      if (reply.status !== 200) {
        refused++;
        await new Promise((res) => setTimeout(res, 10));
        continue;
      }
      if (now >= warmupEnd) measuredEvents += batch.length;
      if (closing !== undefined) {
        acked.set(closing, performance.now());
        ackedWall.set(closing, Date.now());
      }
      const wait = 1000 / 100 - (performance.now() - now);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    }
    const elapsed = (performance.now() - warmupEnd) / 1000;
    // Let the last alerts arrive.
    for (let i = 0; i < 200 && [...acked.keys()].some((k) => !arrived.has(k)); i++) {
      await new Promise((res) => setTimeout(res, 25));
    }
    sse.abort();
    await reading;
    const lat: number[] = [];
    const toDetected: number[] = [];
    for (const [key, at] of ackedWall) {
      const d = detected.get(key);
      if (d !== undefined) toDetected.push(Math.max(0, d - at));
    }
    let missing = 0;
    for (const [key, at] of acked) {
      const got = arrived.get(key);
      if (got === undefined) {
        missing++;
        lat.push(Number.POSITIVE_INFINITY);
      } else lat.push(Math.max(0, got - at));
    }
    return {
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      max: percentile(lat, 100),
      ackToStoreP50: percentile(toDetected, 50),
      ackToStoreP99: percentile(toDetected, 99),
      samples: lat.length,
      missing,
      refused,
      eventsPerSecond: measuredEvents / elapsed,
    };
  } finally {
    await server.kill();
    await data.remove();
  }
}

const results: Record<string, unknown> = {};
let memory: { bytesPerPartialMatch: number; partialMatches: number; keys: number } | undefined;
if (ONLY !== "latency") {
  const classpath = execFileSync("bash", [join(ROOT, "scripts", "cep-oracle.sh")], { encoding: "utf8" }).trim();
  for (const name of ["seed", "sequence"] as const) {
    const w = workload(name, name === "seed" ? 1 : 2);
    runnelRun(w); // warm-up, as Flink's first round
    const runs: RunnelRun[] = [];
    for (let i = 0; i < RUNS; i++) {
      const run = runnelRun(w);
      runs.push(run);
      console.log(
        `${name} runnel run ${i + 1}: ${Math.round(run.eps).toLocaleString("en")} events/s, ${run.matches} matches, ${run.keys} keys, ${run.partialMatches} partial matches`,
      );
    }
    const flink = flinkRun(w, classpath);
    console.log(
      `${name} flink: ${flink.eventsPerSecond.map((e) => Math.round(e).toLocaleString("en")).join(", ")} events/s, ${flink.matches} matches`,
    );
    const runnelEps = median(runs.map((r) => r.eps));
    const flinkEps = median(flink.eventsPerSecond);
    const lastRun = runs[runs.length - 1] as RunnelRun;
    if (name === "seed") {
      memory = {
        bytesPerPartialMatch: Math.round(lastRun.heapBytes / Math.max(1, lastRun.partialMatches)),
        partialMatches: lastRun.partialMatches,
        keys: lastRun.keys,
      };
    }
    results[name] = {
      rule: w.rule,
      events: EVENTS,
      keys: KEYS,
      activeKeysAtEnd: lastRun.keys,
      partialMatchesAtEnd: lastRun.partialMatches,
      matches: lastRun.matches,
      runnelEventsPerSecond: { median: Math.round(runnelEps), runs: runs.map((r) => Math.round(r.eps)) },
      flinkEventsPerSecond: { median: Math.round(flinkEps), runs: flink.eventsPerSecond.map(Math.round) },
      flinkMatches: flink.matches,
      runnelToFlink: Number((runnelEps / flinkEps).toFixed(2)),
    };
    console.log(`${name}: runnel/flink = ${(runnelEps / flinkEps).toFixed(2)}`);
  }
}

const latencies: LatencyRun[] = [];
if (ONLY !== "throughput") {
  for (let i = 0; i < RUNS; i++) {
    const l = await latencyRun();
    latencies.push(l);
    console.log(
      `latency run ${i + 1}: p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, max ${l.max.toFixed(1)} ms (ack → store p50 ${l.ackToStoreP50} ms, p99 ${l.ackToStoreP99} ms) over ${l.samples} probes (${l.missing} missing, ${l.refused} batches refused) at ${Math.round(l.eventsPerSecond).toLocaleString("en")} events/s`,
    );
  }
}

const cpus = os.cpus();
const report = {
  benchmark: "cep",
  results,
  memory,
  alertLatencyMs:
    latencies.length === 0
      ? undefined
      : {
          targetEventsPerSecond: LATENCY_RATE,
          reachedEventsPerSecond: Math.round(median(latencies.map((l) => l.eventsPerSecond))),
          p50: Number(median(latencies.map((l) => l.p50)).toFixed(2)),
          p99: Number(median(latencies.map((l) => l.p99)).toFixed(2)),
          runs: latencies.map((l) => ({
            ...l,
            p50: Number(l.p50.toFixed(2)),
            p99: Number(l.p99.toFixed(2)),
            // null when an alert went missing
            max: Number.isFinite(l.max) ? Number(l.max.toFixed(2)) : null,
            eventsPerSecond: Math.round(l.eventsPerSecond),
          })),
        },
  target: { runnelToFlink: 1, p99AlertLatencyMs: 20, atEventsPerSecond: LATENCY_RATE },
  runs: RUNS,
  flinkSetup: `flink-cep 1.20 NFA with heap shared buffers, ${spawnSync("java", ["-version"], { encoding: "utf8" }).stderr.split("\n")[0]}; ${hasTaskset() ? "taskset -c 1, " : ""}-XX:ActiveProcessorCount=1 -XX:+UseSerialGC`,
  machine: {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    totalMemoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    // Other processes share the cores: figures under load understate both engines.
    loadAverage1m: Number((os.loadavg()[0] ?? 0).toFixed(2)),
  },
  measuredAt: new Date().toISOString(),
};
if (ONLY === undefined) {
  await writeFile(new URL("./results/cep.json", import.meta.url), `${JSON.stringify(report, null, 2)}\n`);
}
console.log(JSON.stringify({ results, memory, alertLatencyMs: report.alertLatencyMs }, null, 2));
