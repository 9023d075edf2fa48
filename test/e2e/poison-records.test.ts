/**
 * Poison records already in the log (written with the log API, as an older Runnel or another
 * writer may have left them) against the real server: every consumer (analytics loader, map
 * pipeline, windowed pipeline, rule) dead-letters what it can never process and goes on, /readyz
 * reports it and later recovers, a restart reprocesses nothing, and an event stamped 9999-12-31
 * of one user stops neither a rule nor a window for another user of the same partition.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { loadConfig } from "../../src/config/config.js";
import { ManualClock } from "../../src/core/clock.js";
import { LocalEventLog } from "../../src/log/local/index.js";
import type { AppendRecord, LogRecord } from "../../src/log/types.js";
import { type Runnel, startRunnel } from "../../src/server.js";
import { until } from "../helpers/poll.js";
import { ADMIN_PASSWORD, tempDataDir } from "../helpers/server-process.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const DEPTH = 20_000;
const MINUTE = 60_000;
/** Event times well before the log's clock, aligned to a minute so windows are easy to name. */
const T0 = Math.floor((Date.now() - 60 * MINUTE) / MINUTE) * MINUTE;
const END_OF_TIME = Date.parse("9999-12-31T00:00:00Z");

function deep(user: string): string {
  return `{"user_id":"${user}","amount":900,"d":${'{"a":'.repeat(DEPTH)}1${"}".repeat(DEPTH)}}`;
}

function rec(user: string, t: number, value: string | Record<string, unknown>): AppendRecord {
  const text = typeof value === "string" ? value : JSON.stringify({ user_id: user, ...value });
  return { key: user, timestamp: t, value: encoder.encode(text) };
}

