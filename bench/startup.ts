/**
 * Start-up time of issue 15: from spawning `runnel start` to its first 200 from /readyz, on an
 * empty data dir (a first start: catalogue, DuckDB file, admin account) and on one whose log
 * holds 10 million events, already loaded into analytics (a restart of a running deployment),
 * for the compiled package (`node dist/bin/runnel.js`) and the sources under tsx
 * (`node --import tsx bin/runnel.ts`). Goals: under 2 s empty, under 5 s with 10M events.
 * Prints a table and writes bench/results/startup.json with the machine's description.
 *
 * Usage: flock -x /tmp/runnel-cpu.lock node --import tsx bench/startup.ts [--events=10000000] [--runs=3]
 *                                                                         [--cache=.runnel/bench-startup]
 * The big data dir is made once and cached (`--cache`, ~2 GB for 10M events): one start creates
 * the stream through the API, the log API appends the events directly, one more start loads them
 * into analytics. Each measured start of it adds nothing, so the cache stays as it was.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { LocalEventLog } from "../src/log/local/index.js";
import type { AppendRecord } from "../src/log/types.js";
import { untilListening } from "../test/helpers/server-process.js";
import { type Comparison, quickMode, writeResults } from "./report.js";

const ROOT = join(import.meta.dirname, "..");
const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k!, v ?? "true"] as const;
  }),
);
const events = Number(args.get("events") ?? (quickMode() ? 100_000 : 10_000_000));
const runs = Number(args.get("runs") ?? (quickMode() ? 1 : 3));
const cacheDir = args.get("cache") ?? join(ROOT, ".runnel", "bench-startup");
const PASSWORD = "bench-startup-password";
const STREAM = "clicks";
const GOAL_EMPTY_MS = 2000;
const GOAL_BIG_MS = 5000;

const MODES = {
  compiled: [join(ROOT, "dist/bin/runnel.js")],
  tsx: ["--import", "tsx", join(ROOT, "bin/runnel.ts")],
} as const;
type Mode = keyof typeof MODES;

interface Started {
  readonly child: ChildProcess;
  readonly url: string;
  readonly readyMs: number;
}

/** Spawns `runnel start` on `dataDir` and resolves once /readyz answers 200. */
async function start(mode: Mode, dataDir: string): Promise<Started> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [...MODES[mode], "start", "--port", "0"], {
    cwd: ROOT,
    env: { ...process.env, RUNNEL_DATA_DIR: dataDir, RUNNEL_ADMIN_PASSWORD: PASSWORD, RUNNEL_LOG_LEVEL: "warn" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const { url } = await untilListening(child);
  for (;;) {
    const status = await fetch(`${url}/readyz`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return { child, url, readyMs: performance.now() - t0 };
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

async function call<T>(url: string, path: string, body: unknown, token?: string): Promise<T> {
  const res = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token && { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** The cached data dir whose log holds `events` events, all loaded into analytics. */
async function bigDataDir(): Promise<string> {
  const dir = join(cacheDir, `events-${events}`);
  const done = join(dir, "prepared");
  if (existsSync(done)) return dir;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  console.log(`preparing ${dir} (once)`);

  let r = await start("compiled", dir);
  const { token } = await call<{ token: string }>(r.url, "/api/v1/auth/login", {
    username: "admin",
    password: PASSWORD,
  });
  await call(r.url, "/api/v1/streams", { name: STREAM, partitions: 4 }, token);
  await stop(r.child);

  const log = new LocalEventLog({ dir: join(dir, "log") });
  await log.open();
  const BATCH = 10_000;
  const encoder = new TextEncoder();
  const now = Date.now();
  for (let base = 0; base < events; base += BATCH) {
    const batch: AppendRecord[] = [];
    for (let n = base; n < Math.min(base + BATCH, events); n++) {
      const user = `u${n % 1000}`;
      const value = encoder.encode(JSON.stringify({ user_id: user, n, amount: (n % 10_000) / 100, kind: "click" }));
      batch.push({ key: user, timestamp: now - (events - n), value });
    }
    await log.append(STREAM, batch);
  }
  await log.close();
  console.log(`  ${events} events appended: ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // Loads them into analytics, so measured starts are restarts with nothing to catch up.
  r = await start("compiled", dir);
  const login = await call<{ token: string }>(r.url, "/api/v1/auth/login", { username: "admin", password: PASSWORD });
  for (;;) {
    const answer = await call<{ rows: number[][] }>(
      r.url,
      "/api/v1/query",
      { sql: `SELECT count(*) FROM ${STREAM}` },
      login.token,
    );
    if (Number(answer.rows[0]?.[0]) >= events) break;
    await new Promise((res) => setTimeout(res, 1000));
  }
  await stop(r.child);
  await writeFile(done, `${new Date().toISOString()}\n`);
  console.log(`  loaded into analytics: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return dir;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

if (!existsSync(join(ROOT, "dist/bin/runnel.js"))) {
  execFileSync("bash", ["scripts/build.sh"], { cwd: ROOT, stdio: "inherit" });
}
const machine = {
  cpu: os.cpus()[0]?.model ?? "unknown",
  cores: os.availableParallelism(),
  memoryBytes: os.totalmem(),
  os: `${os.type()} ${os.release()} ${os.arch()}`,
  node: process.version,
  loadAverage: os.loadavg(),
  date: new Date().toISOString(),
};
console.log(`start-up benchmark: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}`);

const big = await bigDataDir();
const results: { data: string; mode: Mode; runsMs: number[]; medianMs: number }[] = [];
for (const data of ["empty", `${events} events`]) {
  // Quick mode starts only the compiled package, the one the goals are for.
  for (const mode of (quickMode() ? ["compiled"] : Object.keys(MODES)) as Mode[]) {
    const runsMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const empty = data === "empty" ? await mkdtemp(join(os.tmpdir(), "runnel-startup-")) : undefined;
      const r = await start(mode, empty ?? big);
      runsMs.push(Math.round(r.readyMs));
      await stop(r.child);
      if (empty !== undefined) await rm(empty, { recursive: true, force: true });
    }
    const row = { data, mode, runsMs, medianMs: median(runsMs) };
    results.push(row);
    console.log(`${data.padEnd(18)} ${mode.padEnd(9)} median ${row.medianMs} ms  (runs ${runsMs.join(", ")} ms)`);
  }
}

const medianOf = (data: string, mode: Mode): number =>
  results.find((r) => r.data === data && r.mode === mode)!.medianMs;
const goals = {
  emptyMs: {
    goal: GOAL_EMPTY_MS,
    compiled: medianOf("empty", "compiled"),
    met: medianOf("empty", "compiled") < GOAL_EMPTY_MS,
  },
  bigMs: {
    goal: GOAL_BIG_MS,
    compiled: medianOf(`${events} events`, "compiled"),
    met: medianOf(`${events} events`, "compiled") < GOAL_BIG_MS,
  },
};
console.log(
  `goals (compiled): empty ${goals.emptyMs.compiled} ms (< ${GOAL_EMPTY_MS}: ${goals.emptyMs.met ? "met" : "not met"}); ` +
    `${events} events ${goals.bigMs.compiled} ms (< ${GOAL_BIG_MS}: ${goals.bigMs.met ? "met" : "not met"})`,
);
const row = (data: string, goal: number): Comparison => ({
  measure: `start-up to /readyz, compiled, ${data}`,
  runnel: medianOf(data, "compiled"),
  peer: null,
  peerName: "none",
  ratio: null,
  unit: "ms median",
  outputsEqual: null,
  caveat: `no peer; goal < ${goal} ms (${medianOf(data, "compiled") < goal ? "met" : "NOT met"}); ${runs} run(s); nothing to compare (the big data dir's rows were counted once when it was prepared)`,
});
await writeResults("startup", {
  comparisons: [row("empty", GOAL_EMPTY_MS), row(`${events} events`, GOAL_BIG_MS)],
  startupMachine: machine,
  config: { events, runs },
  results,
  goals,
});
