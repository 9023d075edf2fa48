/**
 * Sustained ingest into indexed streams (issue 17): a real `runnel start` child process (durable
 * local log with fdatasync group commit, the analytics loader and everything else running), 4
 * HTTP clients each keeping one NDJSON batch of 1,000 ~90-byte events in flight, for --seconds
 * (default 60) per run, into a stream with a JSON schema and into one without.
 *
 * Each run writes a stream of its own, then waits for the analytics store to load every event.
 * Its sustained rate is the lower of the acknowledged rate (acknowledged events over the load's
 * seconds) and the loaded rate (the same events over the seconds until the store held them all),
 * so a loader that falls behind shows up. Every acknowledged event is read back, per partition
 * (the bench places each event as the log does, by murmur2 of its user_id): the log's end minus
 * start offsets, and the analytics table's row count and its end (max _offset + 1), must equal
 * what was acknowledged there; and once the server has stopped, every record of the log and
 * every row of the table (DuckDB opened directly) is hashed field by field into an
 * order-independent digest (bench/lib/event-digest.ts) that must equal the digest of the
 * acknowledged events, or the benchmark fails (exit 1). The ceiling is JSON.parse on one core
 * over the same events in the same run (this process, the server idle); the ratio is the target's
 * (issue 17: at least 0.25 with a schema). Results through bench/report.ts (bench/results/ingest.json).
 *
 * Usage: node --import tsx bench/ingest.ts [--seconds=60] [--runs=3] [--modes=schema,no-schema]
 *        [--server-node-flags=--cpu-prof,--cpu-prof-dir=/tmp/prof]   (to profile the server)
 * Quick mode (RUNNEL_BENCH_QUICK=1): 5 s, one run.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { loadConfig } from "../src/config/config.js";
import { parseNdjson } from "../src/ingest/body.js";
import { StreamIngestor } from "../src/ingest/ingestor.js";
import { LocalEventLog } from "../src/log/local/local-event-log.js";
import { type EventLog, partitionForKey } from "../src/log/types.js";
import { createMetrics } from "../src/monitoring/metrics.js";
import { benchEventOf, digestOfLog, digestOfTable, EventDigest } from "./lib/event-digest.js";
import { type Comparison, quickMode, ratio, writeResults } from "./report.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const arg = a.replace(/^--/, "");
    const eq = arg.indexOf("=");
    return eq === -1 ? ([arg, "true"] as const) : ([arg.slice(0, eq), arg.slice(eq + 1)] as const);
  }),
);
const QUICK = quickMode();
const SECONDS = Number(args.get("seconds") ?? (QUICK ? 5 : 60));
const RUNS = Number(args.get("runs") ?? (QUICK ? 1 : 3));
const MODES = (args.get("modes") ?? "schema,no-schema").split(",") as Mode[];
const BATCH = 1000;
const CLIENTS = 4;
const PARTITIONS = 4;
/** Issue 17's target for the stream with a schema, as a fraction of one core's JSON.parse rate. */
const TARGET_FRACTION = 0.25;
/** How long the analytics store may take to load a run's events after the load stops. */
const CATCH_UP_LIMIT_S = 600;
const ROOT = new URL("..", import.meta.url).pathname;
const PASSWORD = "bench-password-1";
const JSON_LIMITS = loadConfig({}, {}).limits.json;

type Mode = "schema" | "no-schema";
const SCHEMA = {
  type: "object",
  properties: {
    user_id: { type: "string" },
    event_type: { type: "string" },
    amount: { type: "number" },
    page: { type: "string" },
    ts: { type: "integer" },
  },
  required: ["user_id", "event_type", "amount", "page", "ts"],
};

// ── events ──

interface Bodies {
  readonly bodies: readonly Buffer[];
  /** Each body's events as the log should hold them (with their partitions), digested. */
  readonly digestPerBody: readonly EventDigest[];
  /** Events per partition per body, placed as the log places them (murmur2 of user_id). */
  readonly partitionsPerBody: readonly (readonly number[])[];
  readonly lines: readonly string[];
  readonly eventBytes: number;
}

