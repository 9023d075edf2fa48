/**
 * Queries routed to the owners of their partitions (src/cluster/queries/router.ts), two
 * instances in one process: each loads the partitions of its slots from one log into its own
 * store, and the HTTP hop between them is the seam (a fetch that checks the signature and calls
 * the other router, as the route does). Differential: every query answered through either
 * instance equals the answer of one store holding everything, for every scope. Refusals during
 * a rebalance are `cluster_rebalancing` with Retry-After, never a partial answer.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { fromCatalogType } from "../../../src/analytics/duckdb/column-types.js";
import { AnalyticsLoader } from "../../../src/analytics/loader.js";
import type { QueryResult, QueryScope, RegisteredColumns } from "../../../src/analytics/types.js";
import { SlotOwnership } from "../../../src/cluster/ownership.js";
import { INSTANCE_SIGNATURE_HEADER, InstanceAuth } from "../../../src/cluster/queries/instance-auth.js";
import { distributedQueries } from "../../../src/cluster/queries/merge.js";
import { QueryRouter, SHARE_PATH, type ShareRequest } from "../../../src/cluster/queries/router.js";
import type { InstanceRecord } from "../../../src/cluster/registry.js";
import { isRunnelError, RunnelError } from "../../../src/core/errors.js";
import type { LocalEventLog } from "../../../src/log/local/index.js";
import { partitionForKey } from "../../../src/log/partitioner.js";
import { event } from "../../analytics/fake-log.js";
import { openStore, streamDef } from "../../analytics/helpers.js";
import { tempLogs } from "../../log/temp-logs.js";

const SLOTS = 4;
const VISIT_PARTITIONS = 3;
const SECRET = "the installation's token secret";
const HOUR = 3_600_000;
// An hour's start: events lie whole hours before it, so a query forwarded whole (whose now() is
// the owner's clock, later within the hour) and one split (now() fixed at NOW) keep the same rows.
const NOW = Math.floor(Date.now() / HOUR) * HOUR;
const USERS = Array.from({ length: 12 }, (_, i) => `user-${i}`);
const temp = tempLogs("runnel-router-");

const QUERIES = [
  "SELECT count(region) AS n, min(region) AS r FROM clicks",
  // The seed's: each user's sum of data over the last 24 hours.
  `SELECT user_id, sum(data) AS total FROM clicks WHERE _time > now() - INTERVAL 24 HOUR GROUP BY user_id ORDER BY user_id`,
  "SELECT count(*), sum(data), min(data), max(data), avg(data) FROM clicks",
  "SELECT kind, count(*) AS n, sum(data) AS s FROM clicks GROUP BY kind ORDER BY kind",
  "SELECT date_trunc('hour', _time) AS h, count(*) AS n FROM clicks GROUP BY h ORDER BY h",
  `SELECT c.user_id, count(*) AS n, sum(o.amount) AS spent FROM clicks c JOIN orders o ON c.user_id = o.user_id
   GROUP BY c.user_id ORDER BY c.user_id`,
  "SELECT user_id, data FROM clicks ORDER BY data DESC, user_id, _time LIMIT 7",
  "SELECT count(*) FROM orders WHERE amount > $1",
];

interface Node {
  readonly id: string;
  readonly slots: SlotOwnership;
  readonly loader: AnalyticsLoader;
  router: QueryRouter;
  /** Stands for a loader that has not caught up with a partition it gained (tested in loader-ownership). */
  loading: boolean;
}

