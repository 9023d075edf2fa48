/**
 * The shipped monitoring against the real tools: promtool checks the alert rules, the scrape
 * config and a real /metrics scrape of a running Runnel; the scrape holds prom-client's standard
 * process metrics and otherwise only runnel_ names; every metric the Grafana dashboard and the
 * alert rules query exists in that scrape; and a real Prometheus server (scripts/prometheus.sh)
 * scrapes the running Runnel, answering PromQL queries for the ingest counter and the CPU counter.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { collectDefaultMetrics, Registry } from "prom-client";
import { parse as parseYaml } from "yaml";
import { DROPPED_DEFAULT_METRICS } from "../../src/monitoring/metrics.js";
import { Client } from "../helpers/http.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const RULES_DIR = join(ROOT, "deploy/prometheus/rules");
const DASHBOARD = join(ROOT, "deploy/grafana/dashboards/runnel.json");

function prometheusUrl(): string {
  const fromEnv = process.env.RUNNEL_TEST_PROMETHEUS_URL;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  return execFileSync("bash", [join(ROOT, "scripts/prometheus.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

function promtool(args: string[], input?: string): { status: number | null; output: string } {
  const r = spawnSync("promtool", args, { encoding: "utf8", ...(input !== undefined && { input }) });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Metric families in a scrape, by their `# TYPE` lines. */
function families(scrape: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** The family a series name in PromQL belongs to (histogram and summary series carry suffixes). */
function familyOf(name: string, known: Map<string, string>): string | undefined {
  if (known.has(name)) return name;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (name.endsWith(suffix) && known.has(name.slice(0, -suffix.length))) return name.slice(0, -suffix.length);
  }
  return undefined;
}

/** Whether the scrape holds at least one sample of the family (not only its HELP and TYPE). */
function hasSamples(scrape: string, family: string): boolean {
  return new RegExp(`^${family}(_bucket|_sum|_count)?(\\{[^}]*\\})? `, "m").test(scrape);
}

/** Every `expr` of every rule in a rules file, multi-line ones whole. */
function ruleExprs(file: string): string[] {
  const doc = parseYaml(readFileSync(file, "utf8")) as { groups: { rules: { expr: string }[] }[] };
  return doc.groups.flatMap((g) => g.rules.map((r) => r.expr));
}

/**
 * Families the dashboard or rules query that a short test run has no reason to fill: they count
 * events this scrape did not provoke (CEP rules, webhooks, retention, crashes, operator alerts,
 * failed checkpoints), and prom-client writes no sample of a labelled metric before its first one.
 */
const EVENT_DRIVEN = new Set([
  "runnel_cep_partial_matches",
  "runnel_cep_state_keys",
  "runnel_rule_matches_total",
  "runnel_rule_alerts_total",
  "runnel_webhook_failures_total",
  "runnel_webhook_deliveries_total",
  "runnel_log_recovery_truncations_total",
  "runnel_operator_alerts_active",
  "runnel_checkpoint_failures_total",
]);

/** Runnel's own metrics and prom-client's standard process and Node.js ones. */
function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\b(?:runnel|process|nodejs)_[a-z0-9_]+/g) ?? [])];
}

/** The families prom-client's collectDefaultMetrics registers without a prefix, less the ones Runnel drops. */
async function standardFamilies(): Promise<Set<string>> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
  return new Set(names.filter((n) => !(DROPPED_DEFAULT_METRICS as readonly string[]).includes(n)));
}

let server: ServerProcess;
let removeData: () => Promise<void>;
let scrape = "";
const INGESTED = 7;

