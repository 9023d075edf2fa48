/**
 * Moving tasks between processes (issue 16), on a real Kafka broker and a real PostgreSQL: the
 * installation's log is the broker and its control plane and checkpoint store the database, each
 * process has its own, empty data directory, so a task's state can only come from the shared store.
 *
 * - The seed's fraud rule runs in process A under load; A is killed (SIGKILL) in the middle of a
 *   wave of matches, between "alert stored" and "checkpoint written"; B, on a fresh data dir,
 *   takes the rule's tasks over and continues. Then a planned handover: B stops (SIGTERM, writing
 *   a last checkpoint) and C starts. Every alert the offline computation expects exists exactly
 *   once; C replays nothing and loses nothing of what B had read, and its first match's alert
 *   follows the acknowledgement within one checkpoint interval.
 * - A windowed pipeline (per user and minute: count and sum, checkpointed every second) through
 *   the same kill and handover, with no rule beside it: every window result in the output topic
 *   equals the offline computation, none written twice, none missing.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { createKafkaEventLog } from "../../src/log/kafka/index.js";
import { partitionForKey } from "../../src/log/partitioner.js";
import { sharedArchiveEnv } from "../archive/s3-server.js";
import { Client } from "../helpers/http.js";
import { kafkaBrokers } from "../helpers/kafka.js";
import { onServer, postgresServerUrl, withDatabase } from "../helpers/postgres.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";
import { alertName, BASE_TS, expectedMatches, fraudScenario, MINUTE, seedRule, type Tx, wave } from "./fraud-data.js";

const SEED = 161_616;
const PARTITIONS = 4;
const BATCH = 20;
/** The rules' checkpoint interval (RuleRunnerOptions.checkpointEveryMs's default). */
const CHECKPOINT_INTERVAL_MS = 1000;

interface Alert {
  id: string;
  ruleId: string;
  userId: string | null;
  events: Array<Record<string, unknown>>;
}

interface RuleStats {
  stats: { eventsIn: number; running: boolean };
}

/**
 * One installation: a database of its own on the PostgreSQL server, a topic prefix of its own on
 * the broker, and processes started on them, each with a new, empty data directory.
 */