async function cluster(t: TestContext) {
  const log: LocalEventLog = await temp.openLog({ dir: await temp.tempDir() });
  for (const name of ["clicks", "orders"]) await log.createStream(name, { partitions: SLOTS });
  // Fewer partitions than slots: a user's partitions of visits and clicks may sit on two instances.
  await log.createStream("visits", { partitions: VISIT_PARTITIONS });
  const definitions = [streamDef("clicks", SLOTS), streamDef("orders", SLOTS), streamDef("visits", VISIT_PARTITIONS)];
  const reference = await openStore(t);
  const referenceLoader = new AnalyticsLoader({ log, store: reference, retryMs: 10 });
  t.after(() => referenceLoader.stop());
  const registry: InstanceRecord[] = [];
  const registered = async (table: string): Promise<RegisteredColumns> => {
    const { columns } = await reference.query(`SELECT * FROM ${table} LIMIT 0`, [], { kind: "all" });
    const fields = columns.filter((c) => !c.name.startsWith("_") && c.name !== "user_id");
    return new Map(fields.map((c) => [c.name.toLowerCase(), { name: c.name, type: fromCatalogType(c.type)! }]));
  };
  const nodes = new Map<string, Node>();
  let unreachable: string | undefined;
  // The hop: what POST /api/v1/cluster/query does with a request, minus HTTP.
  const hop: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    if (url.pathname !== SHARE_PATH) throw new Error(`unexpected path ${url.pathname}`);
    if (url.hostname === unreachable) throw new TypeError("fetch failed: connection refused");
    const node = nodes.get(url.hostname) as Node;
    const body = String(init?.body);
    const headers = new Headers(init?.headers);
    try {
      node.router.verify(headers.get(INSTANCE_SIGNATURE_HEADER) ?? undefined, body);
      const answer = await node.router.answerShare(JSON.parse(body) as ShareRequest);
      return Response.json(answer);
    } catch (e) {
      const err = e instanceof RunnelError ? e : new RunnelError("internal", String(e));
      return Response.json(err.toJSON(), { status: err.status });
    }
  };
  for (const [id, owned] of [
    ["a", [0, 1, 2]],
    ["b", [3]],
  ] as const) {
    const store = await openStore(t);
    const slots = new SlotOwnership(SLOTS, owned);
    const loader = new AnalyticsLoader({ log, store, retryMs: 10, ownership: slots });
    t.after(() => loader.stop());
    const node: Node = {
      id,
      slots,
      loader,
      loading: false,
      router: new QueryRouter({
        instanceId: id,
        ownership: slots,
        instances: async () => registry,
        streams: async () => definitions,
        store,
        loaded: (tables, wanted) => !node.loading && loader.readyFor(wanted, tables),
        loadWaitMs: 200,
        // The catalogue's columns, as the reference (which saw every field) types them.
        alignColumns: async (tables) => {
          for (const table of tables) await store.ensureColumns(table, await registered(table));
        },
        auth: new InstanceAuth(SECRET, id),
        distributed: distributedQueries({ maxRows: 10_000, maxBytes: 10_000_000, timeoutMs: 10_000 }),
        timeoutMs: 10_000,
        now: () => NOW,
        fetch: hop,
      }),
    };
    nodes.set(id, node);
  }
  for (const loader of [referenceLoader, ...[...nodes.values()].map((n) => n.loader)]) {
    for (const d of definitions) loader.follow(d);
  }
  // Events of every user in both streams, over the last two days.
  let i = 0;
  for (const user of USERS) {
    const partition = partitionForKey(user, SLOTS);
    const clicks = Array.from({ length: 30 }, () => {
      i++;
      const data = (i * 7) % 23;
      const kind = i % 3 === 0 ? "buy" : "view";
      // Fields in another order in partition 0 (A's), and one only in partition 3 (B's): the
      // instances' tables get different columns in different orders.
      const fields: Record<string, unknown> = partition === 0 ? { kind, data, id: i } : { id: i, data, kind };
      if (partition === 3) fields.region = i % 2 === 0 ? "eu" : "us";
      return event(user, fields, NOW - ((i * 37) % 48) * HOUR);
    });
    await log.append("clicks", clicks);
    await log.append("orders", [event(user, { amount: (i % 50) + 1 }, NOW - (i % 30) * HOUR)]);
    await log.append("visits", [event(user, { page: `p${i % 5}` }, NOW - (i % 20) * HOUR)]);
  }
  const a = nodes.get("a") as Node;
  const b = nodes.get("b") as Node;
  const caughtUp = async (loader: AnalyticsLoader, owns: (p: number) => boolean) => {
    for (const name of ["clicks", "orders", "visits"]) {
      const ends = await log.endOffsets(name);
      await loader.waitFor(name, new Map(ends.flatMap((end, p) => (owns(p) ? [[p, end] as const] : []))));
    }
  };
  await caughtUp(referenceLoader, () => true);
  await caughtUp(a.loader, (p) => a.slots.owns(p));
  // A hands slot 2 to B: its rows of partition 2 stay in A's store, never to be answered from.
  await a.slots.set([0, 1]);
  await b.slots.set([2, 3]);
  await caughtUp(b.loader, (p) => b.slots.owns(p));
  await waitUntil(() => a.loader.readyFor(() => true) && b.loader.readyFor(() => true));
  const record = (id: string, slots: readonly number[]): InstanceRecord => ({
    id,
    url: `http://${id}:8080`,
    startedAt: new Date(NOW).toISOString(),
    lastSeen: new Date(NOW).toISOString(),
    live: true,
    slots,
    lastRebalanceAt: null,
    tasks: [],
  });
  registry.push(record("a", [0, 1]), record("b", [2, 3]));
  return {
    a,
    b,
    reference,
    registry,
    record,
    unreachable: (id: string | undefined) => {
      unreachable = id;
    },
  };
}

async function waitUntil(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(check(), "the condition held within 4 s");
}