/** ~90-byte events with a user_id, varied so partitions and column types are exercised. */
function makeBodies(count: number): Bodies {
  const bodies: Buffer[] = [];
  const digestPerBody: EventDigest[] = [];
  const partitionsPerBody: number[][] = [];
  const lines: string[] = [];
  let n = 0;
  for (let b = 0; b < count; b++) {
    const batch: string[] = [];
    const placed = new Array<number>(PARTITIONS).fill(0);
    const digest = new EventDigest();
    for (let i = 0; i < BATCH; i++, n++) {
      const userId = `user_${n % 997}`;
      const partition = partitionForKey(userId, PARTITIONS);
      placed[partition]!++;
      const event = {
        user_id: userId,
        event_type: n % 5 === 0 ? "purchase" : "view",
        amount: (n % 10_000) / 100,
        page: `/p/${n % 313}`,
        ts: 1_764_000_000_000 + n,
      };
      digest.add(benchEventOf(partition, event));
      const line = JSON.stringify(event);
      batch.push(line);
      lines.push(line);
    }
    bodies.push(Buffer.from(`${batch.join("\n")}\n`));
    digestPerBody.push(digest);
    partitionsPerBody.push(placed);
  }
  const eventBytes = lines.reduce((s, l) => s + Buffer.byteLength(l), 0) / lines.length;
  return { bodies, digestPerBody, partitionsPerBody, lines, eventBytes };
}

/** JSON.parse alone over the same lines, one core: the ceiling ingest is compared with. */
function jsonParseRounds(lines: readonly string[], rounds: number): number[] {
  let sink = 0;
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    for (const l of lines) sink += (JSON.parse(l) as { amount: number }).amount > 0 ? 1 : 0;
    rates.push(lines.length / (Number(process.hrtime.bigint() - start) / 1e9));
  }
  if (sink < 0) console.log(sink);
  return rates;
}

/**
 * The ingest path alone in this process: NDJSON parse, validation and record building for the
 * same bodies, with a log that only counts (no I/O). Steadier than the end-to-end figure on a
 * shared machine, and the part of the cost the ingest code controls.
 */
async function ingestPathRate(bodies: readonly Buffer[]): Promise<number> {
  const log = {
    append: async (_stream: string, records: readonly unknown[]) =>
      records.map((_, offset) => ({ partition: 0, offset })),
  } as unknown as EventLog;
  const stream = { name: "bench", partitions: PARTITIONS, timestampField: "timestamp", createdAt: "" };
  const ingestor = new StreamIngestor({
    log,
    streams: { getStream: async () => stream },
    clock: { now: () => Date.now() },
    metrics: createMetrics(),
    maxEventBytes: 1 << 20,
  });
  const principal = { userId: "admin", username: "admin", role: "admin" as const };
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const start = process.hrtime.bigint();
    for (const body of bodies) {
      const { events, raw } = parseNdjson(body, JSON_LIMITS);
      await ingestor.ingest("bench", events, principal, { raw });
    }
    rounds.push((bodies.length * BATCH) / (Number(process.hrtime.bigint() - start) / 1e9));
  }
  return median(rounds);
}

// ── server ──

async function startServer(dataDir: string): Promise<{ url: string; child: ChildProcess }> {
  const nodeFlags = args.get("server-node-flags")?.split(",") ?? [];
  const child = spawn(
    process.execPath,
    [...nodeFlags, "--import", "tsx", join(ROOT, "bin/runnel.ts"), "start", "--port", "0"],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        RUNNEL_DATA_DIR: dataDir,
        RUNNEL_ADMIN_PASSWORD: PASSWORD,
        RUNNEL_LOG_LEVEL: "warn",
        RUNNEL_MAX_BODY_BYTES: "16MiB",
      },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString();
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`server exited ${code}: ${stderr}`)));
  });
  return { url, child };
}

