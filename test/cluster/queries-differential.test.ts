/**
 * Queries across instances (issue 20), differential: three `runnel start` processes of one
 * installation on the fault rig (scripts/kafka-cluster.sh, 10 s group sessions), each loading only
 * the partitions of its slots, and one more process on the same streams as one instance alone (file
 * checkpoints, so not in cluster mode: it loads every partition). The same queries (the seed's
 * per-user sum over the last 24 h, GROUP BY, time buckets, a two-stream join, rows under ORDER BY
 * and LIMIT, a parameter), asked of every cluster instance, installation-wide as an admin and
 * user-scoped as users, answer exactly what the single instance answers. Then one instance is
 * killed (kill -9) while the queries go on: every answer is either equal or 503
 * `cluster_rebalancing` with Retry-After, and once the survivors own and have loaded its slots
 * every answer is equal again.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Admin } from "@platformatic/kafka";
import { holdRig, kafkaCluster } from "../helpers/kafka-cluster.js";
import { onServer, postgresServerUrl, withDatabase } from "../helpers/postgres.js";
import { ADMIN_PASSWORD } from "../helpers/server-process.js";
import { Instance, type InstanceSettings, reportInstancesOnFailure, sleep, waitFor } from "./instances.js";

reportInstancesOnFailure();

const SLOTS = 6;
const HOUR = 3_600_000;
const USERS = Array.from({ length: 18 }, (_, i) => `diff-user-${i}`);
const CLICKS_PER_USER = 40;
/** Half past an hour, whole hours back: a query's now() moving by seconds keeps the same rows. */
const BASE = Math.floor(Date.now() / HOUR) * HOUR - HOUR / 2;

const QUERIES: { sql: string; params?: unknown[] }[] = [
  // The seed's: each user's sum of data over the last 24 hours.
  {
    sql: "SELECT user_id, sum(data) AS total FROM clicks WHERE _time > now() - INTERVAL 24 HOUR GROUP BY user_id ORDER BY user_id",
  },
  {
    sql: "SELECT kind, count(*) AS n, sum(data) AS s, min(data) AS lo, max(data) AS hi, avg(data) AS mean FROM clicks GROUP BY kind ORDER BY kind",
  },
  { sql: "SELECT date_trunc('hour', _time) AS h, count(*) AS n, sum(data) AS s FROM clicks GROUP BY h ORDER BY h" },
  {
    sql: `SELECT c.user_id, count(*) AS n, sum(o.amount) AS spent FROM clicks c JOIN orders o ON c.user_id = o.user_id
          WHERE c._time > now() - INTERVAL 36 HOUR GROUP BY c.user_id ORDER BY c.user_id`,
  },
  { sql: "SELECT user_id, id, data FROM clicks ORDER BY data DESC, id LIMIT 15" },
  { sql: "SELECT count(*) AS n FROM orders WHERE amount > $1", params: [25] },
  { sql: "SELECT count(*) AS n, sum(data) AS s FROM clicks" },
];

let settings: InstanceSettings;
let rigHold: { release(): Promise<void> } | undefined;
let database: { url: string; drop: () => Promise<void> } | undefined;
const members: Instance[] = [];
let single: Instance;
const tokens = new Map<string, string>();

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly retryAfter: string | null;
}

async function call(
  base: string,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token !== undefined && { authorization: `Bearer ${token}` }),
      ...(body !== undefined && { "content-type": "application/json" }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  return {
    status: res.status,
    body: (await res.json()) as Record<string, unknown>,
    retryAfter: res.headers.get("retry-after"),
  };
}

async function login(base: string, username: string, password: string): Promise<string> {
  const r = await call(base, "POST", "/api/v1/auth/login", undefined, { username, password });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.token as string;
}

function query(base: string, token: string, q: { sql: string; params?: unknown[] }): Promise<Answer> {
  return call(base, "POST", "/api/v1/query", token, { sql: q.sql, ...(q.params && { params: q.params }) });
}

/** Who asks: the admin (installation-wide) and a few users (their own rows). */
const ASKERS = ["admin", USERS[0]!, USERS[5]!, USERS[11]!];

/** The single instance's answers, per asker and query: what every cluster instance must answer. */
async function expectedAnswers(): Promise<Map<string, Answer>> {
  const out = new Map<string, Answer>();
  for (const who of ASKERS) {
    const token = tokens.get(`single/${who}`) as string;
    for (const [i, q] of QUERIES.entries()) {
      const r = await query(single.url, token, q);
      assert.equal(r.status, 200, `single instance, ${who}, ${q.sql}: ${JSON.stringify(r.body)}`);
      out.set(`${who}/${i}`, r);
    }
  }
  return out;
}

