/**
 * The change feed against a real PostgreSQL (a fresh database of its own): changes written by one
 * store reach the feed of another instance, their own writes are marked as such, a missed
 * notification is healed by the version poll, and a killed LISTEN connection comes back and
 * catches up.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  type ControlChangeHandler,
  type ControlKind,
  PostgresChangeFeed,
  type RowChange,
} from "../../src/control/change-feed.js";
import { createPostgresControlStore } from "../../src/control/index.js";
import type { ControlStore } from "../../src/control/types.js";
import { terminateFeeds } from "../helpers/change-feed.js";
import { onServer, postgresServerUrl, withDatabase } from "../helpers/postgres.js";

class Recorder implements ControlChangeHandler {
  readonly rows: RowChange[] = [];
  readonly resyncs: ControlKind[] = [];
  readonly alerts: string[] = [];
  readonly missed: number[] = [];
  async rowChanged(change: RowChange): Promise<void> {
    this.rows.push(change);
  }
  async resync(kind: ControlKind): Promise<void> {
    this.resyncs.push(kind);
  }
  async alertsAdded(ids: readonly string[]): Promise<void> {
    this.alerts.push(...ids);
  }
  async alertsMissed(since: number): Promise<void> {
    this.missed.push(since);
  }
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function alert(ruleId: string, n: number) {
  const t = new Date().toISOString();
  return {
    id: `alert-${randomUUID()}`,
    ruleId,
    matchId: `m${n}`,
    ruleName: "r",
    key: "u1",
    userId: "u1",
    userIds: ["u1"],
    severity: "high",
    timedOut: false,
    events: [],
    firstEventTime: t,
    lastEventTime: t,
  };
}

describe("PostgreSQL change feed", () => {
  const server = postgresServerUrl();
  const database = `runnel_test_${randomBytes(6).toString("hex")}`;
  const url = withDatabase(server, database);
  let a: ControlStore;
  let b: ControlStore;

  before(async () => {
    await onServer(server, `CREATE DATABASE ${database}`);
    a = createPostgresControlStore(url, { origin: "instance-a" });
    b = createPostgresControlStore(url, { origin: "instance-b" });
    await a.open();
    await b.open();
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await onServer(server, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  });

  it("reads every kind once on start, then hears each committed row change with its key and origin", async () => {
    const heard = new Recorder();
    const feed = new PostgresChangeFeed({ url, origin: "instance-b", handler: heard, resyncIntervalMs: 60_000 });
    await feed.start();
    try {
      await feed.idle();
      assert.deepEqual([...heard.resyncs].sort(), ["block", "pipeline", "rule", "stream"]);
      await a.createStream({ name: "clicks", partitions: 2, timestampField: "time" });
      const rule = await a.createRule({ id: randomUUID(), name: "r", stream: "clicks", spec: {}, enabled: true });
      await a.updateRule(rule.id, { enabled: false });
      await b.putBlock({ userId: "u1", stream: "clicks", ruleId: rule.id, alertId: "x" });
      await a.deleteBlocks("u1");
      await a.deleteRule(rule.id);
      await until("six changes", () => heard.rows.length >= 6);
      await feed.idle();
      assert.deepEqual(
        heard.rows.map((r) => [r.kind, r.key, r.own]),
        [
          ["stream", "clicks", false],
          ["rule", rule.id, false],
          ["rule", rule.id, false],
          ["block", "u1", true],
          ["block", "u1", false],
          ["rule", rule.id, false],
        ],
      );
      assert.equal(heard.rows[3]?.stream, "clicks");
      assert.deepEqual([...heard.resyncs].sort(), ["block", "pipeline", "rule", "stream"], "no resync: nothing missed");
    } finally {
      await feed.stop();
    }
  });

  it("announces alerts stored by another instance, in chunks, and not the instance's own", async () => {
    const heard = new Recorder();
    const feed = new PostgresChangeFeed({ url, origin: "instance-b", handler: heard, resyncIntervalMs: 60_000 });
    await feed.start();
    try {
      const ruleId = randomUUID();
      const theirs = Array.from({ length: 250 }, (_, i) => alert(ruleId, i));
      await a.recordAlerts(theirs);
      await b.recordAlerts([alert(ruleId, 1000)]);
      // Replays are not new: nothing to announce.
      await a.recordAlerts(theirs.slice(0, 10));
      await until("250 alerts", () => heard.alerts.length >= 250);
      await a.recordAlerts([alert(ruleId, 2000)]);
      await until("one more", () => heard.alerts.length >= 251);
      await feed.idle();
      assert.deepEqual(
        heard.alerts.slice(0, 250),
        theirs.map((t) => t.id),
      );
      assert.equal(heard.alerts.length, 251);
    } finally {
      await feed.stop();
    }
  });

  it("a change whose notification never came is found by the version poll", async () => {
    const heard = new Recorder();
    const feed = new PostgresChangeFeed({ url, origin: "instance-b", handler: heard, resyncIntervalMs: 300 });
    await feed.start();
    try {
      await feed.idle();
      heard.resyncs.length = 0;
      // A pipeline row changed with its trigger off: no notification, only the version moves.
      await onServer(
        url,
        `BEGIN; ALTER TABLE pipelines DISABLE TRIGGER pipelines_changed;
         INSERT INTO pipelines (name, sql, start_from) VALUES ('p', 'SELECT * FROM clicks', 'now');
         UPDATE control_versions SET version = version + 1 WHERE kind = 'pipeline';
         ALTER TABLE pipelines ENABLE TRIGGER pipelines_changed; COMMIT`,
      );
      await until("a pipeline resync", () => heard.resyncs.includes("pipeline"), 5000);
      assert.deepEqual(heard.resyncs, ["pipeline"]);
      assert.equal(heard.rows.length, 0);
    } finally {
      await feed.stop();
    }
  });

  it("stops at once while waiting to reconnect", async () => {
    const feed = new PostgresChangeFeed({
      url,
      origin: "instance-b",
      handler: new Recorder(),
      resyncIntervalMs: 60_000,
      reconnectMs: { min: 30_000, max: 30_000 },
    });
    await feed.start();
    assert.equal(await terminateFeeds(url), 1);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await feed.stop();
    assert.ok(Date.now() - started < 2000, `stop took ${Date.now() - started} ms`);
  });

  it("comes back after its connection is terminated, and reads again what changed meanwhile", async () => {
    const heard = new Recorder();
    const errors: string[] = [];
    const feed = new PostgresChangeFeed({
      url,
      origin: "instance-b",
      handler: heard,
      resyncIntervalMs: 60_000,
      reconnectMs: { min: 200, max: 400 },
      onError: (_err, what) => errors.push(what),
    });
    await feed.start();
    try {
      await feed.idle();
      heard.resyncs.length = 0;
      const terminated = await terminateFeeds(url);
      assert.equal(terminated, 1);
      // Written while the feed is deaf (it reconnects after at least 200 ms).
      await a.putBlock({ userId: "u9", stream: "clicks", ruleId: randomUUID(), alertId: "y" });
      await until("a block resync", () => heard.resyncs.includes("block"));
      await until("the missed alerts offered", () => heard.missed.length === 1);
      assert.ok(errors.includes("the change feed's connection"), errors.join(", "));
      // Listening again.
      await a.deleteBlocks("u9");
      await until("the lift heard", () => heard.rows.some((r) => r.kind === "block" && r.key === "u9"));
    } finally {
      await feed.stop();
    }
  });
});
