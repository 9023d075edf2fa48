/**
 * Two instances of one installation in this process (issue 19, "blocks and rules everywhere"):
 * each its own data directory, both on one real PostgreSQL (a fresh database) and one real Kafka
 * broker (a topic prefix of their own). What is changed through A takes effect on B: streams,
 * rules, pipelines, blocks raised by a rule and lifted by an admin, and alerts reach B's live
 * listeners, scoped as locally. B's change feed connection is then terminated, and changes still
 * arrive.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createPostgresControlStore } from "../../src/control/index.js";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";
import { terminateFeeds } from "../helpers/change-feed.js";
import { kafkaBrokers } from "../helpers/kafka.js";
import { until } from "../helpers/poll.js";
import { onServer, postgresServerUrl, withDatabase } from "../helpers/postgres.js";
import { openSse } from "../helpers/sse.js";

const server = postgresServerUrl();
const database = `runnel_sync_${randomBytes(5).toString("hex")}`;
const url = withDatabase(server, database);
const env = {
  // The archive both instances read (cluster mode refuses one of each instance's own); a
  // directory, since the S3 client of an in-process server reads this process's environment.
  RUNNEL_ARCHIVE_URL: mkdtempSync(join(tmpdir(), "runnel-sync-archive-")),
  RUNNEL_DATABASE_URL: url,
  RUNNEL_KAFKA_BROKERS: kafkaBrokers(),
  RUNNEL_KAFKA_TOPIC_PREFIX: `${database}_`,
  // Cluster mode (Kafka and PostgreSQL): an installation of their own, each a member of its group.
  RUNNEL_INSTALLATION: database,
  // A token issued by one instance is accepted by the other.
  RUNNEL_TOKEN_SECRET: randomBytes(24).toString("hex"),
  RUNNEL_LOG_LEVEL: process.env.SYNC_LOG ?? "silent",
};
let a: TestRunnel;
let b: TestRunnel;
let bUrl = "";

const BURST = {
  stream: "transactions",
  key: "user_id",
  pattern: [{ name: "large", where: "event_type = 'transaction' AND amount > 500", times: { min: 4 } }],
  within: "5m",
  skip: "past_last_event",
};

function tx(user: string, amount: number, minute: number): Record<string, unknown> {
  return { user_id: user, event_type: "transaction", amount, timestamp: Date.UTC(2025, 0, 1, 12, minute) };
}

function ingest(t: TestRunnel, events: unknown, token = t.adminToken) {
  return t.call("POST", "/api/v1/streams/transactions/events", { token, body: events });
}

/** Whether the instance answering runs the pipeline (the tasks of the partitions it owns, if any). */
function startedOn(r: { status: number; body: Record<string, unknown> }): boolean {
  const stats = r.body.stats as { running: boolean } | undefined;
  return r.status === 200 && r.body.enabled === true && stats?.running === true;
}

/** Lifts the user's block through A and waits for B's ingest to admit the user. */
async function liftOnAUntilBAdmits(user: string): Promise<void> {
  const lifted = await a.call("DELETE", `/api/v1/blocks/${user}`, { token: a.adminToken });
  assert.equal(lifted.status, 204, JSON.stringify(lifted.body));
  await until(
    () => ingest(b, tx(user, 10, 9)),
    (r) => r.status === 200,
    "B to admit the user again",
  );
}

/** Rule ids B runs a runner for, as its metrics list them (a runner's state gauges). */
async function runningRules(t: TestRunnel): Promise<string[]> {
  const res = await t.app.inject({ method: "GET", url: "/metrics" });
  const names = new Set<string>();
  for (const line of res.body.split("\n")) {
    const m = /^runnel_cep_state_keys\{.*rule="([^"]+)"/.exec(line);
    if (m?.[1] !== undefined) names.add(m[1]);
  }
  return [...names].sort();
}

before(async () => {
  await onServer(server, `CREATE DATABASE ${database}`);
  // Both listen: a query through one is answered by the owners of its partitions over HTTP.
  a = await startTestRunnel({ env: { ...env, RUNNEL_INSTANCE_ID: "a" }, listen: true });
  b = await startTestRunnel({ env: { ...env, RUNNEL_INSTANCE_ID: "b" }, listen: true });
  bUrl = b.runnel.url;
  // The group settled (each instance owns slots) and each instance ready (its tasks restored):
  // a rebalance during a test restores rule tasks from their checkpoints, and a replayed match
  // raises its block again (docs/cep.md), which would undo a lift the test just made.
  await until(
    () => a.call("GET", "/api/v1/cluster", { token: a.adminToken }),
    (r) => {
      const instances = (r.body.instances ?? []) as Array<{ slots: number[] }>;
      return instances.length === 2 && instances.every((i) => i.slots.length > 0);
    },
    "both instances to own slots",
  );
  for (const t of [a, b])
    await until(
      () => t.call("GET", "/readyz"),
      (r) => r.status === 200,
      "readiness",
    );
});