before(async () => {
  rigHold = await holdRig();
  const rig = await kafkaCluster();
  const tag = randomBytes(3).toString("hex");
  const server = postgresServerUrl();
  const name = `runnel_query_diff_${tag}`;
  await onServer(server, `CREATE DATABASE ${name}`);
  database = {
    url: withDatabase(server, name),
    drop: () => onServer(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
  settings = {
    brokers: rig.brokers,
    databaseUrl: database.url,
    topicPrefix: `runnel-test-qd-${tag}-`,
    installation: `qd-${tag}`,
    slots: SLOTS,
    // Nothing moves to the archive during the test: each instance's archive is its own directory.
    env: { RUNNEL_LOG_LEVEL: "info" },
  };
  for (const id of ["qd-a", "qd-b", "qd-c"]) members.push(new Instance(id, settings));
  // One instance alone on the same streams: its checkpoints are files, so it is no cluster member.
  single = new Instance("qd-single", {
    ...settings,
    installation: `qd-single-${tag}`,
    env: { RUNNEL_CHECKPOINT_STORE: "local" },
  });
  await Promise.all([...members, single].map((m) => m.start()));
});

after(async () => {
  try {
    await Promise.all([...members, single].map((i) => i?.remove()));
    await database?.drop();
    if (settings === undefined) return;
    const admin = new Admin({ clientId: "runnel-test-qd", bootstrapBrokers: settings.brokers.split(",") });
    try {
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(settings.topicPrefix));
      if (topics.length > 0) await admin.deleteTopics({ topics });
    } finally {
      await admin.close();
    }
  } finally {
    await rigHold?.release();
  }
});

describe("queries across three instances equal one instance's", { timeout: 300_000 }, () => {
  let expected: Map<string, Answer>;

  test("the instances share the slots; streams, users and events are in", async () => {
    await waitFor("three instances sharing every slot, ready", 90_000, async () => {
      const owned = members.map((m) => m.owned());
      const all = owned.flat().sort((a, b) => a - b);
      if (all.join() !== Array.from({ length: SLOTS }, (_, i) => i).join() || owned.some((o) => o.length === 0)) {
        return undefined;
      }
      for (const m of members) if ((await m.get("/readyz")).status !== 200) return undefined;
      return true;
    });
    const admin = await login(members[0]!.url, "admin", ADMIN_PASSWORD);
    for (const stream of ["clicks", "orders"]) {
      const r = await call(members[0]!.url, "POST", "/api/v1/streams", admin, { name: stream, partitions: SLOTS });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    for (const user of USERS) {
      const r = await call(members[0]!.url, "POST", "/api/v1/users", admin, {
        username: user,
        email: `${user}@example.com`,
        password: "user-password-1",
        role: "user",
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    // Every instance of the installation accepts a login made on any (one token secret).
    for (const who of ASKERS) {
      const password = who === "admin" ? ADMIN_PASSWORD : "user-password-1";
      tokens.set(`cluster/${who}`, await login(members[1]!.url, who, password));
      tokens.set(`single/${who}`, await login(single.url, who, password));
    }
    let id = 0;
    let clicks = 0;
    let orders = 0;
    for (const [u, user] of USERS.entries()) {
      const events = Array.from({ length: CLICKS_PER_USER }, () => {
        id++;
        return {
          user_id: user,
          id,
          data: (id * 7) % 23,
          kind: id % 3 === 0 ? "buy" : "view",
          timestamp: BASE - ((id * 37) % 48) * HOUR,
        };
      });
      const target = members[u % members.length]!;
      const r = await call(target.url, "POST", "/api/v1/streams/clicks/events", admin, events);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      clicks += events.length;
      const bought = Array.from({ length: 1 + (u % 3) }, (_, k) => ({
        user_id: user,
        amount: (u * 11 + k * 5) % 50,
        timestamp: BASE - (u + k) * HOUR,
      }));
      const o = await call(target.url, "POST", "/api/v1/streams/orders/events", admin, bought);
      assert.equal(o.status, 200, JSON.stringify(o.body));
      orders += bought.length;
    }
    const counted = (base: string, token: string) => async () => {
      const c = await query(base, token, {
        sql: "SELECT (SELECT count(*) FROM clicks) AS c, (SELECT count(*) FROM orders) AS o",
      });
      return c.status === 200 && JSON.stringify(c.body.rows) === JSON.stringify([[clicks, orders]]) ? true : undefined;
    };
    // Loaded everywhere: the single instance holds every row; the cluster's answer counts every row once.
    await waitFor("the single instance to load every event", 60_000, counted(single.url, tokens.get("single/admin")!));
    await waitFor("the cluster to load every event", 60_000, async () => {
      const c = await query(members[2]!.url, tokens.get("cluster/admin")!, { sql: "SELECT count(*) FROM clicks" });
      const o = await query(members[2]!.url, tokens.get("cluster/admin")!, { sql: "SELECT count(*) FROM orders" });
      return c.status === 200 &&
        o.status === 200 &&
        JSON.stringify([c.body.rows, o.body.rows]) === JSON.stringify([[[clicks]], [[orders]]])
        ? true
        : undefined;
    });
    expected = await expectedAnswers();
    // Each instance loads the partitions of its own slots only (its loader's tasks).
    const status = await call(members[0]!.url, "GET", "/api/v1/cluster", tokens.get("cluster/admin")!);
    const listed = status.body.instances as {
      id: string;
      slots: number[];
      tasks: { task: string; partition: number }[];
    }[];
    for (const m of members) {
      const row = listed.find((i) => i.id === m.id)!;
      const loaded = row.tasks.filter((t) => t.task.startsWith("analytics/clicks")).map((t) => t.partition);
      assert.deepEqual(loaded.sort(), [...row.slots].sort(), `${m.id} loads the partitions of its slots only`);
    }
  });

  test("every query through every instance answers what the single instance answers", async () => {
    for (const m of members) {
      for (const who of ASKERS) {
        for (const [i, q] of QUERIES.entries()) {
          const r = await query(m.url, tokens.get(`cluster/${who}`)!, q);
          assert.equal(r.status, 200, `${m.id}, ${who}, ${q.sql}: ${JSON.stringify(r.body)}`);
          assert.deepEqual(r.body, expected.get(`${who}/${i}`)!.body, `${m.id}, ${who}: ${q.sql}`);
        }
      }
    }
    // A user's answer holds their rows only, wherever their partition lives.
    const mine = await query(members[0]!.url, tokens.get(`cluster/${USERS[5]}`)!, {
      sql: "SELECT DISTINCT user_id FROM clicks",
    });
    assert.deepEqual(mine.body.rows, [[USERS[5]]]);
  });

  test("a share request from anything but an instance is refused", async () => {
    const share = { sql: "SELECT count(*) FROM clicks", params: [], scope: { kind: "all" }, slots: [0] };
    const asUser = await call(
      members[0]!.url,
      "POST",
      "/api/v1/cluster/query",
      tokens.get(`cluster/${USERS[0]}`),
      share,
    );
    assert.equal(asUser.status, 401, JSON.stringify(asUser.body));
    const forged = await fetch(`${members[0]!.url}/api/v1/cluster/query`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-runnel-instance-signature": `v1 qd-b ${Date.now()} AAAA` },
      body: JSON.stringify(share),
    });
    assert.equal(forged.status, 401);
    assert.equal(((await forged.json()) as { error: string }).error, "unauthorized");
  });

  test("a query the cluster cannot merge exactly is refused, naming why", async () => {
    const r = await query(members[0]!.url, tokens.get("cluster/admin")!, { sql: "SELECT median(data) FROM clicks" });
    assert.equal(r.status, 400);
    assert.equal(r.body.error, "query_not_distributable");
    assert.match(String(r.body.message), /median/);
  });

  test("while an instance is killed, answers are equal or 503 cluster_rebalancing, then equal again", async () => {
    const [victim, ...survivors] = members as [Instance, ...Instance[]];
    const counts = { equal: 0, rebalancing: 0 };
    let stop = false;
    const asking = (async () => {
      for (let round = 0; !stop; round++) {
        const m = survivors[round % survivors.length]!;
        const who = ASKERS[round % ASKERS.length]!;
        const i = round % QUERIES.length;
        const r = await query(m.url, tokens.get(`cluster/${who}`)!, QUERIES[i]!);
        if (r.status === 503) {
          assert.equal(r.body.error, "cluster_rebalancing", JSON.stringify(r.body));
          assert.ok(Number(r.retryAfter) > 0, "Retry-After is set");
          counts.rebalancing++;
        } else {
          assert.equal(r.status, 200, `${m.id}, ${who}: ${JSON.stringify(r.body)}`);
          assert.deepEqual(r.body, expected.get(`${who}/${i}`)!.body, `${m.id}, ${who}: ${QUERIES[i]!.sql}`);
          counts.equal++;
        }
        await sleep(50);
      }
    })();
    try {
      await sleep(1_000);
      const killedAt = Date.now();
      await victim.kill9();
      // The survivors own every slot, and answer every query over the whole data again.
      await waitFor("the survivors to own every slot", 60_000, () => {
        const all = survivors.flatMap((s) => s.owned()).sort((a, b) => a - b);
        return all.join() === Array.from({ length: SLOTS }, (_, i) => i).join() ? true : undefined;
      });
      const recovered = await waitFor("every query answered by both survivors", 90_000, async () => {
        for (const m of survivors) {
          for (const [i, q] of QUERIES.entries()) {
            const r = await query(m.url, tokens.get("cluster/admin")!, q);
            if (r.status !== 200) return undefined;
            assert.deepEqual(r.body, expected.get(`admin/${i}`)!.body, `${m.id} after the kill: ${q.sql}`);
          }
        }
        return Date.now();
      });
      process.stderr.write(
        `kill -9 → every query answered again: ${recovered - killedAt} ms; answers meanwhile: ${counts.equal} equal, ${counts.rebalancing} × 503\n`,
      );
    } finally {
      stop = true;
      await asking;
    }
    assert.ok(counts.equal > 0, "queries were answered while the instance was killed");
  });
});