async function installation() {
  const database = `runnel_move_${randomBytes(5).toString("hex")}`;
  const server = postgresServerUrl();
  const brokers = kafkaBrokers();
  const env = {
    // The archive every process of the installation reads (cluster mode refuses one of its own).
    ...(await sharedArchiveEnv()),
    RUNNEL_DATABASE_URL: withDatabase(server, database),
    RUNNEL_KAFKA_BROKERS: brokers,
    RUNNEL_KAFKA_TOPIC_PREFIX: `${database}_`,
    // A group of its own on the broker: under the default installation every process of every
    // installation would join "runnel.tasks" with the same instance id (the hostname), and one
    // installation's restart would wait out the other's sessions.
    RUNNEL_INSTALLATION: database,
  };
  const dirs: Array<{ remove(): Promise<void> }> = [];
  let created = false;
  return {
    brokers: brokers.split(","),
    topicPrefix: env.RUNNEL_KAFKA_TOPIC_PREFIX,
    async start(): Promise<ServerProcess> {
      if (!created) {
        await onServer(server, `CREATE DATABASE ${database}`);
        created = true;
      }
      const data = await tempDataDir();
      dirs.push(data);
      return startServerProcess(data.dir, env);
    },
    /** The first process, with the stream both tests ingest into created. */
    async begin(): Promise<{ proc: ServerProcess; admin: Client }> {
      const first = await this.open();
      const created = await first.admin.post("/api/v1/streams", { name: "transactions", partitions: PARTITIONS });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return first;
    },
    /**
     * A new process, once ready, and an admin client of it. Kafka, PostgreSQL and the database's
     * checkpoints make it an instance of a cluster (docs/cluster.md): it runs the tasks of the slots
     * the group gives it, and after a kill -9 the group gives them only once the killed process's
     * session has expired (45 s on the test broker), which /readyz waits for.
     */
    async open(): Promise<{ proc: ServerProcess; admin: Client }> {
      const proc = await this.start();
      const deadline = Date.now() + 120_000;
      while ((await fetch(`${proc.url}/readyz`)).status !== 200) {
        assert.ok(Date.now() < deadline, `${proc.url} not ready in 120 s`);
        await new Promise((r) => setTimeout(r, 250));
      }
      return { proc, admin: await new Client(proc.url).login("admin", ADMIN_PASSWORD) };
    },
    async remove(): Promise<void> {
      for (const d of dirs) await d.remove();
      if (created) await onServer(server, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    },
  };
}

/** Four large transactions of `user` at one event time: a match in one batch. */
function burst(user: string, at: number): Tx[] {
  return [0, 1, 2, 3].map((i) => ({
    user_id: user,
    event_type: "transaction",
    amount: 900 + i,
    timestamp: at,
    tx_id: `${user}-${i}`,
  }));
}

/** One user per partition (their bursts end each partition's input: alerted, it was read to there). */
function sentinels(tag: string): string[] {
  const found = new Map<number, string>();
  for (let i = 0; found.size < PARTITIONS; i++) {
    const user = `zz${tag}-${i}`;
    const p = partitionForKey(user, PARTITIONS);
    if (!found.has(p)) found.set(p, user);
  }
  return [...found.values()];
}

function batchesOf(events: readonly Tx[]): Tx[][] {
  const out: Tx[][] = [];
  for (let i = 0; i < events.length; i += BATCH) out.push(events.slice(i, i + BATCH));
  return out;
}

type Installation = Awaited<ReturnType<typeof installation>>;

const lastTs = (events: readonly Tx[]): number => (events[events.length - 1] as Tx).timestamp;

// The two tests run at once, each on an installation of its own: most of each is the wait for the
// killed process's session to expire on the broker (45 s), which the other can use.
describe("moving tasks between processes on Kafka and PostgreSQL", { concurrency: true }, () => {
  let inst: Installation;
  before(async () => {
    inst = await installation();
  });
  after(() => inst.remove());

  test("the seed's rule: killed, handed over, every alert exactly once", { timeout: 600_000 }, async (t) => {
    const { events } = fraudScenario(SEED, { users: 120, spanMinutes: 30, keepAfterMatch: true });
    const cutA = Math.floor(events.length * 0.4);
    const cutB = Math.floor(events.length * 0.7);
    // A: 40% of the scenario, then a wave it is killed in the middle of.
    const toA = batchesOf(events.slice(0, cutA));
    const [opening, closing] = wave("a", lastTs(events.slice(0, cutA)));
    toA.push(opening, closing);
    // B: the next 30%, then one burst per partition that shows B has read all of it.
    const toB = batchesOf(events.slice(cutA, cutB));
    const handover = sentinels("b");
    toB.push(handover.flatMap((u) => burst(u, lastTs(events.slice(0, cutB)))));
    // C: a probe burst first (the alert latency right after the handover), the rest, sentinels.
    const end = BASE_TS + 31 * MINUTE;
    const probe = burst("probe", lastTs(events.slice(0, cutB)));
    const finals = sentinels("c");
    const toC = [probe, ...batchesOf(events.slice(cutB)), finals.flatMap((u) => burst(u, end))];
    const input = [...toA, ...toB, ...toC].flat();
    const expected = expectedMatches(input, "past_last_event");
    assert.ok(expected.length > 60 && expected.length < 1000, `one page of alerts holds them (${expected.length})`);

    let { proc, admin } = await inst.begin();
    try {
      const rule = await admin.post<{ id: string }>(
        "/api/v1/rules",
        seedRule("seed", { actions: [{ type: "alert", severity: "high" }] }),
      );
      assert.equal(rule.status, 201, JSON.stringify(rule.body));
      const alerts = async (): Promise<string[]> => {
        const res = await admin.get<{ alerts: Alert[] }>(`/api/v1/alerts?rule=${rule.body.id}&limit=1000`);
        assert.equal(res.status, 200);
        return res.body.alerts.map(alertName);
      };
      const untilAlerted = async (users: readonly string[], timeoutMs = 30_000): Promise<void> => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const got = await alerts();
          const missing = users.filter((u) => !got.some((a) => a.startsWith(`${u}:`)));
          if (missing.length === 0) return;
          if (Date.now() > deadline) assert.fail(`no alert for ${missing.join(", ")} in ${timeoutMs} ms`);
          await new Promise((r) => setTimeout(r, 25));
        }
      };
      const post = async (batch: readonly Tx[]): Promise<void> => {
        const res = await admin.post("/api/v1/streams/transactions/events", batch);
        assert.equal(res.status, 200, JSON.stringify(res.body));
      };
      const eventsIn = async (): Promise<number> =>
        (await admin.get<RuleStats>(`/api/v1/rules/${rule.body.id}`)).body.stats.eventsIn;

      // A, under load; killed once the wave's first alerts show (acknowledged, nothing in flight).
      for (const batch of toA) await post(batch);
      for (let i = 0; i < 2000; i++) {
        if ((await alerts()).some((a) => a.startsWith("wa-"))) break;
      }
      await proc.kill("SIGKILL");

      // B takes over from the store: an empty data dir, the same broker and database.
      ({ proc, admin } = await inst.open());
      for (const batch of toB) await post(batch);
      await untilAlerted(handover);
      const postedToB = toB.flat().length;
      const replayed = (await eventsIn()) - postedToB;
      t.diagnostic(`after SIGKILL, B read ${replayed} events again (those after A's last checkpoint)`);
      assert.ok(replayed >= 0 && replayed <= toA.flat().length);

      // A planned handover: B stops with a last checkpoint, C starts on another empty data dir.
      await proc.kill("SIGTERM");
      ({ proc, admin } = await inst.open());
      const acked = performance.now();
      await post(probe);
      await untilAlerted(["probe"]);
      const latency = performance.now() - acked;
      t.diagnostic(`C's first alert ${latency.toFixed(0)} ms after its batch was posted`);
      assert.ok(latency < CHECKPOINT_INTERVAL_MS, `the first alert after the handover took ${latency} ms`);
      for (const batch of toC.slice(1)) await post(batch);
      await untilAlerted(finals);
      assert.equal(
        await eventsIn(),
        toC.flat().length,
        "C read exactly what was posted to it: nothing again, nothing lost",
      );

      const got = (await alerts()).sort();
      assert.deepEqual(
        got.filter((a, i) => got[i - 1] === a),
        [],
        "no alert twice",
      );
      assert.deepEqual(got, expected, "every expected alert");
    } finally {
      await proc.kill();
    }
  });

  test("a windowed pipeline: killed, handed over, every window result exactly once", {
    timeout: 600_000,
  }, async (t) => {
    const inst = await installation();
    t.after(() => inst.remove());
    const { events } = fraudScenario(SEED + 1, { users: 120, spanMinutes: 30, keepAfterMatch: true });
    // One event per partition two minutes after the rest: the watermark passes every window above.
    const flush = sentinels("flush").map((user) => ({ ...burst(user, BASE_TS + 33 * MINUTE)[0]!, amount: 0 }));
    const toA = batchesOf(events.slice(0, Math.floor(events.length * 0.4)));
    const toB = batchesOf(events.slice(toA.flat().length, Math.floor(events.length * 0.7)));
    const toC = [...batchesOf(events.slice(toA.flat().length + toB.flat().length)), flush];
    const expected = new Map<string, { n: number; total: number }>();
    for (const e of events) {
      const k = `${e.user_id}|${e.timestamp - (e.timestamp % MINUTE)}`;
      const cur = expected.get(k) ?? { n: 0, total: 0 };
      expected.set(k, { n: cur.n + 1, total: Math.round((cur.total + e.amount) * 100) / 100 });
    }

    let { proc, admin } = await inst.begin();
    try {
      const pipeline = await admin.post("/api/v1/pipelines", {
        name: "per_minute",
        sql: `SELECT user_id, window_start, window_end, count(*) AS n, sum(amount) AS total
              FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`,
        // From the end of the input when it starts: a process that found no state would start
        // there with empty windows, not recompute them from the beginning.
        startFrom: "now",
        options: { outOfOrderness: "0s", checkpointInterval: `${CHECKPOINT_INTERVAL_MS}ms` },
      });
      assert.equal(pipeline.status, 201, JSON.stringify(pipeline.body));
      const post = async (batch: readonly Tx[]): Promise<void> => {
        const res = await admin.post("/api/v1/streams/transactions/events", batch);
        assert.equal(res.status, 200, JSON.stringify(res.body));
      };
      // A under load, killed right after its last acknowledgement (results written after its last
      // checkpoint are the ones B must not write again).
      for (const batch of toA) await post(batch);
      await proc.kill("SIGKILL");
      ({ proc, admin } = await inst.open());
      for (const batch of toB) await post(batch);
      await proc.kill("SIGTERM");
      ({ proc, admin } = await inst.open());
      for (const batch of toC) await post(batch);

      // The output stream as the broker holds it (committed records), read until every window is in.
      const reader = createKafkaEventLog({
        brokers: inst.brokers,
        clientId: "runnel-test-task-move",
        topicPrefix: inst.topicPrefix,
      });
      await reader.open();
      const got = new Map<string, { n: number; total: number }>();
      const duplicates: string[] = [];
      try {
        const positions = new Array<number>(PARTITIONS).fill(0);
        const deadline = Date.now() + 60_000;
        while (got.size + duplicates.length < expected.size && Date.now() < deadline) {
          let read = 0;
          for (let p = 0; p < PARTITIONS; p++) {
            const records = await reader.read("per_minute", p, positions[p]!, { maxRecords: 1000 });
            for (const r of records) {
              const v = JSON.parse(new TextDecoder().decode(r.value)) as Record<string, unknown>;
              const k = `${v.user_id}|${Date.parse(String(v.window_start))}`;
              if (got.has(k)) duplicates.push(k);
              got.set(k, { n: Number(v.n), total: Math.round(Number(v.total) * 100) / 100 });
            }
            read += records.length;
            if (records.length > 0) positions[p] = records[records.length - 1]!.offset + 1;
          }
          if (read === 0) await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        await reader.close();
      }
      assert.deepEqual(duplicates, [], "no window result written twice");
      assert.deepEqual(
        [...expected.keys()].filter((k) => !got.has(k)),
        [],
        "no window result missing",
      );
      assert.equal(got.size, expected.size, "no window result the offline computation has not");
      for (const [k, v] of expected) assert.deepEqual(got.get(k), v, k);
    } finally {
      await proc.kill();
    }
  });
});
