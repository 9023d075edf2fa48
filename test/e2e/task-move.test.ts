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
 * - The windowed pipeline's half of the test joins this file once pipelines run as tasks
 *   on the checkpoint store (the task driver); it will share `installation()` and the handovers.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, test } from "node:test";
import { partitionForKey } from "../../src/log/partitioner.js";
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
function installation() {
  const database = `runnel_move_${randomBytes(5).toString("hex")}`;
  const server = postgresServerUrl();
  const brokers = kafkaBrokers();
  const env = {
    RUNNEL_DATABASE_URL: withDatabase(server, database),
    RUNNEL_KAFKA_BROKERS: brokers,
    RUNNEL_KAFKA_TOPIC_PREFIX: `${database}_`,
  };
  const dirs: Array<{ remove(): Promise<void> }> = [];
  let created = false;
  return {
    async start(): Promise<ServerProcess> {
      if (!created) {
        await onServer(server, `CREATE DATABASE ${database}`);
        created = true;
      }
      const data = await tempDataDir();
      dirs.push(data);
      return startServerProcess(data.dir, env);
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

const lastTs = (events: readonly Tx[]): number => (events[events.length - 1] as Tx).timestamp;

describe("moving tasks between processes on Kafka and PostgreSQL", () => {
  const inst = installation();
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

    let proc: ServerProcess | undefined;
    try {
      proc = await inst.start();
      let admin = await new Client(proc.url).login("admin", ADMIN_PASSWORD);
      const created = await admin.post("/api/v1/streams", { name: "transactions", partitions: PARTITIONS });
      assert.equal(created.status, 201, JSON.stringify(created.body));
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
      proc = await inst.start();
      admin = await new Client(proc.url).login("admin", ADMIN_PASSWORD);
      for (const batch of toB) await post(batch);
      await untilAlerted(handover);
      const postedToB = toB.flat().length;
      const replayed = (await eventsIn()) - postedToB;
      t.diagnostic(`after SIGKILL, B read ${replayed} events again (those after A's last checkpoint)`);
      assert.ok(replayed >= 0 && replayed <= toA.flat().length);

      // A planned handover: B stops with a last checkpoint, C starts on another empty data dir.
      await proc.kill("SIGTERM");
      proc = await inst.start();
      admin = await new Client(proc.url).login("admin", ADMIN_PASSWORD);
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
      await proc?.kill();
    }
  });

  // The windowed pipeline's half: once pipelines run as tasks on the checkpoint store, a windowed
  // pipeline runs beside the rule through the same kill and handover, and its window results
  // equal an offline computation.
  test.todo("a windowed pipeline: killed, handed over, every window result exactly once");
});