/** The reference store's answer with now() fixed to NOW, as the routers fix it. */
async function expected(
  store: { query(sql: string, params: unknown[], scope: QueryScope): Promise<QueryResult> },
  sql: string,
  params: unknown[],
  scope: QueryScope,
) {
  return store.query(sql.replaceAll("now()", `TIMESTAMPTZ '${new Date(NOW).toISOString()}'`), params, scope);
}

function rebalancing(e: unknown): boolean {
  return isRunnelError(e) && e.code === "cluster_rebalancing" && e.status === 503 && (e.retryAfter ?? 0) > 0;
}

test("any instance answers any query as one store holding everything would", async (t) => {
  const c = await cluster(t);
  const scopes: QueryScope[] = [
    { kind: "all" },
    ...USERS.slice(0, 6).map((userId) => ({ kind: "user", userId }) as const),
  ];
  const userSlots = new Set(USERS.slice(0, 6).map((u) => partitionForKey(u, SLOTS)));
  assert.ok(userSlots.has(0) || userSlots.has(1), "some users live on A");
  assert.ok(userSlots.has(2) || userSlots.has(3), "some users live on B");
  for (const scope of scopes) {
    for (const sql of QUERIES) {
      const params = sql.includes("$1") ? [20] : [];
      const want = await expected(c.reference, sql, params, scope);
      for (const node of [c.a, c.b]) {
        const got = await node.router.query(sql, params, scope);
        assert.deepEqual(got, want, `${node.id}, ${JSON.stringify(scope)}: ${sql}`);
      }
    }
  }
  // A query reading no stream is answered by the instance asked, whatever the registry says.
  c.registry.length = 0;
  assert.deepEqual((await c.b.router.query("SELECT 1 + 1 AS two", [], { kind: "all" })).rows, [[2]]);
  c.registry.push(c.record("a", [0, 1]), c.record("b", [2, 3]));
  // SELECT * lists one set of columns in one order, whichever instance answers.
  const star = "SELECT * FROM clicks ORDER BY id LIMIT 20";
  const fromA = await c.a.router.query(star, [], { kind: "all" });
  assert.deepEqual(await c.b.router.query(star, [], { kind: "all" }), fromA);
  const want = await c.reference.query(star, [], { kind: "all" });
  const byName = (r: QueryResult) =>
    r.rows.map((row) => Object.fromEntries(r.columns.map((col, k) => [col.name, row[k]])));
  assert.deepEqual(byName(fromA), byName(want));
  const whole = await c.a.router.query("SELECT count(*) FROM clicks", [], { kind: "all" });
  assert.deepEqual(whole.rows, [[USERS.length * 30]], "A's stale rows of partition 2 are not counted");
});

test("streams of different partition counts are read together only where one instance owns them", async (t) => {
  const c = await cluster(t);
  const owner = (slot: number) => (slot < 2 ? "a" : "b");
  const slotsOf = (u: string) => [
    owner(partitionForKey(u, SLOTS)),
    owner(partitionForKey(u, VISIT_PARTITIONS) % SLOTS),
  ];
  const split = USERS.filter((u) => new Set(slotsOf(u)).size === 2);
  const together = USERS.filter((u) => new Set(slotsOf(u)).size === 1);
  assert.ok(split.length > 0 && together.length > 0, "users of both kinds");
  const join = `SELECT c.user_id, count(*) AS n, count(DISTINCT v.page) AS pages FROM clicks c
    JOIN visits v ON c.user_id = v.user_id GROUP BY c.user_id`;
  const notCopartitioned = (e: unknown) =>
    isRunnelError(e) && e.code === "query_not_distributable" && /visits \(3 partitions\)/.test(e.message);
  for (const userId of together) {
    const scope: QueryScope = { kind: "user", userId };
    const want = await c.reference.query(join, [], scope);
    assert.equal(want.rows.length, 1);
    assert.deepEqual(await c.a.router.query(join, [], scope), want, `${userId}: one instance holds both`);
  }
  for (const userId of split) {
    const scope: QueryScope = { kind: "user", userId };
    // Never an answer missing the rows on the other instance: refused, naming the streams.
    await assert.rejects(c.a.router.query(join, [], scope), notCopartitioned);
    const one = "SELECT count(*), count(DISTINCT page) FROM visits";
    assert.deepEqual(await c.b.router.query(one, [], scope), await c.reference.query(one, [], scope));
  }
  await assert.rejects(c.b.router.query(join, [], { kind: "all" }), notCopartitioned);
});

test("a query that cannot be merged exactly is refused, naming why", async (t) => {
  const c = await cluster(t);
  await assert.rejects(
    c.a.router.query("SELECT median(data) FROM clicks", [], { kind: "all" }),
    (e) => isRunnelError(e) && e.code === "query_not_distributable" && /median/.test(e.message),
  );
});

