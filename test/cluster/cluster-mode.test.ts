/**
 * Cluster mode end to end (issue 19): three `runnel start` processes of one installation on the
 * fault rig's three brokers (scripts/kafka-cluster.sh, 10 s group sessions) and a PostgreSQL
 * database of their own. Each owns a share of the slots; GET /api/v1/cluster lists them all; a
 * SIGKILLed instance's slots go to the others within the session timeout + 10 s, and its restart
 * under the same id answers /readyz 503 until it has joined again; an instance paused (SIGSTOP)
 * past its session drops its slots as fenced when it continues.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Admin } from "@platformatic/kafka";
import { type KafkaCluster, kafkaCluster } from "../helpers/kafka-cluster.js";
import { onServer, postgresServerUrl, withDatabase } from "../helpers/postgres.js";
import { Instance, type InstanceSettings, sleep, waitFor } from "./instances.js";

const SLOTS = 6;
const SESSION_TIMEOUT_MS = 10_000; // group.consumer.session.timeout.ms in scripts/kafka-cluster.sh
const ALL = Array.from({ length: SLOTS }, (_, i) => i);

let rig: KafkaCluster;
let database: { url: string; drop: () => Promise<void> } | undefined;
let settings: InstanceSettings;
const instances = new Map<string, Instance>();

function instance(id: string): Instance {
  const found = instances.get(id);
  if (found !== undefined) return found;
  const created = new Instance(id, settings);
  instances.set(id, created);
  return created;
}

/**
 * The owned slots of `members` once they are disjoint, cover every slot and are spread evenly (the
 * broker's uniform assignor converges there over a few heartbeats), else undefined.
 */
function shared(members: readonly Instance[]): Map<string, readonly number[]> | undefined {
  const owned = members.map((m) => m.owned());
  const all = owned.flat().sort((a, b) => a - b);
  if (all.join() !== ALL.join()) return undefined;
  const sizes = owned.map((o) => o.length);
  if (Math.max(...sizes) - Math.min(...sizes) > 1) return undefined;
  return new Map(members.map((m, i) => [m.id, owned[i]!]));
}

