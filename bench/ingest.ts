/**
 * The ingest benchmark of issue 4: sustained ingest of ~100-byte events over HTTP (NDJSON batches
 * of 1000, 4 concurrent clients, each keeping one request in flight) and over WebSocket (4
 * connections, each keeping up to 4 batches unacknowledged), against a real `runnel start` child
 * process with the durable local log (fdatasync group commit) and everything else running (the
 * analytics loader included). Mode `http-log` is the same HTTP load into a stream created with
 * `"analytics": false` (log only: what a Kafka producer benchmark measures), run once the
 * analytics store has caught up with the other modes' events, so its loader is idle. Reports events/s and p50/p99 acknowledgement latency, medians of
 * several runs, and the ingest rate as a fraction of JSON.parse's speed on the same events
 * measured in the same run (one core). Writes bench/results/ingest.json.
 *
 * Usage: node --import tsx bench/ingest.ts [--seconds=5] [--runs=3] [--warmup=1] [--modes=http,ws]
 *        [--server-node-flags=--cpu-prof,--cpu-prof-dir=/tmp/prof]   (to profile the server)
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { loadConfig } from "../src/config/config.js";
import { parseNdjson } from "../src/ingest/body.js";
import { StreamIngestor } from "../src/ingest/ingestor.js";
import type { EventLog } from "../src/log/types.js";
import { createMetrics } from "../src/monitoring/metrics.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const arg = a.replace(/^--/, "");
    const eq = arg.indexOf("=");
    return eq === -1 ? ([arg, "true"] as const) : ([arg.slice(0, eq), arg.slice(eq + 1)] as const);
  }),
);
const SECONDS = Number(args.get("seconds") ?? 5);
const RUNS = Number(args.get("runs") ?? 3);
const WARMUP = Number(args.get("warmup") ?? 1);
const MODES = (args.get("modes") ?? "http,ws,http-log").split(",");
const BATCH = 1000;
const CLIENTS = 4;
const WS_IN_FLIGHT = 4;
const TARGET = 300_000;
const ROOT = new URL("..", import.meta.url).pathname;
const PASSWORD = "bench-password-1";
const JSON_LIMITS = loadConfig({}, {}).limits.json;

// ── events ──

/** ~100-byte events with a user_id, varied so partitions and column types are exercised. */
function makeBodies(count: number): { bodies: Buffer[]; lines: string[]; eventBytes: number } {
  const bodies: Buffer[] = [];
  const lines: string[] = [];
  let n = 0;
  for (let b = 0; b < count; b++) {
    const batch: string[] = [];
    for (let i = 0; i < BATCH; i++, n++) {
      const line = JSON.stringify({
        user_id: `user_${n % 997}`,
        event_type: n % 5 === 0 ? "purchase" : "view",
        amount: (n % 10_000) / 100,
        page: `/p/${n % 313}`,
        ts: 1_764_000_000_000 + n,
      });
      batch.push(line);
      lines.push(line);
    }
    bodies.push(Buffer.from(`${batch.join("\n")}\n`));
  }
  const eventBytes = lines.reduce((s, l) => s + Buffer.byteLength(l), 0) / lines.length;
  return { bodies, lines, eventBytes };
}

/** JSON.parse alone over the same lines, one core: the ceiling ingest is compared with. */
function jsonParseRate(lines: readonly string[]): number {
  let sink = 0;
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const start = process.hrtime.bigint();
    for (const l of lines) sink += (JSON.parse(l) as { amount: number }).amount > 0 ? 1 : 0;
    const s = Number(process.hrtime.bigint() - start) / 1e9;
    rounds.push(lines.length / s);
  }
  if (sink < 0) console.log(sink);
  return median(rounds);
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
  const stream = { name: "bench", partitions: 4, timestampField: "timestamp", createdAt: "" };
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

interface Run {
  readonly eventsPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly refused429: number;
  /** CPU time per acknowledged event (µs): the server by thread name, and this load generator. */
  readonly serverCpuUsPerEvent?: number;
  readonly serverCpuUsPerEventByThread?: Record<string, number>;
  readonly clientCpuUsPerEvent?: number;
  /** Records durable but not yet loaded into the analytics store when the run ended (from /metrics). */
  readonly analyticsLagAtEnd?: number;
  /**
   * Events/s the analytics store loaded during the run: acknowledged events minus the growth of
   * its lag. Ingest is sustained only where this keeps up with eventsPerS.
   */
  readonly analyticsLoadedPerS?: number;
}

