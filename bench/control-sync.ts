/**
 * How soon a block stored through one instance is enforced by another instance's ingest, and how
 * soon a lift is (issue 19, "blocks and rules everywhere"; docs/cluster.md).
 *
 * Two Runnel instances in this process, each with its own data directory, on one PostgreSQL
 * (a fresh database, dropped afterwards) and one Kafka broker (a topic prefix of their own).
 * For each of `--blocks` users in turn:
 * - raise: the block is stored as a rule's block action stores it (ControlStore.raiseBlocks for an
 *   alert stored just before, untimed, on a connection of A's kind: another origin than B's); the
 *   clock runs from just before that call until B's ingest first refuses the user with `user_blocked`;
 * - lift: `DELETE /api/v1/blocks/:user` on A; the clock runs from the request until B's ingest
 *   admits the user again.
 * B's ingest is probed with POST /api/v1/streams/s/events (inject) holding the user's event and
 * then an event whose time is not a time: a blocked user is refused at the first event
 * (user_blocked), an admitted one at the second (invalid_events), so a probe never appends.
 *
 * Needs RUNNEL_TEST_DATABASE_URL (or --database-url) and RUNNEL_TEST_KAFKA_BROKERS
 * (source /work/test-env.sh).
 *
 * Usage: node --import tsx bench/control-sync.ts [--blocks=200]
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import pg from "pg";
import { loadConfig } from "../src/config/config.js";
import { createPostgresControlStore } from "../src/control/index.js";
import { type Runnel, startRunnel } from "../src/server.js";
import { quickMode, writeResults } from "./report.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k!, v ?? "true"] as const;
  }),
);
const BLOCKS = Number(args.get("blocks") ?? (quickMode() ? 50 : 200));
const serverUrl = args.get("database-url") ?? process.env.RUNNEL_TEST_DATABASE_URL;
const brokers = process.env.RUNNEL_TEST_KAFKA_BROKERS;
if (serverUrl === undefined) throw new Error("no --database-url and RUNNEL_TEST_DATABASE_URL is not set");
if (brokers === undefined) throw new Error("RUNNEL_TEST_KAFKA_BROKERS is not set (source /work/test-env.sh)");
const ADMIN_PASSWORD = "bench-admin-password";
/** The rule the blocks name (no rule by that id need exist: alerts outlive their rules). */
const RULE_ID = "00000000-0000-4000-8000-00000000b10c";

async function onServer(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function start(dir: string, env: Record<string, string>): Promise<Runnel> {
  const config = loadConfig({}, { ...env, RUNNEL_DATA_DIR: dir, RUNNEL_LOG_LEVEL: "silent" });
  return startRunnel(config, { listen: false });
}

async function token(r: Runnel): Promise<string> {
  const res = await r.app.inject({
    method: "POST",
    url: "/api/v1/auth/login",
    payload: { username: "admin", password: ADMIN_PASSWORD },
  });
  return (JSON.parse(res.body) as { token: string }).token;
}

/** B's ingest's answer for the user, without appending anything: "user_blocked" or "invalid_events". */
async function probe(r: Runnel, bearer: string, user: string): Promise<string> {
  const res = await r.app.inject({
    method: "POST",
    url: "/api/v1/streams/s/events",
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
    payload: JSON.stringify([{ user_id: user }, { user_id: user, timestamp: "not a time" }]),
  });
  return (JSON.parse(res.body) as { error?: string }).error ?? `accepted (${res.statusCode})`;
}

async function waitFor(r: Runnel, bearer: string, user: string, answer: string): Promise<void> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const got = await probe(r, bearer, user);
    if (got === answer) return;
    if (got !== "user_blocked" && got !== "invalid_events") throw new Error(`unexpected answer for ${user}: ${got}`);
    if (performance.now() > deadline) throw new Error(`${user}: still not ${answer} after 30 s`);
  }
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function summary(ms: number[]): { p50: number; p99: number; max: number; mean: number } {
  const s = [...ms].sort((x, y) => x - y);
  const round = (v: number) => Math.round(v * 100) / 100;
  return {
    p50: round(percentile(s, 50)),
    p99: round(percentile(s, 99)),
    max: round(s[s.length - 1] as number),
    mean: round(s.reduce((x, y) => x + y, 0) / s.length),
  };
}