interface Server {
  readonly runnel: Runnel;
  readonly app: FastifyInstance;
  token: string;
  call(method: "GET" | "POST", url: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
}

const data = await tempDataDir();
const clock = new ManualClock(Date.now());
let server: Server | undefined;

async function start(): Promise<Server> {
  const config = loadConfig(
    {},
    {
      RUNNEL_DATA_DIR: data.dir,
      RUNNEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
      RUNNEL_LOG_LEVEL: "silent",
      RUNNEL_ANOMALY_INTERVAL: "1s",
    },
  );
  const runnel = await startRunnel(config, { listen: false, clock });
  const s: Server = {
    runnel,
    app: runnel.app,
    token: "",
    async call(method, url, body) {
      const res = await runnel.app.inject({
        method,
        url,
        headers: {
          ...(s.token !== "" && { authorization: `Bearer ${s.token}` }),
          ...(body !== undefined && { "content-type": "application/json" }),
        },
        ...(body !== undefined && { payload: JSON.stringify(body) }),
      });
      return { status: res.statusCode, body: res.body === "" ? {} : (JSON.parse(res.body) as Record<string, unknown>) };
    },
  };
  const login = await s.call("POST", "/api/v1/auth/login", { username: "admin", password: ADMIN_PASSWORD });
  s.token = login.body.token as string;
  server = s;
  return s;
}

async function stop(): Promise<void> {
  await server?.runnel.stop();
  server = undefined;
}

/** Opens the stopped server's log, as another writer (or an older version) would. */
async function withLog<T>(work: (log: LocalEventLog) => Promise<T>): Promise<T> {
  const log = new LocalEventLog({ dir: join(data.dir, "log"), clock });
  await log.open();
  try {
    return await work(log);
  } finally {
    await log.close();
  }
}

async function readAll(log: LocalEventLog, stream: string): Promise<LogRecord[]> {
  if (!log.hasStream(stream)) return [];
  const out: LogRecord[] = [];
  const ends = await log.endOffsets(stream);
  for (let p = 0; p < ends.length; p++) {
    let at = 0;
    while (at < (ends[p] ?? 0)) {
      const records = await log.read(stream, p, at, { maxRecords: 1000 });
      if (records.length === 0) break;
      out.push(...records);
      at = (records[records.length - 1] as LogRecord).offset + 1;
    }
  }
  return out;
}

function values(records: readonly LogRecord[]): Record<string, unknown>[] {
  return records.map((r) => JSON.parse(decoder.decode(r.value)) as Record<string, unknown>);
}

let ruleId = "";

before(async () => {
  const s = await start();
  const ok = (r: { status: number; body: unknown }, status: number) =>
    assert.equal(r.status, status, JSON.stringify(r.body));
  // One partition: users x and y share it, so x's events could hold y's time back or push it on.
  ok(await s.call("POST", "/api/v1/streams", { name: "tx", partitions: 1 }), 201);
  const rule = await s.call("POST", "/api/v1/rules", {
    name: "large",
    stream: "tx",
    pattern: [{ name: "big", where: "amount > 500" }],
  });
  ok(rule, 201);
  ruleId = rule.body.id as string;
  ok(
    await s.call("POST", "/api/v1/pipelines", {
      name: "tx_cents",
      sql: "SELECT user_id, amount * 100 AS cents, CAST(code AS INTEGER) AS code FROM tx",
      startFrom: "earliest",
    }),
    201,
  );
  ok(
    await s.call("POST", "/api/v1/pipelines", {
      name: "tx_minute",
      sql: "SELECT user_id, window_start, count(*) AS n, sum(amount) AS total, max(CAST(code AS INTEGER)) AS code FROM TUMBLE(tx, _time, INTERVAL '1 minute') GROUP BY ALL",
      startFrom: "earliest",
      options: { outOfOrderness: "0s" },
    }),
    201,
  );
  await stop();
  // Written straight into the log: ingest would refuse some of these today, an older log may hold them.
  await withLog((log) =>
    log.append("tx", [
      rec("x", T0, deep("x")),
      rec("x", T0 + 1_000, { amount: 10, code: "lots" }),
      rec("x", T0 + 2_000, { amount: 900 }),
      rec("x", END_OF_TIME, { amount: 900 }),
      rec("y", T0 + 3_000, { amount: 900 }),
      rec("y", T0 + 5 * MINUTE, { amount: 10 }),
      // Behind every consumer's clock by now: dropped as late, and counted.
      rec("y", T0 - 10 * MINUTE, { amount: 10 }),
    ]),
  );
  await start();
});

after(async () => {
  await stop();
  await data.remove();
});

test("every consumer dead-letters the poison records once, goes on, and /readyz reports it, then recovers", async () => {
  const s = server as Server;
  // The rule fires for y after x's deep record, x's unprocessable amount and x's end-of-time event.
  const alerts = await until(
    () => s.call("GET", `/api/v1/alerts?rule=${ruleId}`),
    (r) => ((r.body.alerts as { userId: string }[] | undefined) ?? []).some((a) => a.userId === "y"),
    "the rule's alert for y",
  );
  const users = (alerts.body.alerts as { userId: string }[]).map((a) => a.userId).sort();
  assert.deepEqual(users, ["x", "y"], "x's event at T0+2s and y's at T0+3s; the end-of-time event waits for its time");

  const pipelines = await until(
    () => s.call("GET", "/api/v1/pipelines"),
    (r) =>
      (r.body.pipelines as { name: string; stats: { lag: number; recordsIn: number } }[]).every(
        (p) => p.stats.recordsIn === 7 && p.stats.lag === 0,
      ),
    "both pipelines past every record",
  );
  for (const p of pipelines.body.pipelines as { name: string; stats: Record<string, unknown> }[]) {
    assert.equal(p.stats.failing, undefined, `${p.name} is not failing`);
    assert.equal(p.stats.deadLetters, 2, `${p.name}: the deep record and the one whose CAST fails`);
  }
  const rule = await s.call("GET", `/api/v1/rules/${ruleId}`);
  const ruleStats = rule.body.stats as Record<string, unknown>;
  assert.equal(ruleStats.deadLetters, 1, "the rule dead-lettered the deep record");
  assert.equal(ruleStats.late, 1, "the rule counts y's event from before its clock as late");
  assert.equal(ruleStats.failures, 0);

  // The analytics loader took every record but the deep one.
  await until(
    () => s.call("POST", "/api/v1/query", { sql: "SELECT count(*) AS n FROM tx" }),
    (r) => Number((r.body.rows as unknown[][] | undefined)?.[0]?.[0] ?? 0) === 6,
    "six rows of tx queryable",
  );

  const ready = await until(
    () => s.call("GET", "/readyz"),
    (r) => ((r.body.consumers as unknown[] | undefined) ?? []).length === 4,
    "readiness naming the four consumers that dead-lettered",
  );
  assert.equal(ready.status, 200, "dead letters do not make the instance unready: it is processing");
  const reported = ready.body.consumers as { consumer: string; state: string; error?: string }[];
  const consumers = reported.map((c) => `${c.consumer} ${c.state}`).sort();
  assert.ok(
    reported.every((c) => c.error === undefined),
    "the public /readyz quotes no record (the CAST failure would name 'lots')",
  );
  assert.deepEqual(consumers, [
    "analytics/tx dead_lettered",
    "pipeline/tx_cents dead_lettered",
    "pipeline/tx_minute dead_lettered",
    "rule/large dead_lettered",
  ]);
  const active = await s.call("GET", "/api/v1/operator-alerts?kind=dead_letter&active=true");
  const raised = active.body.alerts as { subject: string; message: string }[];
  assert.equal(raised.length, 4, "one dead_letter operator alert per consumer");
  assert.match(
    raised.find((a) => a.subject === "rule/large")?.message ?? "",
    /tx record 0\/0 \(the record nests deeper than 1000 levels\)/,
    "the alert (admins only) names the record and the error",
  );

  const stats = await s.call("GET", "/api/v1/stats");
  const body = stats.body as {
    pipelines: Record<string, { late: number; deadLetters: number }>;
    rules: Record<string, { late: number; deadLetters: number }>;
    streams: Record<string, { deadLetters: number }>;
  };
  assert.equal(body.rules.large?.late, 1);
  assert.equal(body.rules.large?.deadLetters, 1);
  assert.equal(body.pipelines.tx_minute?.late, 1, "the window dropped y's event from before its clock");
  assert.equal(body.pipelines.tx_cents?.deadLetters, 2);
  assert.equal(body.streams.tx?.deadLetters, 6);

  // Quiet for longer than an alert's quiet period: the dead_letter alerts resolve and readiness is clean.
  clock.advance(11 * MINUTE);
  await until(
    () => s.call("GET", "/readyz"),
    (r) => r.status === 200 && r.body.consumers === undefined,
    "readiness without consumers to report",
  );
});

test("y's window closes although x sent an event stamped 9999-12-31 into the same partition", async () => {
  await stop();
  const out = await withLog((log) => readAll(log, "tx_minute"));
  const windows = values(out).map((v) => `${v.user_id} ${v.window_start} n=${v.n} total=${v.total}`);
  const minute = (t: number) => new Date(Math.floor(t / MINUTE) * MINUTE).toISOString();
  for (const expected of [`x ${minute(T0)} n=1 total=900`, `y ${minute(T0)} n=1 total=900`]) {
    assert.ok(
      windows.some(
        (w) => w.startsWith(expected.split(" n=")[0] as string) && w.endsWith(expected.split(" ").slice(2).join(" ")),
      ),
      `${expected} in ${JSON.stringify(windows)}`,
    );
  }
  await start();
});

test("a restart reprocesses nothing and writes no second dead letter", async () => {
  const s = server as Server;
  await s.call("GET", "/readyz");
  const counts = async () =>
    withLog(async (log) => ({
      letters: (await readAll(log, "tx_dead_letter")).length,
      cents: (await readAll(log, "tx_cents")).length,
      minute: (await readAll(log, "tx_minute")).length,
    }));
  await stop();
  const first = await counts();
  assert.equal(first.letters, 6, "deep: 4 consumers; CAST failing: 2 pipelines");
  const letters = values(await withLog((log) => readAll(log, "tx_dead_letter")));
  const deepLetter = letters.find((l) => l.consumer === "rule/large");
  assert.ok(deepLetter !== undefined);
  assert.equal(deepLetter.stream, "tx");
  assert.equal(deepLetter.partition, 0);
  assert.equal(deepLetter.offset, 0);
  assert.match(String(deepLetter.reason), /deeper than/);
  // A marker after the restart shows the consumers ran again.
  await withLog((log) => log.append("tx", [rec("z", T0 + 6 * MINUTE, { amount: 901 })]));
  const again = await start();
  await until(
    () => again.call("GET", `/api/v1/alerts?rule=${ruleId}`),
    (r) => ((r.body.alerts as { userId: string }[] | undefined) ?? []).some((a) => a.userId === "z"),
    "the marker's alert",
  );
  await until(
    () => again.call("GET", "/api/v1/pipelines"),
    (r) =>
      (r.body.pipelines as { stats: { recordsIn: number; lag: number } }[]).every(
        (p) => p.stats.recordsIn === 1 && p.stats.lag === 0,
      ),
    "both pipelines past the marker only",
  );
  const alerts = await again.call("GET", `/api/v1/alerts?rule=${ruleId}`);
  assert.equal((alerts.body.alerts as unknown[]).length, 3, "x, y and z: none again");
  await stop();
  const second = await counts();
  assert.equal(second.letters, first.letters, "no second dead letter");
  assert.equal(second.cents, first.cents + 1, "only the marker's output");
  await start();
});