before(async () => {
  // Installs promtool and prometheus when missing, so the checks below have their tools.
  prometheusUrl();
  const data = await tempDataDir();
  removeData = data.remove;
  // A one-second detector interval (RUNNEL_ANOMALY_INTERVAL) so its baseline is learnt during the test.
  server = await startServerProcess(data.dir, { RUNNEL_ANOMALY_INTERVAL: "1s" });
  const admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
  assert.equal((await admin.post("/api/v1/streams", { name: "clicks", partitions: 2 })).status, 201);
  const events = Array.from({ length: INGESTED }, (_, i) => ({ user_id: `u${i % 3}`, amount: i }));
  assert.equal((await admin.post("/api/v1/streams/clicks/events", events.slice(0, 4))).status, 200);
  assert.equal((await admin.post("/api/v1/streams/clicks/events", events.slice(4))).status, 200);
  assert.equal((await admin.post("/api/v1/streams/clicks/events", [{ amount: 1 }])).status, 400, "refused: no user_id");
  const pipeline = await admin.post("/api/v1/pipelines", {
    name: "big_clicks",
    sql: "SELECT user_id, amount FROM clicks WHERE amount > 2",
    startFrom: "earliest",
  });
  assert.equal(pipeline.status, 201, JSON.stringify(pipeline.body));
  // A windowed pipeline on one partition: with two, a partition that never gets an event goes idle
  // together with the other and the watermark stands still (every partition idle), so no delay shows.
  assert.equal((await admin.post("/api/v1/streams", { name: "orders", partitions: 1 })).status, 201);
  const orders = [0, 1, 2].map((i) => ({ user_id: `u${i}`, amount: i }));
  assert.equal((await admin.post("/api/v1/streams/orders/events", orders)).status, 200);
  const windowed = await admin.post("/api/v1/pipelines", {
    name: "per_minute",
    sql: "SELECT user_id, count(*) AS n FROM TUMBLE(orders, _time, INTERVAL '1 hour') GROUP BY ALL",
    startFrom: "earliest",
  });
  assert.equal(windowed.status, 201, JSON.stringify(windowed.body));
  // Every event read: three users' windows are open (an hour's window cannot close during the test).
  for (;;) {
    const { body } = await admin.get("/api/v1/pipelines/per_minute");
    if ((body as { stats: { recordsIn: number } }).stats.recordsIn === orders.length) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await admin.queryUntil("SELECT count(*) FROM clicks", (rows) => Number(rows[0]?.[0]) === INGESTED);
  const refused = await admin.post("/api/v1/query", { sql: "DROP TABLE clicks" });
  assert.ok(refused.status === 400 || refused.status === 403, `DROP refused: ${refused.status}`);
  // The watermark moves once the idle partition is idle, the baseline after the detector's first interval.
  const deadline = Date.now() + 60_000;
  const awaited = [
    /^runnel_pipeline_watermark_delay_seconds\{pipeline="per_minute"\} /m,
    /^runnel_ingest_baseline_events_per_second\{stream="clicks"\} /m,
  ];
  for (;;) {
    scrape = await (await fetch(`${server.url}/metrics`)).text();
    if (awaited.every((r) => r.test(scrape))) break;
    assert.ok(Date.now() < deadline, `never scraped ${awaited.filter((r) => !r.test(scrape)).join(", ")}`);
    await new Promise((r) => setTimeout(r, 200));
  }
});

after(async () => {
  await server?.kill();
  await removeData?.();
});

test("promtool accepts the shipped alert rules and scrape config", () => {
  for (const file of readdirSync(RULES_DIR)) {
    const r = promtool(["check", "rules", join(RULES_DIR, file)]);
    assert.equal(r.status, 0, r.output);
  }
  const r = promtool(["check", "config", join(ROOT, "deploy/prometheus/prometheus.yml")]);
  assert.equal(r.status, 0, r.output);
});

test("promtool accepts a real /metrics scrape, and it holds every stage's metrics", () => {
  const r = promtool(["check", "metrics"], scrape);
  assert.equal(r.status, 0, r.output);
  assert.equal(r.output.trim(), "", "no lint findings");
  assert.match(scrape, new RegExp(`runnel_ingest_events_total\\{stream="clicks",source="http"\\} ${INGESTED}\\n`));
  assert.match(scrape, /runnel_ingest_refusals_total\{reason="invalid"\} 1\n/);
  assert.match(scrape, /runnel_query_refusals_total\{reason="[a-z_]+"\} 1\n/);
  assert.match(scrape, /runnel_pipeline_records_total\{pipeline="big_clicks",direction="in"\} \d+/);
  assert.match(scrape, /runnel_pipeline_lag_records\{pipeline="big_clicks",partition="1"\} \d+/);
  assert.match(scrape, /runnel_log_append_duration_seconds_count\{outcome="ok"\} \d+/);
  assert.match(scrape, /runnel_log_size_bytes [1-9]\d*/);
  assert.match(scrape, /runnel_component_ready\{component="control"\} 1/);
  // Producers added after the first cut: windows, checkpoints, group commit, per-stream size, pool.
  assert.match(scrape, /runnel_window_state_keys\{pipeline="per_minute"\} 3\n/);
  assert.match(scrape, /runnel_window_open_windows\{pipeline="per_minute"\} 3\n/);
  assert.match(scrape, /runnel_checkpoint_duration_seconds_count\{task="pipeline\/per_minute"\} [1-9]/);
  assert.match(scrape, /runnel_checkpoint_age_seconds\{task="pipeline\/per_minute"\} \d/);
  assert.match(scrape, /runnel_log_fsync_batch_records_count [1-9]/);
  assert.match(scrape, /runnel_log_fsync_batch_appends_bucket\{le="\+Inf"\} [1-9]/);
  assert.match(scrape, /runnel_log_stream_size_bytes\{stream="clicks"\} [1-9]\d*\n/);
  assert.match(scrape, /runnel_log_stream_size_bytes\{stream="orders"\} [1-9]\d*\n/);
  // Pipelines checkpoint into the checkpoint store (issue 16), no longer into internal log streams.
  assert.doesNotMatch(scrape, /stream="__checkpoints_/);
  // The embedded control database is one PGlite connection.
  assert.match(scrape, /runnel_control_db_pool_max_connections 1\n/);
  assert.match(scrape, /runnel_control_db_pool_connections\{state="(idle|busy)"\} 1\n/);
  assert.doesNotMatch(scrape, /u[0-2]"/, "no user id is a label value");
});

test("process and Node.js metrics carry prom-client's standard names; every other metric the runnel_ prefix", async () => {
  const known = families(scrape);
  for (const name of [
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "nodejs_eventloop_lag_seconds",
    "nodejs_eventloop_lag_p99_seconds",
    "nodejs_heap_size_used_bytes",
    "nodejs_gc_duration_seconds",
    "nodejs_version_info",
  ]) {
    assert.ok(known.has(name), `${name} is exposed`);
    assert.ok(hasSamples(scrape, name), `${name} has a sample`);
  }
  assert.equal(known.get("process_cpu_seconds_total"), "counter");
  const standard = await standardFamilies();
  const stray = [...known.keys()].filter((name) => !name.startsWith("runnel_") && !standard.has(name));
  assert.deepEqual(stray, [], "every family is Runnel's (runnel_…) or one of prom-client's standard ones");
  const prefixedDefaults = [...known.keys()].filter((n) => /^runnel_(process|nodejs)_/.test(n));
  assert.deepEqual(prefixedDefaults, [], "no default metric carries Runnel's prefix");
  for (const name of DROPPED_DEFAULT_METRICS) assert.ok(!known.has(name), `${name} (a gauge named _total) is dropped`);
});

test("every metric the Grafana dashboard and the alert rules query exists in a real scrape", () => {
  const known = families(scrape);
  const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  const exprs: [string, string][] = dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((t): [string, string] => [`panel "${p.title}"`, t.expr]),
  );
  assert.ok(exprs.length > 30, "the dashboard has its panels");
  for (const file of readdirSync(RULES_DIR)) {
    for (const expr of ruleExprs(join(RULES_DIR, file))) exprs.push([`rule in ${file}`, expr]);
  }
  const missing: string[] = [];
  const empty: string[] = [];
  for (const [where, expr] of exprs) {
    for (const name of metricNames(expr)) {
      const family = familyOf(name, known);
      if (family === undefined) missing.push(`${name} (${where})`);
      else if (!EVENT_DRIVEN.has(family) && !hasSamples(scrape, family)) empty.push(`${name} (${where})`);
    }
  }
  assert.deepEqual(missing, [], "queried metrics absent from /metrics");
  assert.deepEqual([...new Set(empty)], [], "queried metrics without a sample though their producer ran");
  // The rules' multi-line expressions are read too (a line-based reading saw only their first line).
  assert.ok(exprs.some(([where, expr]) => where.startsWith("rule") && expr.includes("runnel_pipeline_lag")));
});

test("a real Prometheus scrapes Runnel and PromQL returns the ingest counter", async () => {
  const url = prometheusUrl();
  const port = new URL(url).port;
  const targets = join(process.env.RUNNEL_PROM_DIR ?? `/tmp/runnel-prom-${port}`, "targets");
  const id = randomUUID();
  const file = join(targets, `${id}.json`);
  writeFileSync(file, JSON.stringify([{ targets: [new URL(server.url).host], labels: { runnel_test: id } }]));
  try {
    const query = `sum(runnel_ingest_events_total{runnel_test="${id}",stream="clicks"})`;
    let value: string | undefined;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(query)}`);
      const body = (await res.json()) as { status: string; data: { result: { value: [number, string] }[] } };
      assert.equal(body.status, "success");
      value = body.data.result[0]?.value[1];
      if (value !== undefined) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(value, String(INGESTED));
    // The standard process metrics arrive under their own names, told apart by the target's labels.
    const cpu = `process_cpu_seconds_total{runnel_test="${id}"}`;
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(cpu)}`);
    const body = (await res.json()) as { data: { result: { value: [number, string] }[] } };
    assert.ok(Number(body.data.result[0]?.value[1]) > 0, `${cpu}: ${JSON.stringify(body.data.result)}`);

    const rules = (await (await fetch(`${url}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
    };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    assert.ok(
      loaded.some((r) => r.name === "RunnelLogDiskNearlyFull"),
      "the shipped rules are loaded",
    );
    for (const r of loaded) assert.notEqual(r.health, "err", `${r.name}: ${r.lastError}`);
  } finally {
    rmSync(file, { force: true });
  }
});
