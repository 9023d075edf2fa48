/**
 * The query benchmark of issue 17: the cost of isolation. A real `runnel start` loads N rows
 * (1 and 10 million; --quick: 1 million) into an indexed stream, then answers two queries through
 * its query API, timed at the client: the seed's per-user query ("sum of data over the last 24
 * hours", run by a `user` credential, so Runnel scopes it to that user's rows) and an admin
 * aggregate (GROUP BY user_id over every row). Then the server stops and DuckDB opens the same
 * database file directly in this process (DuckDB's defaults, as the server's store uses, TimeZone
 * UTC) and runs the same queries (the per-user one with `user_id = …` written out). p50/p99 of
 * each; the answers of both sides must equal each other and the sums computed while generating
 * the rows, or the benchmark fails. Ratio Runnel/DuckDB = the cost of isolation and the API.
 * 100 million rows is not run: loading them at this machine's ~150-200k events/s alone takes
 * 10 minutes or more.
 *
 * Usage: node --import tsx bench/query.ts [--rows=1000000,10000000] [--queries=50]
 *        (under `flock -x /tmp/runnel-cpu.lock`; RUNNEL_BENCH_QUICK=1: 1 million rows, 20 queries)
 */
import http from "node:http";
import os from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { Client } from "../test/helpers/http.js";
import { ADMIN_PASSWORD, startServerProcess, tempDataDir } from "../test/helpers/server-process.js";
import { type Comparison, quickMode, ratio, writeResults } from "./report.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k!, v ?? "true"] as const;
  }),
);
const QUICK = quickMode();
const SIZES = (args.get("rows") ?? (QUICK ? "1000000" : "1000000,10000000")).split(",").map(Number);
const QUERIES = Number(args.get("queries") ?? (QUICK ? 20 : 50));
const WARMUP = 5;
const USERS = 1000;
const BATCH = 10_000;
const CLIENTS = 4;
const PASSWORD = "bench-password-1";
const USER = "victim";
/** Event times spread over the 48 hours before T0 (whole seconds), one per second of a cycle. */
const T0 = Math.floor(Date.now() / 1000) * 1000;
const SPREAD_S = 48 * 3600;
const CUTOFF_S = T0 / 1000 - 24 * 3600;

const SCHEMA = {
  type: "object",
  properties: { user_id: { type: "string" }, data: { type: "integer" }, ts: { type: "integer" } },
  required: ["user_id", "data", "ts"],
};

const userOf = (i: number) => (i % USERS === 0 ? USER : `u${String(i % USERS).padStart(3, "0")}`);
const tsOf = (i: number) => T0 - (i % SPREAD_S) * 1000;

const perUserSql = (table: string, scoped: boolean) =>
  `SELECT sum(data) AS total, count(*) AS n FROM ${table} WHERE _time > to_timestamp(${CUTOFF_S})${scoped ? "" : ` AND user_id = '${USER}'`}`;
const adminSql = (table: string) =>
  `SELECT user_id, sum(data) AS total, count(*) AS n FROM ${table} GROUP BY user_id ORDER BY user_id`;

/** What both sides must answer, computed from the rows as they are generated. */
interface Expected {
  perUser: [number, number];
  admin: Map<string, [number, number]>;
}

function body(from: number, count: number, expected: Expected): Buffer {
  const lines: string[] = new Array(count);
  for (let k = 0; k < count; k++) {
    const i = from + k;
    const user = userOf(i);
    const data = i % 100;
    const ts = tsOf(i);
    lines[k] = `{"user_id":"${user}","data":${data},"ts":${ts}}`;
    const a = expected.admin.get(user) ?? [0, 0];
    a[0] += data;
    a[1]++;
    expected.admin.set(user, a);
    if (user === USER && ts > CUTOFF_S * 1000) {
      expected.perUser[0] += data;
      expected.perUser[1]++;
    }
  }
  return Buffer.from(`${lines.join("\n")}\n`);
}