/** runnel_analytics_lag_records of the bench stream: ingest is sustained only if this stays bounded. */
async function analyticsLag(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^runnel_analytics_lag_records\{stream="bench"\} (\S+)$/m.exec(text);
  return m ? Number(m[1]) : Number.NaN;
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

/** Runs one measurement and adds the CPU the server and this process spent per acknowledged event. */
/** Waits (up to 2 minutes) until the analytics store has loaded every event of the stream "bench". */
async function caughtUp(url: string): Promise<void> {
  for (let i = 0; i < 1200 && (await analyticsLag(url)) > 0; i++) await new Promise((r) => setTimeout(r, 100));
}

async function measured(server: { child: ChildProcess; url: string }, run: () => Promise<Run>): Promise<Run> {
  const pid = server.child.pid!;
  const lagBefore = await analyticsLag(server.url);
  const before = threadCpu(pid);
  const clientBefore = process.cpuUsage();
  const start = performance.now();
  const result = await run();
  const seconds = (performance.now() - start) / 1000;
  const client = process.cpuUsage(clientBefore);
  const after = threadCpu(pid);
  const lag = await analyticsLag(server.url);
  const events = result.eventsPerS * seconds;
  const analyticsLoadedPerS = (events - (lag - lagBefore)) / seconds;
  if (events === 0) return { ...result, analyticsLagAtEnd: lag, analyticsLoadedPerS };
  const byThread: Record<string, number> = {};
  let total = 0;
  for (const [name, cpu] of after) {
    const spent = cpu - (before.get(name) ?? 0);
    total += spent;
    if (spent > 0) byThread[name] = Number(((spent * 1e6) / events).toFixed(2));
  }
  return {
    ...result,
    serverCpuUsPerEvent: (total * 1e6) / events,
    serverCpuUsPerEventByThread: byThread,
    clientCpuUsPerEvent: (client.user + client.system) / events,
    analyticsLagAtEnd: lag,
    analyticsLoadedPerS,
  };
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

async function httpRun(base: string, token: string, bodies: Buffer[], seconds: number, stream = "bench"): Promise<Run> {
  const url = new URL(base);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const latencies: number[] = [];
  let events = 0;
  let refused = 0;
  let next = 0;
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (performance.now() < end) {
        const body = bodies[next++ % bodies.length]!;
        const t0 = performance.now();
        const status = await post(agent, url, token, body, stream);
        if (status === 200) {
          latencies.push(performance.now() - t0);
          events += BATCH;
        } else if (status === 429) {
          refused++;
          await new Promise((r) => setTimeout(r, 50));
        } else throw new Error(`ingest answered ${status}`);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  agent.destroy();
  return summarise(events, elapsed, latencies, refused);
}

async function wsRun(base: string, token: string, bodies: Buffer[], seconds: number): Promise<Run> {
  const url = `${base.replace(/^http/, "ws")}/api/v1/streams/bench/ws`;
  const latencies: number[] = [];
  let events = 0;
  let refused = 0;
  let next = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
      await new Promise((resolve, reject) => {
        ws.once("open", resolve);
        ws.once("error", reject);
      });
      const sentAt: number[] = [];
      let seq = 0;
      let inFlight = 0;
      await new Promise<void>((resolve, reject) => {
        const pump = (): void => {
          while (inFlight < WS_IN_FLIGHT && performance.now() < end) {
            sentAt[++seq] = performance.now();
            inFlight++;
            ws.send(bodies[next++ % bodies.length]!);
          }
          if (inFlight === 0) resolve();
        };
        ws.on("message", (data) => {
          const frame = JSON.parse(String(data)) as { type: string; seq: number; error?: string };
          inFlight--;
          if (frame.type === "ack") {
            latencies.push(performance.now() - sentAt[frame.seq]!);
            events += BATCH;
          } else if (frame.error === "overloaded") refused++;
          else reject(new Error(`ws error frame: ${String(data)}`));
          pump();
        });
        ws.once("close", () => resolve());
        pump();
      });
      ws.close();
    }),
  );
  return summarise(events, (performance.now() - start) / 1000, latencies, refused);
}