const database = `runnel_bench_sync_${randomBytes(4).toString("hex")}`;
const url = withDatabase(serverUrl, database);
const env = {
  // The archive both instances read: cluster mode refuses one of each instance's own.
  RUNNEL_ARCHIVE_URL: await mkdtemp(join(os.tmpdir(), "runnel-sync-archive-")),
  RUNNEL_DATABASE_URL: url,
  RUNNEL_KAFKA_BROKERS: brokers,
  RUNNEL_KAFKA_TOPIC_PREFIX: `${database}_`,
  RUNNEL_INSTALLATION: database,
  RUNNEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
  RUNNEL_TOKEN_SECRET: randomBytes(24).toString("hex"),
};
await onServer(serverUrl, `CREATE DATABASE ${database}`);
const dirs = [await mkdtemp(join(os.tmpdir(), "runnel-sync-a-")), await mkdtemp(join(os.tmpdir(), "runnel-sync-b-"))];
const a = await start(dirs[0] as string, { ...env, RUNNEL_INSTANCE_ID: "a" });
const b = await start(dirs[1] as string, { ...env, RUNNEL_INSTANCE_ID: "b" });
const writer = createPostgresControlStore(url, { origin: "bench-a" });
await writer.open();
try {
  const aToken = await token(a);
  const bToken = await token(b);
  const made = await a.app.inject({
    method: "POST",
    url: "/api/v1/streams",
    headers: { authorization: `Bearer ${aToken}` },
    payload: { name: "s", partitions: 2 },
  });
  if (made.statusCode !== 201) throw new Error(`stream: ${made.body}`);
  const raise: number[] = [];
  const lift: number[] = [];
  for (let i = 0; i < BLOCKS; i++) {
    const user = `user-${i}`;
    await waitFor(b, bToken, user, "invalid_events");
    const alertId = `bench-${i}`;
    await writer.recordAlert({
      id: alertId,
      ruleId: RULE_ID,
      ruleName: "bench",
      matchId: alertId,
      key: user,
      userId: user,
      userIds: [user],
      severity: "high",
      timedOut: false,
      events: [],
      firstEventTime: new Date().toISOString(),
      lastEventTime: new Date().toISOString(),
    });
    const t0 = performance.now();
    await writer.raiseBlocks([{ userId: user, stream: "s", ruleId: RULE_ID, alertId }]);
    await waitFor(b, bToken, user, "user_blocked");
    raise.push(performance.now() - t0);
    const t1 = performance.now();
    const res = await a.app.inject({
      method: "DELETE",
      url: `/api/v1/blocks/${user}`,
      headers: { authorization: `Bearer ${aToken}` },
    });
    if (res.statusCode !== 204) throw new Error(`lift: ${res.statusCode} ${res.body}`);
    await waitFor(b, bToken, user, "invalid_events");
    lift.push(performance.now() - t1);
  }
  const raised = summary(raise);
  const lifted = summary(lift);
  console.log(`blocks: ${BLOCKS}`);
  console.log(`raise → B refuses (ms): p50 ${raised.p50}, p99 ${raised.p99}, max ${raised.max}, mean ${raised.mean}`);
  console.log(
    `lift on A → B admits (ms): p50 ${lifted.p50}, p99 ${lifted.p99}, max ${lifted.max}, mean ${lifted.mean}`,
  );
  await writeResults("control-sync", {
    comparisons: [
      {
        measure: "Block stored → another instance's ingest refuses, p99",
        runnel: raised.p99,
        peer: null,
        peerName: "none (a bound, not a comparison)",
        ratio: null,
        unit: "ms",
        outputsEqual: null,
        caveat: "two instances in one process on one PostgreSQL; probe resolution one inject (~1 ms)",
      },
    ],
    blocks: BLOCKS,
    raiseMs: raised,
    liftMs: lifted,
  });
} finally {
  await writer.close();
  await b.stop();
  await a.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  await onServer(serverUrl, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
}