function post(agent: http.Agent, base: URL, token: string, path: string, payload: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: base.hostname,
        port: base.port,
        method: "POST",
        path,
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/x-ndjson",
          "content-length": payload.byteLength,
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

async function load(url: string, token: string, stream: string, rows: number): Promise<Expected> {
  const expected: Expected = { perUser: [0, 0], admin: new Map() };
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const base = new URL(url);
  let next = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < rows) {
        const from = next;
        const count = Math.min(BATCH, rows - from);
        next += count;
        const payload = body(from, count, expected);
        for (;;) {
          const status = await post(agent, base, token, `/api/v1/streams/${stream}/events`, payload);
          if (status === 200) break;
          if (status !== 429) throw new Error(`ingest answered ${status}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }),
  );
  agent.destroy();
  return expected;
}

interface Timed {
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The answer, the same every time (checked). */
  readonly rows: unknown[][];
}

async function timed(run: () => Promise<unknown[][]>): Promise<Timed> {
  for (let i = 0; i < WARMUP; i++) await run();
  const ms: number[] = [];
  let first: string | undefined;
  let rows: unknown[][] = [];
  for (let i = 0; i < QUERIES; i++) {
    const start = performance.now();
    rows = await run();
    ms.push(performance.now() - start);
    const text = JSON.stringify(rows);
    if (first !== undefined && text !== first) throw new Error("a query answered differently between runs");
    first = text;
  }
  ms.sort((a, b) => a - b);
  const at = (q: number) => Number(ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]!.toFixed(2));
  return { p50Ms: at(0.5), p99Ms: at(0.99), rows };
}

async function viaApi(client: Client, sql: string): Promise<unknown[][]> {
  const res = await client.post<{ rows: unknown[][] }>("/api/v1/query", { sql });
  if (res.status !== 200) throw new Error(`query answered ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.rows;
}

const data = await tempDataDir();
const results: Record<
  string,
  { perUser: { runnel: Timed; duckdb?: Timed }; admin: { runnel: Timed; duckdb?: Timed } }
> = {};
const expectations = new Map<number, Expected>();
const server = await startServerProcess(data.dir, {
  RUNNEL_LOG_LEVEL: "warn",
  RUNNEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
  RUNNEL_MAX_BODY_BYTES: "16MiB",
});
let stopped = false;
try {
  const base = new Client(server.url);
  const admin = await base.login("admin", ADMIN_PASSWORD);
  const signup = await base.post("/api/v1/auth/signup", {
    username: USER,
    email: `${USER}@example.com`,
    password: PASSWORD,
  });
  if (signup.status !== 201) throw new Error(`signup: ${signup.status} ${JSON.stringify(signup.body)}`);
  const user = await base.login(USER, PASSWORD);
  const token = (
    await base.post<{ token: string }>("/api/v1/auth/login", { username: "admin", password: ADMIN_PASSWORD })
  ).body.token;
  for (const rows of SIZES) {
    const stream = `q_${rows}`;
    const created = await admin.post("/api/v1/streams", {
      name: stream,
      partitions: 4,
      schema: SCHEMA,
      timestampField: "ts",
    });
    if (created.status !== 201) throw new Error(`create ${stream}: ${created.status} ${JSON.stringify(created.body)}`);
    const started = performance.now();
    const expected = await load(server.url, token, stream, rows);
    expectations.set(rows, expected);
    for (;;) {
      const n = (await viaApi(admin, `SELECT count(*) FROM ${stream}`).catch(() => [[0]]))[0]![0];
      if (n === rows) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    console.log(
      `${stream}: ${rows.toLocaleString("en")} rows loaded in ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );
    results[stream] = {
      perUser: { runnel: await timed(() => viaApi(user, perUserSql(stream, true))) },
      admin: { runnel: await timed(() => viaApi(admin, adminSql(stream))) },
    };
  }
  await server.kill("SIGTERM");
  stopped = true;

  const instance = await DuckDBInstance.create(join(data.dir, "analytics", "runnel.duckdb"), {
    access_mode: "READ_ONLY",
  });
  const c = await instance.connect();
  await c.run("SET TimeZone = 'UTC'");
  const direct = async (sql: string): Promise<unknown[][]> =>
    (await c.runAndReadAll(sql)).getRowsJS().map((r) => r.map((v) => (typeof v === "bigint" ? Number(v) : v)));
  for (const rows of SIZES) {
    const stream = `q_${rows}`;
    const r = results[stream]!;
    r.perUser.duckdb = await timed(() => direct(perUserSql(stream, false)));
    r.admin.duckdb = await timed(() => direct(adminSql(stream)));
  }
  c.closeSync();
  instance.closeSync();
} finally {
  if (!stopped) await server.kill("SIGTERM");
  await data.remove();
}

const comparisons: Comparison[] = [];
const failures: string[] = [];
for (const rows of SIZES) {
  const stream = `q_${rows}`;
  const r = results[stream]!;
  const e = expectations.get(rows)!;
  const wantUser = JSON.stringify([e.perUser]);
  const wantAdmin = JSON.stringify([...e.admin].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([u, [s, n]]) => [u, s, n]));
  for (const [measure, m, want] of [
    ["per-user sum over the last 24 h", r.perUser, wantUser],
    ["admin GROUP BY user_id", r.admin, wantAdmin],
  ] as const) {
    const equal = JSON.stringify(m.runnel.rows) === want && JSON.stringify(m.duckdb!.rows) === want;
    if (!equal)
      failures.push(
        `${measure} at ${rows} rows: Runnel ${JSON.stringify(m.runnel.rows).slice(0, 200)}, DuckDB ${JSON.stringify(m.duckdb!.rows).slice(0, 200)}, expected ${want.slice(0, 200)}`,
      );
    console.log(
      `${measure}, ${rows.toLocaleString("en")} rows: Runnel API p50 ${m.runnel.p50Ms} ms p99 ${m.runnel.p99Ms} ms; DuckDB direct p50 ${m.duckdb!.p50Ms} ms p99 ${m.duckdb!.p99Ms} ms; cost of isolation (p50) ${(m.runnel.p50Ms / m.duckdb!.p50Ms).toFixed(2)}x; answers ${equal ? "equal" : "DIFFER"}`,
    );
    comparisons.push({
      measure: `query: ${measure}, ${rows / 1e6}M rows (p50)`,
      runnel: m.runnel.p50Ms,
      peer: m.duckdb!.p50Ms,
      peerName: "DuckDB on the same file, in process",
      ratio: ratio(m.runnel.p50Ms, m.duckdb!.p50Ms),
      unit: "ms p50",
      outputsEqual: equal,
      caveat: `Runnel timed at an HTTP client (API, admission, ${measure.startsWith("per-user") ? "the user's rows copied into a sandbox" : "no scoping"}); DuckDB has the file to itself after the server stopped; ${QUERIES} queries after ${WARMUP} warm-ups; 100M rows not run`,
    });
  }
}
const path = await writeResults("query", {
  comparisons,
  rows: SIZES,
  users: USERS,
  queries: QUERIES,
  loadAverage: os.loadavg(),
  results,
});
console.log(`results: ${path}`);
if (failures.length > 0) {
  console.error(`answers differ:\n${failures.join("\n")}`);
  process.exit(1);
}
