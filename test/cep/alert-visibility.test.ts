/**
 * A rule keyed by another field than user_id (here a device) matches several users' events. On the
 * real server (the CLI in a child process): each user sees only their own events of the alert, on
 * the list and on the live stream; another user's card number never reaches them; analysts see
 * the whole alert; `block` blocks the match's owner only, or with `users: "all"` every user whose
 * events matched, and never anyone else (docs/cep.md, "Who sees an alert, who is blocked").
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client } from "../helpers/http.js";
import { until } from "../helpers/poll.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";

const ALICE_CARD = "4111-ALICE-0001";
const BOB_CARD = "5500-BOB-SECRET-0002";
const CAROL_CARD = "3400-CAROL-0003";
const DAVE_CARD = "6011-DAVE-0004";

interface Alert {
  id: string;
  ruleId: string;
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

function alertsIn(feed: Feed, ruleId: string): Alert[] {
  return feed
    .text()
    .split("\n\n")
    .filter((m) => m.includes("event: alert"))
    .map((m) => JSON.parse(/^data: (.*)$/m.exec(m)?.[1] ?? "null") as Alert)
    .filter((a) => a.ruleId === ruleId);
}

const RULE = {
  key: "device",
  pattern: [{ name: "big", where: "amount > 100", times: { exactly: 3 } }],
  within: "5m",
  skip: "past_last_event",
};

describe("alerts of a rule keyed by device", () => {
  let server: ServerProcess;
  let removeDir: () => Promise<void>;
  const tokens: Record<string, string> = {};
  let admin: Client;
  const as = (name: string): Client => admin.as(tokens[name] as string);
  /** Rule ids: `payments` blocks the owner (the default), `transfers` every matched user. */
  const rules: Record<string, string> = {};

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
    for (const [stream, block] of [
      ["payments", { type: "block" }],
      ["transfers", { type: "block", users: "all" }],
    ] as const) {
      // Several partitions: the users' events sit in different ones, and meet through the rule's
      // repartition stage (src/runtime/repartition.ts).
      assert.equal((await admin.post("/api/v1/streams", { name: stream, partitions: 4 })).status, 201);
      const rule = await admin.post<{ id: string }>("/api/v1/rules", {
        ...RULE,
        name: `busy-device-${stream}`,
        stream,
        actions: [{ type: "alert", severity: "high" }, block],
      });
      assert.equal(rule.status, 201, JSON.stringify(rule.body));
      rules[stream] = rule.body.id;
    }
  });

  after(async () => {
    await server?.kill();
    await removeDir?.();
  });

  const pay = async (stream: string, user: string, device: string, amount: number, card: string) => {
    const res = await as(user).post(`/api/v1/streams/${stream}/events`, { device, amount, card });
    assert.equal(res.status, 200, `${user}: ${JSON.stringify(res.body)}`);
  };

  const alertsOf = async (user: string, query: string): Promise<{ alerts: Alert[]; raw: string }> => {
    const res = await as(user).get<{ alerts: Alert[] }>(`/api/v1/alerts?${query}`);
    assert.equal(res.status, 200);
    return { alerts: res.body.alerts, raw: JSON.stringify(res.body) };
  };

  it("shows each user only their own events of an alert, analysts all of them", async () => {
    const feeds: Record<string, Feed> = {};
    for (const name of ["alice", "bob", "carol", "ana"])
      feeds[name] = await openFeed(server.url, tokens[name] as string);
    const rule = rules.payments as string;
    try {
      await pay("payments", "carol", "d1", 5, CAROL_CARD); // on the device, but matches no step
      await pay("payments", "alice", "d1", 200, ALICE_CARD);
      await pay("payments", "bob", "d1", 300, BOB_CARD);
      await pay("payments", "bob", "d1", 400, BOB_CARD);
      await until(
        () => alertsOf("ana", `rule=${rule}`),
        (r) => r.alerts.length > 0,
        "the alert",
      );

      const expected: Record<string, { cards: string[]; foreign: string[] }> = {
        alice: { cards: [ALICE_CARD], foreign: [BOB_CARD, CAROL_CARD, "bob"] },
        bob: { cards: [BOB_CARD, BOB_CARD], foreign: [ALICE_CARD, CAROL_CARD, "alice"] },
      };
      let alertId = "";
      for (const [user, { cards, foreign }] of Object.entries(expected)) {
        const listed = await alertsOf(user, `rule=${rule}`);
        for (const f of foreign) assert.ok(!listed.raw.includes(f), `${user}'s /alerts carries "${f}"`);
        assert.equal(listed.alerts.length, 1, `${user} sees the alert`);
        const mine = listed.alerts[0] as Alert;
        alertId = mine.id;
        assert.equal(mine.userId, user);
        assert.deepEqual(mine.userIds, [user]);
        assert.deepEqual(
          mine.events.map((e) => e.card),
          cards,
        );

        const feed = feeds[user] as Feed;
        const pushed = await until(
          async () => alertsIn(feed, rule),
          (a) => a.length > 0,
          `${user}'s alert on the stream`,
        );
        assert.equal(pushed.length, 1);
        assert.deepEqual(
          pushed[0]?.events.map((e) => e.card),
          cards,
        );
        for (const f of foreign) assert.ok(!feed.text().includes(f), `${user}'s alert stream carries "${f}"`);
      }

      const whole = (await alertsOf("ana", `rule=${rule}`)).alerts[0] as Alert;
      assert.equal(whole.id, alertId, "one alert, seen by each");
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
      assert.deepEqual(
        (await alertsOf("ana", `user=bob&rule=${rule}`)).alerts.map((a) => a.id),
        [whole.id],
        "?user= finds an alert holding the user's events",
      );
      const analystFeed = feeds.ana as Feed;
      const analystPushed = await until(
        async () => alertsIn(analystFeed, rule),
        (a) => a.length > 0,
        "the analyst's alert on the stream",
      );
      assert.equal(analystPushed[0]?.events.length, 3);

      // carol's event is on the device but in no match: no alert for her.
      assert.deepEqual((await alertsOf("carol", "")).alerts, []);
      assert.deepEqual(alertsIn(feeds.carol as Feed, rule), []);
    } finally {
      for (const f of Object.values(feeds)) f.close();
    }
  });

  it("blocks a match's owner by default, every matched user with users: all, never anyone else", async () => {
    // payments (default): the alice+bob match above has no owner; dave's own match has one.
    for (const amount of [150, 160, 170]) await pay("payments", "dave", "d3", amount, DAVE_CARD);
    // transfers (users: all): the same alice+bob match, carol on the device outside it.
    await pay("transfers", "carol", "d1", 5, CAROL_CARD);
    await pay("transfers", "alice", "d1", 200, ALICE_CARD);
    await pay("transfers", "bob", "d1", 300, BOB_CARD);
    await pay("transfers", "bob", "d1", 400, BOB_CARD);
    const blocks = await until(
      () => admin.get<{ blocks: Array<{ userId: string; stream: string }> }>("/api/v1/blocks"),
      (r) => r.body.blocks.length >= 3,
      "the blocks",
    );
    assert.deepEqual(blocks.body.blocks.map((b) => `${b.userId}@${b.stream}`).sort(), [
      "alice@transfers",
      "bob@transfers",
      "dave@payments",
    ]);
    for (const [user, payments, transfers] of [
      ["alice", 200, 423],
      ["bob", 200, 423],
      ["carol", 200, 200],
      ["dave", 423, 200],
    ] as const) {
      for (const [stream, status] of [
        ["payments", payments],
        ["transfers", transfers],
      ] as const) {
        const res = await as(user).post(`/api/v1/streams/${stream}/events`, { device: "d9", amount: 1, card: "x" });
        assert.equal(res.status, status, `${user} on ${stream}`);
      }
    }
  });
});
