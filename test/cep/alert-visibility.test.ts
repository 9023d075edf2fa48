/**
 * A rule keyed by another field than user_id (here a device) matches several users' events. On the
 * real server (the CLI in a child process): each user sees only their own events of the alert, on
 * the list and on the live stream; another user's card number never reaches them; analysts see
 * the whole alert; `block` blocks exactly the users whose events matched (docs/cep.md, "Who sees
 * an alert, who is blocked").
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client } from "../helpers/http.js";
import { until } from "../helpers/poll.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";

const ALICE_CARD = "4111-ALICE-0001";
const BOB_CARD = "5500-BOB-SECRET-0002";
const CAROL_CARD = "3400-CAROL-0003";

interface Alert {
  id: string;
  key: string;
  userId: string | null;
  userIds: string[];
  events: Array<Record<string, unknown>>;
}

/** An open alert stream, collecting everything it receives. */
interface Feed {
  text(): string;
  close(): void;
}

async function openFeed(baseUrl: string, token: string): Promise<Feed> {
  const controller = new AbortController();
  const res = await fetch(`${baseUrl}/api/v1/alerts/stream`, {
    headers: { authorization: `Bearer ${token}` },
    signal: controller.signal,
  });
  assert.equal(res.status, 200);
  let text = "";
  const decoder = new TextDecoder();
  void (async () => {
    try {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true });
    } catch {
      // Aborted by close().
    }
  })();
  return { text: () => text, close: () => controller.abort() };
}

function alertsIn(feedText: string): Alert[] {
  return feedText
    .split("\n\n")
    .filter((m) => m.includes("event: alert"))
    .map((m) => JSON.parse(/^data: (.*)$/m.exec(m)?.[1] ?? "null") as Alert);
}

