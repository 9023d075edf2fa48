/**
 * The seed's fraud rule end to end against the real server (the CLI in a child process): 200
 * users' seeded transactions posted in event-time order while the rule runs; the alerts are
 * exactly the offline computation's matches (test/e2e/fraud-data.ts); only matched users are
 * blocked, their next transaction gets 423 while everyone else's passes; lifting a block restores
 * ingestion and shows in the user's activity; a `user` sees only alerts about themselves.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Client } from "../helpers/http.js";
import { ADMIN_PASSWORD, startServerProcess, tempDataDir } from "../helpers/server-process.js";
import { alertName, BASE_TS, expectedMatches, fraudScenario, MINUTE, seedRule, type Tx } from "./fraud-data.js";

const SEED = 20_250_106;
const BATCH = 50;

interface Alert {
  id: string;
  ruleId: string;
  userId: string | null;
  severity: string;
  events: Array<Record<string, unknown>>;
}

test("the seed's rule: exact alerts for 200 users, 423 for the blocked only, unblock restores ingestion", async () => {
  const { events, categoryOf } = fraudScenario(SEED);
  const expected = expectedMatches(events, "past_last_event");
  const matchedUsers = new Set(expected.map((m) => m.slice(0, m.indexOf(":"))));
  // The scenario is what it claims to be: every kind of user is there, and most crossers match.
  const count = (c: string) => [...matchedUsers].filter((u) => categoryOf.get(u) === c).length;
  assert.ok(count("crosses") >= 45, `crossers matched: ${count("crosses")}`);
  assert.equal(count("close"), 0);
  assert.equal(count("outside_window"), 1, "only the 5 minutes less 1 ms boundary user matches");
  assert.equal(expected.length, matchedUsers.size, "one match per matched user");

  const data = await tempDataDir();
  const server = await startServerProcess(data.dir);
  try {
    const admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
    assert.equal((await admin.post("/api/v1/streams", { name: "transactions", partitions: 4 })).status, 201);
    // One matched user has an account, to check activity and alert scoping.
    const watched = [...matchedUsers].sort()[0] as string;
    const created = await admin.post("/api/v1/users", {
      username: watched,
      email: `${watched}@example.com`,
      password: "watched-password-1",
      role: "user",
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const rule = await admin.post<{ id: string }>("/api/v1/rules", seedRule("burst-of-large-transactions"));
    assert.equal(rule.status, 201, JSON.stringify(rule.body));

    // In event-time order, so no partition's watermark passes an event before it arrives. A user
    // who will match is posted alone: a block refuses the whole request, and only their own.
    let accepted = 0;
    const refusedUsers = new Set<string>();
    const refusedBefore: string[] = [];
    const seenLargeCount = new Map<string, number>();
    let batch: Tx[] = [];
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const res = await admin.post("/api/v1/streams/transactions/events", batch);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      accepted += batch.length;
      batch = [];
    };
    for (const e of events) {
      if (!matchedUsers.has(e.user_id)) {
        batch.push(e);
        if (batch.length >= BATCH) await flush();
        continue;
      }
      await flush();
      const res = await admin.post<{ error?: string }>("/api/v1/streams/transactions/events", e);
      if (res.status === 200) {
        accepted++;
      } else {
        assert.equal(res.status, 423, JSON.stringify(res.body));
        assert.equal(res.body.error, "user_blocked");
        refusedUsers.add(e.user_id);
        // Only events after the user's match may be refused (the block comes from that match).
        if ((seenLargeCount.get(e.user_id) ?? 0) < 4) refusedBefore.push(e.tx_id);
      }
      if (e.event_type === "transaction" && e.amount > 500) {
        seenLargeCount.set(e.user_id, (seenLargeCount.get(e.user_id) ?? 0) + 1);
      }
    }
    await flush();
    assert.deepEqual(refusedBefore, [], "no event before a user's match was refused");
    for (const u of refusedUsers) assert.ok(matchedUsers.has(u), `${u} was refused but never matched`);

    // The rule has read everything accepted, so every alert is stored.
    for (let i = 0; ; i++) {
      const r = await admin.get<{ stats: { eventsIn: number } }>(`/api/v1/rules/${rule.body.id}`);
      if (r.body.stats.eventsIn >= accepted) break;
      assert.ok(i < 2400, `the rule read ${r.body.stats.eventsIn} of ${accepted} events`);
      await new Promise((res) => setTimeout(res, 25));
    }
    const alerts = await admin.get<{ alerts: Alert[] }>(`/api/v1/alerts?rule=${rule.body.id}&limit=1000`);
    assert.equal(alerts.status, 200);
    assert.deepEqual(alerts.body.alerts.map(alertName).sort(), expected);
    for (const a of alerts.body.alerts) assert.equal(a.severity, "high");

    const blocks = await admin.get<{ blocks: Array<{ userId: string; stream: string; ruleId: string }> }>(
      "/api/v1/blocks",
    );
    assert.deepEqual(blocks.body.blocks.map((b) => b.userId).sort(), [...matchedUsers].sort());
    for (const b of blocks.body.blocks) assert.deepEqual([b.stream, b.ruleId], ["transactions", rule.body.id]);

    // The next transaction: 423 for every blocked user, 200 for every other one.
    const later = BASE_TS + 120 * MINUTE;
    const next = (user: string, i: number): Tx => ({
      user_id: user,
      event_type: "transaction",
      amount: 20,
      timestamp: later + i,
      tx_id: `next-${user}-${i}`,
    });
    for (const user of [...categoryOf.keys()]) {
      const res = await admin.post<{ error?: string }>("/api/v1/streams/transactions/events", next(user, 0));
      if (matchedUsers.has(user)) {
        assert.equal(res.status, 423, `${user}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error, "user_blocked");
      } else {
        assert.equal(res.status, 200, `${user}: ${JSON.stringify(res.body)}`);
      }
    }

    // A user sees only alerts about themselves, whatever they ask for.
    const user = await new Client(server.url).login(watched, "watched-password-1");
    const own = await user.get<{ alerts: Alert[] }>("/api/v1/alerts?user=u199&limit=1000");
    assert.equal(own.status, 200);
    assert.deepEqual(
      own.body.alerts.map((a) => a.userId),
      [watched],
    );

    // Review done: lifting each block restores ingestion for that user.
    for (const u of matchedUsers) {
      const lifted = await admin.delete(`/api/v1/blocks/${u}?stream=transactions`);
      assert.equal(lifted.status, 204, `${u}: ${JSON.stringify(lifted.body)}`);
      const res = await admin.post("/api/v1/streams/transactions/events", next(u, 1));
      assert.equal(res.status, 200, `${u} after unblock: ${JSON.stringify(res.body)}`);
    }
    assert.deepEqual((await admin.get<{ blocks: unknown[] }>("/api/v1/blocks")).body.blocks, []);
    // Newest first: the block by the rule, then the admin's lifting of it.
    const activity = await user.get<{ activity: Array<{ kind: string }> }>("/api/v1/me/activity");
    const kinds = activity.body.activity.map((a) => a.kind).filter((k) => k === "blocked" || k === "unblocked");
    assert.deepEqual(kinds, ["unblocked", "blocked"]);
  } finally {
    await server.kill();
    await data.remove();
  }
});