async function json(url: string, method: string, body: unknown, token?: string): Promise<Record<string, unknown>> {
  const res = await fetch(url, {
    method,
    headers: { "content-type": "application/json", ...(token && { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

// ── load ──

interface Load {
  readonly events: number;
  /** Acknowledged events per partition. */
  readonly perPartition: readonly number[];
  /** The acknowledged events, digested. */
  readonly acknowledged: EventDigest;
  /** CPU of this process (the HTTP clients) per acknowledged event, µs: it shares the cores with the server. */
  readonly clientCpuUsPerEvent: number;
  readonly seconds: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly refused429: number;
}

interface Run extends Omit<Load, "acknowledged" | "perPartition"> {
  readonly stream: string;
  readonly acknowledgedPerS: number;
  /** Seconds from the load's start until the analytics store held every acknowledged event. */
  readonly loadedAfterS: number;
  readonly loadedPerS: number;
  /** The lower of the two: what the installation keeps up with. */
  readonly sustainedPerS: number;
  /** Read back: the log's end offsets minus start offsets summed, and the table's rows. */
  readonly logRecords: number;
  readonly analyticsRows: number;
  /** Digests (bench/lib/event-digest.ts) of the acknowledged events, the log's records and the table's rows. */
  readonly acknowledgedDigest: string;
  readonly logDigest: string;
  readonly analyticsDigest: string;
  /** Per partition: acknowledged, the log's end − start, the table's rows and end (max _offset + 1). */
  readonly acknowledgedByPartition: readonly number[];
  readonly logByPartition: readonly number[];
  readonly analyticsRowsByPartition: readonly number[];
  readonly analyticsEndByPartition: readonly number[];
  /** CPU time of the server per acknowledged event (µs), by thread name, from the load's start until loaded. */
  readonly serverCpuUsPerEvent: number;
  readonly serverCpuUsPerEventByThread: Record<string, number>;
}

function post(agent: http.Agent, url: URL, token: string, body: Buffer, stream: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method: "POST",
        path: `/api/v1/streams/${stream}/events`,
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/x-ndjson",
          "content-length": body.byteLength,
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function httpLoad(base: string, token: string, data: Bodies, seconds: number, stream: string): Promise<Load> {
  const url = new URL(base);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const latencies: number[] = [];
  const perPartition = new Array<number>(PARTITIONS).fill(0);
  let events = 0;
  const acknowledged = new EventDigest();
  let refused = 0;
  let next = 0;
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (performance.now() < end) {
        const i = next++ % data.bodies.length;
        const t0 = performance.now();
        const status = await post(agent, url, token, data.bodies[i]!, stream);
        if (status === 200) {
          latencies.push(performance.now() - t0);
          events += BATCH;
          acknowledged.addDigest(data.digestPerBody[i]!);
          data.partitionsPerBody[i]!.forEach((n, p) => {
            perPartition[p]! += n;
          });
        } else if (status === 429) {
          refused++;
          await new Promise((r) => setTimeout(r, 50));
        } else throw new Error(`ingest answered ${status}`);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  return {
    events,
    perPartition,
    acknowledged,
    clientCpuUsPerEvent: (cpu.user + cpu.system) / events,
    seconds: elapsed,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    refused429: refused,
  };
}

/** runnel_analytics_lag_records of one stream (computed at scrape), NaN before the loader follows it. */
async function analyticsLag(url: string, stream: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^runnel_analytics_lag_records\\{stream="${stream}"\\} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

async function tableRows(url: string, token: string, stream: string): Promise<number> {
  const res = await json(`${url}/api/v1/query`, "POST", { sql: `SELECT count(*) AS n FROM ${stream}` }, token);
  return Number((res.rows as unknown[][])[0]![0]);
}

/** The table's rows and end (max _offset + 1) per partition. */
async function tablePartitions(
  url: string,
  token: string,
  stream: string,
): Promise<{ rows: number[]; ends: number[] }> {
  const res = await json(
    `${url}/api/v1/query`,
    "POST",
    { sql: `SELECT _partition, count(*), max(_offset) + 1 FROM ${stream} GROUP BY _partition` },
    token,
  );
  const rows = new Array<number>(PARTITIONS).fill(0);
  const ends = new Array<number>(PARTITIONS).fill(0);
  for (const [p, n, end] of res.rows as [number, number, number][]) {
    rows[p] = Number(n);
    ends[p] = Number(end);
  }
  return { rows, ends };
}

/** Polls until the stream's table holds `events` rows; returns when (performance.now()) it first did. */
async function loadedAt(url: string, token: string, stream: string, events: number): Promise<number> {
  const deadline = performance.now() + CATCH_UP_LIMIT_S * 1000;
  while (performance.now() < deadline) {
    const now = performance.now();
    // The lag gauge is cheap; the count confirms it once the gauge says the store caught up.
    if ((await analyticsLag(url, stream)) === 0 && (await tableRows(url, token, stream)) >= events) return now;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${stream}: the analytics store did not load ${events} events within ${CATCH_UP_LIMIT_S} s`);
}

const TICKS_PER_S = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

/**
 * CPU seconds of a process's threads (Linux /proc): the main thread (the event loop) as "main",
 * the others summed by name (Node leaves worker and libuv threads named after the process).
 */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread ended between the listing and the read
    }
    const name = tid === String(pid) ? "main" : `${stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))} (other)`;
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const seconds = (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
    out.set(name, (out.get(name) ?? 0) + seconds);
  }
  return out;
}

async function run(
  server: { child: ChildProcess; url: string },
  token: string,
  data: Bodies,
  stream: string,
): Promise<Run> {
  const pid = server.child.pid!;
  const before = threadCpu(pid);
  const start = performance.now();
  const load = await httpLoad(server.url, token, data, SECONDS, stream);
  const loaded = (await loadedAt(server.url, token, stream, load.events)) - start;
  const after = threadCpu(pid);
  const rows = await tableRows(server.url, token, stream);
  const table = await tablePartitions(server.url, token, stream);
  const byThread: Record<string, number> = {};
  let total = 0;
  for (const [name, cpu] of after) {
    const spent = cpu - (before.get(name) ?? 0);
    total += spent;
    if (spent > 0) byThread[name] = Number(((spent * 1e6) / load.events).toFixed(2));
  }
  const acknowledgedPerS = load.events / load.seconds;
  const loadedPerS = load.events / (loaded / 1000);
  const { acknowledged, perPartition, ...rest } = load;
  return {
    stream,
    ...rest,
    acknowledgedPerS,
    loadedAfterS: loaded / 1000,
    loadedPerS,
    sustainedPerS: Math.min(acknowledgedPerS, loadedPerS),
    logRecords: Number.NaN, // filled in from the log once the server has stopped
    analyticsRows: rows,
    acknowledgedDigest: acknowledged.toString(),
    logDigest: "", // read back once the server has stopped, as the table's
    analyticsDigest: "",
    acknowledgedByPartition: perPartition,
    logByPartition: [],
    analyticsRowsByPartition: table.rows,
    analyticsEndByPartition: table.ends,
    serverCpuUsPerEvent: (total * 1e6) / load.events,
    serverCpuUsPerEventByThread: byThread,
  };
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Every acknowledged event is in the log and in the table, once and unchanged: per partition the
 * log holds exactly the acknowledged count (each stream is fresh, so it starts at 0) and the
 * table the same rows ending at the log's end; the digests of every field of every record in the
 * log and every row in the table equal the acknowledged events'.
 */
function readBackMatches(r: Run): boolean {
  const samePerPartition = r.acknowledgedByPartition.every(
    (n, p) => r.logByPartition[p] === n && r.analyticsRowsByPartition[p] === n && r.analyticsEndByPartition[p] === n,
  );
  return (
    samePerPartition &&
    r.logRecords === r.events &&
    r.analyticsRows === r.events &&
    r.logDigest === r.acknowledgedDigest &&
    r.analyticsDigest === r.acknowledgedDigest
  );
}

// ── main ──

const dataDir = await mkdtemp(join(os.tmpdir(), "runnel-bench-ingest-"));
const data = makeBodies(64);
const parseRates = jsonParseRounds(data.lines, 5);
const pathRate = await ingestPathRate(data.bodies);
const runs: Record<Mode, Run[]> = { schema: [], "no-schema": [] };
const server = await startServer(dataDir);
let stopped = false;
try {
  const login = await json(`${server.url}/api/v1/auth/login`, "POST", { username: "admin", password: PASSWORD });
  const token = login.token as string;
  const create = (name: string, mode: Mode) =>
    json(
      `${server.url}/api/v1/streams`,
      "POST",
      { name, partitions: PARTITIONS, ...(mode === "schema" && { schema: SCHEMA }) },
      token,
    );
  // Warm-up into a stream of its own, so each measured stream holds exactly the measured events.
  await create("warmup", "schema");
  const warm = await httpLoad(server.url, token, data, QUICK ? 2 : 5, "warmup");
  await loadedAt(server.url, token, "warmup", warm.events);
  for (let r = 0; r < RUNS; r++) {
    for (const mode of MODES) {
      const stream = `bench_${mode.replace("-", "_")}_${r + 1}`;
      await create(stream, mode);
      runs[mode].push(await run(server, token, data, stream));
    }
  }
  server.child.kill("SIGTERM");
  await new Promise((r) => server.child.once("exit", r));
  stopped = true;
  // The log and the analytics database as written, opened after the server let go of them.
  const log = new LocalEventLog({ dir: join(dataDir, "log") });
  await log.open();
  const duck = await DuckDBInstance.create(join(dataDir, "analytics", "runnel.duckdb"), { access_mode: "READ_ONLY" });
  const c = await duck.connect();
  try {
    for (const mode of MODES) {
      const read: Run[] = [];
      for (const r of runs[mode]) {
        const [starts, ends] = [await log.startOffsets(r.stream), await log.endOffsets(r.stream)];
        const logByPartition = ends.map((e, p) => e - (starts[p] ?? 0));
        read.push({
          ...r,
          logRecords: logByPartition.reduce((s, n) => s + n, 0),
          logByPartition,
          logDigest: (await digestOfLog(log, r.stream)).toString(),
          analyticsDigest: (await digestOfTable(c, r.stream)).toString(),
        });
      }
      runs[mode] = read;
    }
  } finally {
    c.closeSync();
    duck.closeSync();
    await log.close();
  }
} finally {
  if (!stopped) {
    server.child.kill("SIGTERM");
    await new Promise((r) => server.child.once("exit", r));
  }
}
// The ceiling again, after the load: the same run's machine state on both sides of it.
parseRates.push(...jsonParseRounds(data.lines, 5));
const ceiling = median(parseRates);
await rm(dataDir, { recursive: true, force: true });

const fmt = (n: number) => Math.round(n).toLocaleString("en");
console.log(
  `load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")} on ${os.cpus().length} cores`,
);
console.log(
  `events: ~${data.eventBytes.toFixed(0)} bytes, NDJSON batches of ${BATCH}, ${CLIENTS} HTTP clients, ${RUNS}×${SECONDS} s per stream, medians`,
);
console.log(`JSON.parse alone (one core, same events): ${fmt(ceiling)} events/s`);
console.log(
  `ingest path alone (parse + validate + records, no I/O, one core): ${fmt(pathRate)} events/s, ${(pathRate / ceiling).toFixed(2)} of JSON.parse`,
);
const failures: string[] = [];
const comparisons: Comparison[] = [];
const summary: Record<string, unknown> = {};
for (const mode of MODES) {
  for (const r of runs[mode]) {
    const threads = Object.entries(r.serverCpuUsPerEventByThread)
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => `${name} ${us.toFixed(2)}`)
      .join(", ");
    console.log(
      `  ${r.stream}: acknowledged ${fmt(r.acknowledgedPerS)}/s (${fmt(r.events)} in ${r.seconds.toFixed(1)} s, p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, 429s ${r.refused429}), ` +
        `all loaded after ${r.loadedAfterS.toFixed(1)} s = ${fmt(r.loadedPerS)}/s; read back: log ${fmt(r.logRecords)}, table ${fmt(r.analyticsRows)} rows, digests ${r.logDigest === r.acknowledgedDigest && r.analyticsDigest === r.acknowledgedDigest ? "equal" : "DIFFER"}; ` +
        `server CPU µs/event ${r.serverCpuUsPerEvent.toFixed(2)} (${threads}), clients ${r.clientCpuUsPerEvent.toFixed(2)}`,
    );
    if (!readBackMatches(r))
      failures.push(
        `${r.stream}: acknowledged ${r.events} (by partition ${r.acknowledgedByPartition}), log holds ${r.logRecords} ` +
          `(${r.logByPartition}), table ${r.analyticsRows} rows (${r.analyticsRowsByPartition}) ending at ` +
          `${r.analyticsEndByPartition}; digests: acknowledged ${r.acknowledgedDigest}, log ${r.logDigest}, table ${r.analyticsDigest}`,
      );
  }
  const sustained = median(runs[mode].map((r) => r.sustainedPerS));
  const fraction = sustained / ceiling;
  console.log(
    `${mode.padEnd(9)} sustained ${fmt(sustained)} events/s (acknowledged ${fmt(median(runs[mode].map((r) => r.acknowledgedPerS)))}/s, loaded ${fmt(median(runs[mode].map((r) => r.loadedPerS)))}/s) = ${fraction.toFixed(3)} of JSON.parse` +
      (mode === "schema" ? `; target ${TARGET_FRACTION}: ${fraction >= TARGET_FRACTION ? "met" : "NOT met"}` : ""),
  );
  summary[mode] = { sustainedPerS: sustained, fractionOfJsonParse: fraction, runs: runs[mode] };
  comparisons.push({
    measure: `sustained indexed ingest, ${mode === "schema" ? "with" : "without"} a JSON schema (HTTP NDJSON)`,
    runnel: Math.round(sustained),
    peer: Math.round(ceiling),
    peerName: "JSON.parse of the same events, one core",
    ratio: ratio(sustained, ceiling),
    unit: "events/s",
    outputsEqual: runs[mode].every(readBackMatches),
    caveat: `min(acknowledged, loaded into DuckDB) over ${SECONDS} s, ${RUNS} run(s), median; server and load generator share the 2 cores; ${mode === "schema" ? `target ${TARGET_FRACTION}` : "no target"}`,
  });
}
const path = await writeResults("ingest", {
  comparisons,
  eventBytes: data.eventBytes,
  batch: BATCH,
  clients: CLIENTS,
  seconds: SECONDS,
  runsPerMode: RUNS,
  jsonParseEventsPerS: ceiling,
  jsonParseRounds: parseRates,
  ingestPathEventsPerS: pathRate,
  targetFractionOfJsonParse: TARGET_FRACTION,
  ...summary,
});
console.log(`results: ${path}`);
if (failures.length > 0) {
  console.error(`read back does not match what was acknowledged:\n${failures.join("\n")}`);
  process.exit(1);
}