after(async () => {
  await b?.close();
  await a?.close();
  await onServer(server, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
});

describe("control changes made through one instance take effect on the other", () => {
  test("a stream created on A is ingested into and queried on B; deleted on A, B refuses it", async () => {
    const made = await a.call("POST", "/api/v1/streams", {
      token: a.adminToken,
      body: { name: "scratch", partitions: 2 },
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const sent = await b.call("POST", "/api/v1/streams/scratch/events", {
      token: b.adminToken,
      body: { user_id: "u1", n: 1 },
    });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    // Answered through B from the instances owning the stream's partitions (each loads its own).
    const counted = await until(
      () =>
        b.call("POST", "/api/v1/query", { token: b.adminToken, body: { sql: "SELECT count(*) AS n FROM scratch" } }),
      (r) => r.status === 200 && JSON.stringify(r.body.rows) === "[[1]]",
      "B's table to hold the event",
    );
    assert.equal(counted.status, 200);
    const gone = await a.call("DELETE", "/api/v1/streams/scratch", { token: a.adminToken });
    assert.equal(gone.status, 204, JSON.stringify(gone.body));
    const refused = await until(
      () => b.call("POST", "/api/v1/streams/scratch/events", { token: b.adminToken, body: { user_id: "u1" } }),
      (r) => r.status !== 200,
      "B to forget the stream",
    );
    assert.equal(refused.body.error, "stream_not_found", JSON.stringify(refused.body));
  });

  test("a rule created, renamed, disabled, enabled and deleted on A is run, renamed, stopped, started and dropped on B", async () => {
    const made = await a.call("POST", "/api/v1/streams", {
      token: a.adminToken,
      body: { name: "transactions", partitions: 2 },
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const created = await a.call("POST", "/api/v1/rules", {
      token: a.adminToken,
      body: { ...BURST, name: "watch", actions: [{ type: "alert", severity: "low" }] },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    await until(
      () => runningRules(b),
      (r) => r.includes("watch"),
      "B to run the rule",
    );
    const renamed = await a.call("PATCH", `/api/v1/rules/${id}`, { token: a.adminToken, body: { name: "watch2" } });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    await until(
      () => runningRules(b),
      (r) => r.includes("watch2") && !r.includes("watch"),
      "B to rename it",
    );
    await a.call("PATCH", `/api/v1/rules/${id}`, { token: a.adminToken, body: { enabled: false } });
    await until(
      () => runningRules(b),
      (r) => !r.includes("watch2"),
      "B to stop it",
    );
    await a.call("PATCH", `/api/v1/rules/${id}`, { token: a.adminToken, body: { enabled: true } });
    await until(
      () => runningRules(b),
      (r) => r.includes("watch2"),
      "B to start it again",
    );
    const deleted = await a.call("DELETE", `/api/v1/rules/${id}`, { token: a.adminToken });
    assert.equal(deleted.status, 204);
    await until(
      () => runningRules(b),
      (r) => !r.includes("watch2"),
      "B to drop it",
    );
  });

  test("a block raised by a rule is refused by both instances' ingest; lifted on A, B admits the user", async () => {
    const created = await a.call("POST", "/api/v1/rules", {
      token: a.adminToken,
      body: { ...BURST, name: "burst", actions: [{ type: "alert", severity: "high" }, { type: "block" }] },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await until(
      () => runningRules(b),
      (r) => r.includes("burst"),
      "B to run the rule",
    );
    const live = await openSse(`${bUrl}/api/v1/alerts/stream`, b.adminToken);
    try {
      // Into A only; the instance owning the user's partition matches, and both must refuse.
      const sent = await ingest(
        a,
        [600, 700, 800, 900].map((amount, i) => tx("fraudster", amount, i)),
      );
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      for (const [name, t] of [
        ["A", a],
        ["B", b],
      ] as const) {
        const refused = await until(
          () => ingest(t, tx("fraudster", 10, 9)),
          (r) => r.status !== 200,
          `${name} to refuse the blocked user`,
        );
        assert.equal(refused.body.error, "user_blocked", `${name}: ${JSON.stringify(refused.body)}`);
      }
      await until(
        async () => live.text(),
        (text) => text.includes('"userId":"fraudster"'),
        "the alert on B's stream",
      );
      await liftOnAUntilBAdmits("fraudster");
      assert.equal(live.text().split("event: alert").length - 1, 1, "the alert pushed once");
    } finally {
      live.close();
    }
  });

  test("alerts stored by another instance reach B's live streams, each user's only to that user", async () => {
    await a.call("POST", "/api/v1/users", {
      token: a.adminToken,
      body: { username: "mallory", email: "m@example.com", password: "mallory-password", role: "user" },
    });
    const mallory = await b.login("mallory", "mallory-password");
    const hers = await openSse(`${bUrl}/api/v1/alerts/stream`, mallory);
    const all = await openSse(`${bUrl}/api/v1/alerts/stream`, b.adminToken);
    // A third instance's store: the alerts are raised by neither A nor B.
    const elsewhere = createPostgresControlStore(url, { origin: "instance-c" });
    await elsewhere.open();
    try {
      const at = new Date().toISOString();
      const alert = (user: string) => ({
        id: `alert-${user}-${randomBytes(4).toString("hex")}`,
        ruleId: randomUUID(),
        matchId: user,
        ruleName: "elsewhere",
        key: user,
        userId: user,
        userIds: [user],
        severity: "high",
        timedOut: false,
        events: [{ user_id: user }],
        firstEventTime: at,
        lastEventTime: at,
      });
      const [hersAlert, bobs] = [alert("mallory"), alert("bob")];
      await elsewhere.recordAlerts([hersAlert, bobs]);
      await until(
        async () => all.text(),
        (text) => text.includes(hersAlert.id) && text.includes(bobs.id),
        "both alerts on B's admin stream",
      );
      await until(
        async () => hers.text(),
        (text) => text.includes(hersAlert.id),
        "hers on her stream",
      );
      assert.ok(!hers.text().includes(bobs.id), "a user sees only her own alerts");
      assert.equal(all.text().split("event: alert").length - 1, 2, "each alert pushed once");
    } finally {
      hers.close();
      all.close();
      await elsewhere.close();
    }
  });

  test("a pipeline created, disabled, enabled and deleted on A is started, stopped and dropped on B", async () => {
    const created = await a.call("POST", "/api/v1/pipelines", {
      token: a.adminToken,
      body: { name: "large_tx", sql: "SELECT user_id, amount FROM transactions WHERE amount > 500" },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const onB = () => b.call("GET", "/api/v1/pipelines/large_tx", { token: b.adminToken });
    await until(onB, startedOn, "B to run it");
    await a.call("PATCH", "/api/v1/pipelines/large_tx", { token: a.adminToken, body: { enabled: false } });
    await until(
      onB,
      (r) => r.body.enabled === false && !(r.body.stats as { running: boolean }).running,
      "B to stop it",
    );
    await a.call("PATCH", "/api/v1/pipelines/large_tx", { token: a.adminToken, body: { enabled: true } });
    await until(onB, startedOn, "B to start it");
    const deleted = await a.call("DELETE", "/api/v1/pipelines/large_tx", { token: a.adminToken });
    assert.equal(deleted.status, 204, JSON.stringify(deleted.body));
    await until(onB, (r) => r.status === 404, "B to drop it");
  });

  test("B's change feed connection terminated: changes made meanwhile and after still arrive", async () => {
    assert.equal(await terminateFeeds(url), 2, "A's and B's feeds");
    await a.call("POST", "/api/v1/rules", {
      token: a.adminToken,
      body: { ...BURST, name: "after-loss", actions: [{ type: "alert", severity: "low" }] },
    });
    await until(
      () => runningRules(b),
      (r) => r.includes("after-loss"),
      "B to run the rule made while it was deaf",
    );
    // The block of the rule "burst" (still in place) reaches B over the new connection.
    await ingest(
      a,
      [600, 700, 800, 900].map((amount, i) => tx("eve", amount, 20 + i)),
    );
    await until(
      () => ingest(b, tx("eve", 10, 30)),
      (r) => r.status !== 200,
      "B to refuse eve",
    );
  });
});