function summarise(events: number, seconds: number, latencies: number[], refused: number): Run {
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  return { eventsPerS: events / seconds, p50Ms: at(0.5), p99Ms: at(0.99), refused429: refused };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function medianRun(runs: Run[]): Run {
  return {
    eventsPerS: median(runs.map((r) => r.eventsPerS)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    refused429: median(runs.map((r) => r.refused429)),
    serverCpuUsPerEvent: median(runs.map((r) => r.serverCpuUsPerEvent ?? Number.NaN)),
    clientCpuUsPerEvent: median(runs.map((r) => r.clientCpuUsPerEvent ?? Number.NaN)),
    analyticsLoadedPerS: median(runs.map((r) => r.analyticsLoadedPerS ?? Number.NaN)),
  };
}

// ── main ──

const dataDir = await mkdtemp(join(os.tmpdir(), "runnel-bench-ingest-"));
const { bodies, lines, eventBytes } = makeBodies(64);
const ceiling = jsonParseRate(lines);
const pathRate = await ingestPathRate(bodies);
const server = await startServer(dataDir);
try {
  const login = await json(`${server.url}/api/v1/auth/login`, "POST", { username: "admin", password: PASSWORD });
  const token = login.token as string;
  await json(`${server.url}/api/v1/streams`, "POST", { name: "bench", partitions: 4 }, token);
  await json(`${server.url}/api/v1/streams`, "POST", { name: "bench_log", partitions: 4, analytics: false }, token);
  await httpRun(server.url, token, bodies, WARMUP);
  await httpRun(server.url, token, bodies, WARMUP, "bench_log");
  const results: Record<string, Run[]> = { http: [], ws: [], "http-log": [] };
  for (let r = 0; r < RUNS; r++) {
    if (MODES.includes("http"))
      results.http!.push(await measured(server, () => httpRun(server.url, token, bodies, SECONDS)));
    if (MODES.includes("ws")) results.ws!.push(await measured(server, () => wsRun(server.url, token, bodies, SECONDS)));
    if (MODES.includes("http-log")) {
      await caughtUp(server.url);
      // The analytics figures are about the stream "bench", which this run does not write.
      const {
        analyticsLoadedPerS: _loaded,
        analyticsLagAtEnd: _lag,
        ...run
      } = await measured(server, () => httpRun(server.url, token, bodies, SECONDS, "bench_log"));
      results["http-log"]!.push(run);
    }
  }
  const summary = Object.fromEntries(
    Object.entries(results)
      .filter(([, runs]) => runs.length > 0)
      .map(([k, runs]) => {
        const m = medianRun(runs);
        return [k, { ...m, fractionOfJsonParse: m.eventsPerS / ceiling, runs }];
      }),
  );
  const fmt = (n: number) => Math.round(n).toLocaleString("en");
  console.log(
    `load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} on ${os.cpus().length} cores`,
  );
  console.log(
    `events: ~${eventBytes.toFixed(0)} bytes, batches of ${BATCH}, ${CLIENTS} clients, ${RUNS}×${SECONDS}s, medians`,
  );
  console.log(`JSON.parse alone (one core, same events): ${fmt(ceiling)} events/s`);
  console.log(
    `ingest path alone (parse + validate + records, no I/O, one core): ${fmt(pathRate)} events/s, ${((pathRate / ceiling) * 100).toFixed(0)}% of JSON.parse`,
  );
  for (const [k, s] of Object.entries(summary)) {
    console.log(
      `${k.padEnd(8)} ${fmt(s.eventsPerS).padStart(9)} events/s  p50 ${s.p50Ms.toFixed(1)} ms  p99 ${s.p99Ms.toFixed(1)} ms  ` +
        `${(s.fractionOfJsonParse * 100).toFixed(0)}% of JSON.parse  429s: ${s.refused429}  ${Number.isNaN(s.analyticsLoadedPerS ?? Number.NaN) ? "log only" : `analytics loaded ${fmt(s.analyticsLoadedPerS ?? Number.NaN)}/s`}  target ${fmt(TARGET)}: ${s.eventsPerS >= TARGET ? "met" : "NOT met"}`,
    );
    for (const run of s.runs) {
      const threads = Object.entries(run.serverCpuUsPerEventByThread ?? {})
        .sort((a, b) => b[1] - a[1])
        .map(([name, us]) => `${name} ${us.toFixed(2)}`)
        .join(", ");
      console.log(
        `      run ${fmt(run.eventsPerS)}/s: CPU µs/event server ${run.serverCpuUsPerEvent?.toFixed(2)} (${threads}), load generator ${run.clientCpuUsPerEvent?.toFixed(2)}${run.analyticsLoadedPerS === undefined ? "" : `; analytics loaded ${fmt(run.analyticsLoadedPerS)}/s, lag at end ${fmt(run.analyticsLagAtEnd ?? Number.NaN)} records`}`,
      );
    }
  }
  await mkdir(join(ROOT, "bench/results"), { recursive: true });
  await writeFile(
    join(ROOT, "bench/results/ingest.json"),
    `${JSON.stringify(
      {
        at: new Date().toISOString(),
        machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
        eventBytes,
        batch: BATCH,
        clients: CLIENTS,
        seconds: SECONDS,
        jsonParseEventsPerS: ceiling,
        ingestPathEventsPerS: pathRate,
        loadAverage: os.loadavg(),
        targetEventsPerS: TARGET,
        ...summary,
      },
      null,
      2,
    )}\n`,
  );
} finally {
  server.child.kill("SIGTERM");
  await new Promise((r) => server.child.once("exit", r));
  await rm(dataDir, { recursive: true, force: true });
}