before(async () => {
  rig = await kafkaCluster();
  const tag = randomBytes(3).toString("hex");
  const server = postgresServerUrl();
  const name = `runnel_cluster_mode_${tag}`;
  await onServer(server, `CREATE DATABASE ${name}`);
  database = {
    url: withDatabase(server, name),
    drop: () => onServer(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
  settings = {
    brokers: rig.brokers,
    databaseUrl: database.url,
    topicPrefix: `runnel-test-cm-${tag}-`,
    installation: `cm-${tag}`,
    slots: SLOTS,
  };
});

after(async () => {
  await Promise.all([...instances.values()].map((i) => i.remove()));
  await database?.drop();
  if (settings === undefined) return;
  const admin = new Admin({ clientId: "runnel-test-cm", bootstrapBrokers: rig.brokers.split(",") });
  try {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(settings.topicPrefix));
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } finally {
    await admin.close();
  }
});

describe("three instances on the fault rig", () => {
  let token: string;

  test("each owns a share of the slots; GET /api/v1/cluster lists all three, live, with their endpoints", async (t) => {
    // All at once on a new database: one migrates it and creates the admin account, the others wait or find it.
    const members = ["a", "b", "c"].map(instance);
    await Promise.all(members.map((m) => m.start()));
    const a = members[0]!;
    const split = await waitFor("the three to share the slots", 60_000, () => shared(members));
    t.diagnostic(`slots: ${JSON.stringify(Object.fromEntries(split))}`);

    for (const m of members) {
      const ready = await waitFor(`${m.id} ready`, 30_000, async () => {
        const res = await m.get("/readyz");
        return res.status === 200 ? res.body : undefined;
      });
      assert.equal((ready.components as Record<string, boolean>).cluster, true);
    }
    token = await a.login();
    const listed = await waitFor("the registry to list every instance's slots", 15_000, async () => {
      const { status, body } = await members[1]!.get("/api/v1/cluster", token);
      assert.equal(status, 200, JSON.stringify(body));
      const rows = body.instances as { id: string; slots: number[] }[];
      return rows.length === 3 && rows.every((r) => r.slots.join() === split.get(r.id)?.join()) ? body : undefined;
    });
    assert.equal(listed.mode, "cluster");
    assert.equal(listed.installation, settings.installation);
    assert.equal(listed.instanceId, "b");
    assert.equal(listed.slots, SLOTS);
    assert.equal(listed.sessionTimeoutMs, SESSION_TIMEOUT_MS);
    const rows = listed.instances as { id: string; url: string; live: boolean; self: boolean }[];
    assert.deepEqual(
      rows.map((r) => [r.id, r.url, r.live, r.self]),
      members.map((m) => [m.id, m.url, true, m.id === "b"]),
      "each instance at the URL it listens on (the default advertised URL)",
    );
    const denied = await a.get("/api/v1/cluster");
    assert.equal(denied.status, 401);
  });

  test("kill -9: the slots move to the others within the session timeout + 10 s", async (t) => {
    const [a, b, c] = ["a", "b", "c"].map(instance) as [Instance, Instance, Instance];
    const bHad = b.owned();
    const killedAt = Date.now();
    await b.kill9();
    const moved = await waitFor("a and c to own every slot", SESSION_TIMEOUT_MS + 20_000, () => shared([a, c]));
    const movedAt = Math.max(...[a, c].map((m) => m.ownedHistory().at(-1)!.at));
    t.diagnostic(`kill -9 of b (had ${JSON.stringify(bHad)}): a and c own every slot ${movedAt - killedAt} ms later`);
    assert.ok(movedAt - killedAt <= SESSION_TIMEOUT_MS + 10_000, `moved after ${movedAt - killedAt} ms`);
    assert.deepEqual(
      [...(moved.get("a") ?? []), ...(moved.get("c") ?? [])].sort(),
      [...ALL].sort(),
      "nothing lost, nothing owned twice",
    );
    await b.start();
    await waitFor("b to take a share again", 30_000, () => shared([a, b, c]));
  });

  test("a restart straight after kill -9 answers /readyz 503 until the old session has expired and it is back", async (t) => {
    const [a, b, c] = ["a", "b", "c"].map(instance) as [Instance, Instance, Instance];
    const killedAt = Date.now();
    await c.kill9();
    await c.start();
    // The broker still holds c's old session: the new process may not join under its id yet.
    const early = await c.get("/readyz");
    assert.equal(early.status, 503, JSON.stringify(early.body));
    const details = early.body.details as { components: Record<string, boolean> };
    assert.equal(details.components.cluster, false);
    assert.match(early.body.message as string, /not ready: cluster/);
    const readyAt = await waitFor("the restarted c to be ready with a share", SESSION_TIMEOUT_MS + 30_000, async () => {
      if (shared([a, b, c]) === undefined) return undefined;
      const res = await c.get("/readyz");
      return res.status === 200 ? Date.now() : undefined;
    });
    t.diagnostic(`c restarted at once: /readyz 503, then 200 ${readyAt - killedAt} ms after the kill`);
    assert.ok(readyAt - killedAt >= SESSION_TIMEOUT_MS - 3_000, "not before the old session could expire");
  });

  test("SIGSTOP past the session: the others take the slots; on SIGCONT the paused one drops them as fenced", async (t) => {
    const [a, b, c] = ["a", "b", "c"].map(instance) as [Instance, Instance, Instance];
    await waitFor("the three to share the slots", 30_000, () => shared([a, b, c]));
    const cHad = c.owned();
    const fencedBefore = c.revoked("fenced").length;
    c.signal("SIGSTOP");
    const stoppedAt = Date.now();
    try {
      await waitFor("a and b to own every slot", SESSION_TIMEOUT_MS + 20_000, () => shared([a, b]));
      const movedAt = Math.max(...[a, b].map((m) => m.ownedHistory().at(-1)!.at));
      t.diagnostic(
        `SIGSTOP of c (had ${JSON.stringify(cHad)}): a and b own every slot ${movedAt - stoppedAt} ms later`,
      );
    } finally {
      c.signal("SIGCONT");
    }
    const contAt = Date.now();
    const fenced = await waitFor("c to drop its slots as fenced", 15_000, () => c.revoked("fenced")[fencedBefore]);
    assert.deepEqual(fenced.slots, cHad, "every slot it held");
    t.diagnostic(`SIGCONT of c: revoked as fenced ${fenced.at - contAt} ms later`);
    const dropped = c.ownedHistory().find((h) => h.at >= fenced.at && h.owned.length === 0);
    assert.ok(dropped !== undefined, "the runners followed the drop to no slot at all");
    const back = await waitFor("c to share the slots again", 30_000, () => shared([a, b, c]));
    t.diagnostic(`then shared again: ${JSON.stringify(Object.fromEntries(back))}`);
    await sleep(0);
  });
});