describe("alerts of a rule keyed by device", () => {
  let server: ServerProcess;
  let removeDir: () => Promise<void>;
  const tokens: Record<string, string> = {};
  let admin: Client;
  const as = (name: string): Client => admin.as(tokens[name] as string);

  before(async () => {
    const data = await tempDataDir();
    removeDir = data.remove;
    server = await startServerProcess(data.dir);
    const login = async (username: string, password: string): Promise<string> => {
      const res = await new Client(server.url).post<{ token: string }>("/api/v1/auth/login", { username, password });
      assert.equal(res.status, 200, `login ${username}`);
      return res.body.token;
    };
    admin = new Client(server.url, await login("admin", ADMIN_PASSWORD));
    for (const [username, role] of [
      ["alice", "user"],
      ["bob", "user"],
      ["carol", "user"],
      ["dave", "user"],
      ["ana", "analyst"],
    ] as const) {
      const created = await admin.post("/api/v1/users", {
        username,
        email: `${username}@example.com`,
        password: `${username}-password`,
        role,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      tokens[username] = await login(username, `${username}-password`);
    }
    // One partition: events of one device from several users meet (repartitioning by the rule's
    // key is another issue).
    assert.equal((await admin.post("/api/v1/streams", { name: "payments", partitions: 1 })).status, 201);
    const rule = await admin.post("/api/v1/rules", {
      name: "busy-device",
      stream: "payments",
      key: "device",
      pattern: [{ name: "big", where: "amount > 100", times: { exactly: 3 } }],
      within: "5m",
      skip: "past_last_event",
      actions: [{ type: "alert", severity: "high" }, { type: "block" }],
    });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
  });

  after(async () => {
    await server?.kill();
    await removeDir?.();
  });

  it("shows each user only their own events, analysts everything, and blocks exactly the matched users", async () => {
    const feeds: Record<string, Feed> = {};
    for (const name of ["alice", "bob", "carol", "ana"])
      feeds[name] = await openFeed(server.url, tokens[name] as string);
    try {
      const pay = async (user: string, amount: number, card: string) => {
        const res = await as(user).post("/api/v1/streams/payments/events", { device: "d1", amount, card });
        assert.equal(res.status, 200, `${user}: ${JSON.stringify(res.body)}`);
      };
      await pay("carol", 5, CAROL_CARD); // on the device, but matches no step
      await pay("alice", 200, ALICE_CARD);
      await pay("bob", 300, BOB_CARD);
      await pay("bob", 400, BOB_CARD);

      // Analysts: the whole match.
      const seenByAnalyst = await until(
        () => as("ana").get<{ alerts: Alert[] }>("/api/v1/alerts"),
        (r) => r.body.alerts.length > 0,
        "the alert",
      );
      assert.equal(seenByAnalyst.body.alerts.length, 1);
      const whole = seenByAnalyst.body.alerts[0] as Alert;

      // Each user: their own events of it, nobody else named.
      const expected: Record<string, { cards: string[]; foreign: string[] }> = {
        alice: { cards: [ALICE_CARD], foreign: [BOB_CARD, CAROL_CARD, "bob"] },
        bob: { cards: [BOB_CARD, BOB_CARD], foreign: [ALICE_CARD, CAROL_CARD, "alice"] },
      };
      for (const [user, { cards, foreign }] of Object.entries(expected)) {
        const listed = await as(user).get<{ alerts: Alert[] }>("/api/v1/alerts");
        assert.equal(listed.status, 200);
        const raw = JSON.stringify(listed.body);
        for (const f of foreign) assert.ok(!raw.includes(f), `${user}'s /alerts carries "${f}"`);
        assert.equal(listed.body.alerts.length, 1, `${user} sees the alert`);
        const mine = listed.body.alerts[0] as Alert;
        assert.equal(mine.id, whole.id);
        assert.equal(mine.userId, user);
        assert.deepEqual(mine.userIds, [user]);
        assert.deepEqual(
          mine.events.map((e) => e.card),
          cards,
        );

        const feed = feeds[user] as Feed;
        await until(
          async () => alertsIn(feed.text()),
          (a) => a.length > 0,
          `${user}'s alert on the stream`,
        );
        const pushed = alertsIn(feed.text());
        assert.equal(pushed.length, 1);
        assert.deepEqual(
          pushed[0]?.events.map((e) => e.card),
          cards,
        );
        for (const f of foreign) assert.ok(!feed.text().includes(f), `${user}'s alert stream carries "${f}"`);
      }
      assert.equal(whole.key, "d1");
      assert.deepEqual(whole.userIds, ["alice", "bob"]);
      assert.deepEqual(
        whole.events.map((e) => [e.user_id, e.card]),
        [
          ["alice", ALICE_CARD],
          ["bob", BOB_CARD],
          ["bob", BOB_CARD],
        ],
      );
      const byParticipant = await as("ana").get<{ alerts: Alert[] }>("/api/v1/alerts?user=bob");
      assert.deepEqual(
        byParticipant.body.alerts.map((a) => a.id),
        [whole.id],
        "?user= finds an alert holding the user's events",
      );
      const analystFeed = feeds.ana as Feed;
      await until(
        async () => alertsIn(analystFeed.text()),
        (a) => a.length > 0,
        "the analyst's alert on the stream",
      );
      assert.equal(alertsIn(analystFeed.text())[0]?.events.length, 3);

      // carol's event is on the device but in no match: no alert for her, and not blocked.
      assert.deepEqual((await as("carol").get<{ alerts: Alert[] }>("/api/v1/alerts")).body.alerts, []);
      assert.deepEqual(alertsIn((feeds.carol as Feed).text()), []);

      const blocks = await admin.get<{ blocks: Array<{ userId: string; stream: string; alertId: string }> }>(
        "/api/v1/blocks",
      );
      assert.deepEqual(blocks.body.blocks.map((b) => [b.userId, b.stream, b.alertId]).sort(), [
        ["alice", "payments", whole.id],
        ["bob", "payments", whole.id],
      ]);
      for (const [user, status] of [
        ["alice", 423],
        ["bob", 423],
        ["carol", 200],
        ["dave", 200],
      ] as const) {
        const res = await as(user).post("/api/v1/streams/payments/events", { device: "d2", amount: 1, card: "x" });
        assert.equal(res.status, status, `${user} after the match`);
      }
    } finally {
      for (const f of Object.values(feeds)) f.close();
    }
  });
});