test("during a rebalance a query fails with cluster_rebalancing, never a partial answer", async (t) => {
  const c = await cluster(t);
  const all: QueryScope = { kind: "all" };
  const sql = "SELECT count(*) FROM clicks";
  // B's registry row lost slot 3 (it died; its session has not expired): no one to ask for it.
  c.registry[1] = c.record("b", [2]);
  await assert.rejects(
    c.a.router.query(sql, [], all),
    (e) => rebalancing(e) && /slot 3 has no live owner/.test(String(e)),
  );
  // visits has 3 partitions, in slots 0-2: a query of it alone does not need slot 3.
  const visits = "SELECT count(*), min(page), max(page) FROM visits";
  assert.deepEqual(await c.a.router.query(visits, [], all), await c.reference.query(visits, [], all));
  // Two instances claim slot 2 (a move half seen).
  c.registry[0] = c.record("a", [0, 1, 2]);
  c.registry[1] = c.record("b", [2, 3]);
  await assert.rejects(c.a.router.query(sql, [], all), (e) => rebalancing(e) && /slot 2 is moving/.test(String(e)));
  // The registry is stale: B has lost slot 3 already and refuses to answer for it.
  c.registry[0] = c.record("a", [0, 1]);
  await c.b.slots.set([2]);
  await assert.rejects(c.a.router.query(sql, [], all), (e) => rebalancing(e) && /does not own slot 3/.test(String(e)));
  await c.b.slots.set([2, 3]);
  await waitUntil(() => c.b.loader.readyFor(() => true));
  // B does not answer.
  c.unreachable("b");
  await assert.rejects(c.a.router.query(sql, [], all), (e) => rebalancing(e) && /did not answer/.test(String(e)));
  c.unreachable(undefined);
  // B's lease ran out (paused past its session).
  c.b.slots.setValidUntil(NOW - 1);
  await assert.rejects(c.a.router.query(sql, [], all), (e) => rebalancing(e) && /lease/.test(String(e)));
  c.b.slots.setValidUntil(Number.POSITIVE_INFINITY);
  assert.deepEqual((await c.a.router.query(sql, [], all)).rows, [[USERS.length * 30]]);
});

test("an owner still loading a partition it gained refuses to answer for it", async (t) => {
  const c = await cluster(t);
  await c.a.slots.set([0]);
  await c.b.slots.set([1, 2, 3]);
  c.registry[0] = c.record("a", [0]);
  c.registry[1] = c.record("b", [1, 2, 3]);
  c.b.loading = true;
  await assert.rejects(
    c.a.router.query("SELECT count(*) FROM clicks", [], { kind: "all" }),
    (e) => rebalancing(e) && /still loading/.test(String(e)),
  );
  c.b.loading = false;
  await waitUntil(() => c.b.loader.readyFor(() => true));
  const got = await c.a.router.query("SELECT count(*) FROM clicks", [], { kind: "all" });
  assert.deepEqual(got.rows, [[USERS.length * 30]], "B loaded partition 1 from the log and answers for it");
});

test("an owner that catches up within the load wait answers instead of refusing", async (t) => {
  const c = await cluster(t);
  await waitUntil(() => c.b.loader.readyFor(() => true));
  c.b.loading = true;
  // Loading ends well inside B's 200 ms wait: the query waits for it rather than failing.
  setTimeout(() => {
    c.b.loading = false;
  }, 50);
  const got = await c.a.router.query("SELECT count(*) FROM clicks", [], { kind: "all" });
  assert.deepEqual(got.rows, [[USERS.length * 30]]);
  assert.equal(c.b.loading, false, "the answer came after loading ended");
});

test("an owner refuses a share request not signed by an instance of the installation", async (t) => {
  const c = await cluster(t);
  const body = JSON.stringify({ sql: "SELECT count(*) FROM clicks", params: [], scope: { kind: "all" }, slots: [3] });
  const outsider = new InstanceAuth("another installation's secret", "a");
  assert.throws(
    () => c.b.router.verify(outsider.sign(body), body),
    (e) => isRunnelError(e) && e.code === "unauthorized",
  );
  assert.throws(
    () => c.b.router.verify(undefined, body),
    (e) => isRunnelError(e) && e.code === "unauthorized",
  );
  const signed = new InstanceAuth(SECRET, "a").sign(body);
  assert.throws(
    () => c.b.router.verify(signed, body.replace('"kind":"all"', '"kind":"any"')),
    (e) => isRunnelError(e) && e.code === "unauthorized",
  );
  assert.equal(c.b.router.verify(signed, body), "a");
});
