/**
 * Isolation, proven from the outside: every endpoint × every role (admin, analyst, user, service,
 * anonymous), aimed at another user's resources (the victim's events, query results, activity,
 * settings, keys, live tail). Each cell states the status it must get, and no body may carry
 * anything of the victim's unless the row says that role may see it (admins and analysts read
 * everyone's data by design).
 *
 * The rows are checked against the routes Fastify registered: a new endpoint without a row here
 * fails this test, so nobody can add a path around the isolation rules unnoticed.
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { routeKey } from "../../src/api/routes/openapi.js";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

const ACTORS = ["admin", "analyst", "user", "service", "anonymous"] as const;
type Actor = (typeof ACTORS)[number];
type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
type Expect = Record<Actor, number>;

interface Probe {
  readonly method: Method;
  readonly url: string;
  readonly body?: unknown;
}

interface Row {
  readonly route: string;
  readonly expect: Expect;
  /** Built per cell: targets the victim's resource, or a throwaway one where the cell succeeds destructively. */
  readonly probe: (actor: Actor) => Probe | Promise<Probe>;
  /** Roles entitled to see the victim's data in this row's answer. */
  readonly reveals?: readonly Actor[];
  /**
   * A Server-Sent Events endpoint, exercised over a real socket: "tail" appends the victim's and
   * the caller's own events while listening; "open" only checks the first bytes.
   */
  readonly sse?: "tail" | "open";
}

const all = (status: number): Expect => ({
  admin: status,
  analyst: status,
  user: status,
  service: status,
  anonymous: status,
});
const authed = (status: number): Expect => ({ ...all(status), anonymous: 401 });
const adminOnly = (status: number): Expect => ({
  admin: status,
  analyst: 403,
  user: 403,
  service: 403,
  anonymous: 401,
});
const readers = (status: number): Expect => ({
  admin: status,
  analyst: status,
  user: status,
  service: 403,
  anonymous: 401,
});
const staff = (status: number): Expect => ({ admin: status, analyst: status, user: 403, service: 403, anonymous: 401 });

const VICTIM = "victim";
const VICTIM_PASSWORD = "victim-password-1";
const MARK_EVENT = "VICTIMEVENT7q";
const MARK_SETTINGS = "VICTIMSETTINGS7q";
const MARK_TAIL = "VICTIMTAIL7q";
const VICTIM_EMAIL = "victim-mailbox-7q@example.com";

let t: TestRunnel;
let baseUrl = "";
const tokens: Partial<Record<Actor, string>> = {};
const victim = { token: "", id: "", keyId: "", key: "", prefix: "" };
let markers: string[] = [];
let counter = 0;
const fresh = (label: string): string => `${label}_${++counter}_${Date.now() % 100000}`;
const ipOf = (actor: Actor): string => `10.77.0.${ACTORS.indexOf(actor) + 1}`;

async function call(
  method: Method,
  url: string,
  token?: string,
  body?: unknown,
  ip = "10.77.1.1",
): Promise<{ status: number; text: string; json: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await t.app.inject({
    method,
    url,
    headers,
    remoteAddress: ip,
    ...(body !== undefined && { payload: JSON.stringify(body) }),
  });
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    // Not JSON (metrics text, 204): the text is still searched for markers.
  }
  return { status: res.statusCode, text: res.body, json };
}

async function ok(method: Method, url: string, token: string | undefined, body?: unknown, status = 200) {
  const res = await call(method, url, token, body);
  assert.equal(res.status, status, `${method} ${url}: ${res.text}`);
  return res.json;
}

async function throwawayUser(): Promise<string> {
  const username = fresh("gone");
  await ok(
    "POST",
    "/api/v1/users",
    tokens.admin,
    { username, email: `${username}@ex.com`, password: "password-1", role: "user" },
    201,
  );
  return username;
}

async function throwawayStream(): Promise<string> {
  const name = fresh("tmp");
  await ok("POST", "/api/v1/streams", tokens.admin, { name, partitions: 1 }, 201);
  return name;
}

async function throwawayPipeline(): Promise<string> {
  const name = fresh("pipe");
  await ok("POST", "/api/v1/pipelines", tokens.admin, { name, sql: "SELECT user_id, amount FROM ledger" }, 201);
  return name;
}

/** A file source on a path that never exists: it waits harmlessly. */
function sourceBody(name: string) {
  return { name, type: "file", path: `/nonexistent/${name}.log`, stream: "ledger" };
}

async function throwawaySource(): Promise<string> {
  const name = fresh("src");
  await ok("POST", "/api/v1/sources", tokens.admin, sourceBody(name), 201);
  return name;
}

let keptPipeline = "";
let keptRule = "";

/** A rule that alerts on the victim's marked events and blocks the victim on `vault` (not on ledger, which cells write to). */
function ruleBody(name: string) {
  return {
    name,
    stream: "ledger",
    pattern: [{ name: "hit", where: "amount >= 100" }],
    actions: [
      { type: "alert", severity: "low" },
      { type: "block", streams: ["vault"] },
    ],
  };
}

async function throwawayRule(): Promise<string> {
  return (await ok("POST", "/api/v1/rules", tokens.admin, ruleBody(fresh("rule")), 201)).id as string;
}

const ROWS: readonly Row[] = [
  { route: "GET /healthz", expect: all(200), probe: () => ({ method: "GET", url: "/healthz" }) },
  { route: "GET /readyz", expect: all(200), probe: () => ({ method: "GET", url: "/readyz" }) },
  { route: "GET /metrics", expect: all(200), probe: () => ({ method: "GET", url: "/metrics" }) },
  {
    route: "GET /api/v1/openapi.json",
    expect: all(200),
    probe: () => ({ method: "GET", url: "/api/v1/openapi.json" }),
  },
  {
    route: "POST /api/v1/auth/signup",
    expect: all(201),
    probe: () => {
      const username = fresh("signup");
      return {
        method: "POST",
        url: "/api/v1/auth/signup",
        body: { username, email: `${username}@ex.com`, password: "password-1" },
      };
    },
  },
  {
    route: "POST /api/v1/auth/login",
    expect: all(401),
    probe: () => ({ method: "POST", url: "/api/v1/auth/login", body: { username: VICTIM, password: "guess-1234" } }),
  },
  { route: "GET /api/v1/me", expect: authed(200), probe: () => ({ method: "GET", url: "/api/v1/me" }) },
  {
    route: "PATCH /api/v1/me",
    expect: authed(200),
    probe: () => ({ method: "PATCH", url: "/api/v1/me", body: { email: `${fresh("mail")}@ex.com` } }),
  },
  {
    route: "POST /api/v1/me/password",
    expect: authed(403),
    probe: () => ({
      method: "POST",
      url: "/api/v1/me/password",
      body: { current: VICTIM_PASSWORD, next: "owned-1234" },
    }),
  },
  {
    route: "GET /api/v1/me/settings",
    expect: authed(200),
    probe: () => ({ method: "GET", url: "/api/v1/me/settings" }),
  },
  {
    route: "PUT /api/v1/me/settings",
    expect: authed(200),
    probe: () => ({ method: "PUT", url: "/api/v1/me/settings", body: { mine: true } }),
  },
  {
    route: "GET /api/v1/me/activity",
    expect: authed(200),
    probe: () => ({ method: "GET", url: "/api/v1/me/activity" }),
  },
  {
    route: "POST /api/v1/api-keys",
    expect: authed(201),
    probe: () => ({ method: "POST", url: "/api/v1/api-keys", body: { name: "matrix" } }),
  },
  { route: "GET /api/v1/api-keys", expect: authed(200), probe: () => ({ method: "GET", url: "/api/v1/api-keys" }) },
  {
    route: "DELETE /api/v1/api-keys/:id",
    expect: authed(404),
    probe: () => ({ method: "DELETE", url: `/api/v1/api-keys/${victim.keyId}` }),
  },
  {
    route: "GET /api/v1/users",
    expect: adminOnly(200),
    reveals: ["admin"],
    probe: () => ({ method: "GET", url: "/api/v1/users" }),
  },
  {
    route: "POST /api/v1/users",
    expect: adminOnly(201),
    probe: () => {
      const username = fresh("made");
      return {
        method: "POST",
        url: "/api/v1/users",
        body: { username, email: `${username}@ex.com`, password: "password-1", role: "admin" },
      };
    },
  },
  {
    route: "PATCH /api/v1/users/:username",
    expect: adminOnly(200),
    reveals: ["admin"],
    probe: () => ({ method: "PATCH", url: `/api/v1/users/${VICTIM}`, body: { disabled: false } }),
  },
  {
    route: "GET /api/v1/users/:username/activity",
    expect: adminOnly(200),
    reveals: ["admin"],
    probe: () => ({ method: "GET", url: `/api/v1/users/${VICTIM}/activity` }),
  },
  {
    route: "DELETE /api/v1/users/:username",
    expect: adminOnly(204),
    probe: async (actor) => ({
      method: "DELETE",
      url: `/api/v1/users/${actor === "admin" ? await throwawayUser() : VICTIM}`,
    }),
  },
  {
    route: "POST /api/v1/streams",
    expect: adminOnly(201),
    probe: () => ({ method: "POST", url: "/api/v1/streams", body: { name: fresh("made"), partitions: 1 } }),
  },
  { route: "GET /api/v1/streams", expect: authed(200), probe: () => ({ method: "GET", url: "/api/v1/streams" }) },
  {
    route: "GET /api/v1/streams/:name",
    expect: authed(200),
    probe: () => ({ method: "GET", url: "/api/v1/streams/ledger" }),
  },
  {
    route: "DELETE /api/v1/streams/:name",
    expect: adminOnly(204),
    probe: async (actor) => ({
      method: "DELETE",
      url: `/api/v1/streams/${actor === "admin" ? await throwawayStream() : "ledger"}`,
    }),
  },
  {
    // Backfill is an admin's: the body is one NDJSON event, imported into a throwaway stream.
    route: "POST /api/v1/streams/:name/imports",
    expect: adminOnly(202),
    probe: async (actor) => ({
      method: "POST",
      url: `/api/v1/streams/${actor === "admin" ? await throwawayStream() : "ledger"}/imports?format=ndjson`,
      body: { user_id: VICTIM, amount: 1, timestamp: "2025-01-01T00:00:00Z" },
    }),
  },
  {
    // Adding a rollup is an admin's: on a throwaway stream, so the shared one keeps its shape.
    route: "POST /api/v1/streams/:name/rollups",
    expect: adminOnly(202),
    probe: async (actor) => ({
      method: "POST",
      url: `/api/v1/streams/${actor === "admin" ? await throwawayStream() : "ledger"}/rollups`,
      body: { name: fresh("per_hour"), granularity: "1h", metrics: { n: "count" } },
    }),
  },
  {
    route: "DELETE /api/v1/streams/:name/rollups/:rollup",
    expect: adminOnly(404),
    probe: () => ({ method: "DELETE", url: "/api/v1/streams/ledger/rollups/no_such_rollup" }),
  },
  {
    route: "GET /api/v1/streams/:name/imports/:id",
    expect: adminOnly(404),
    probe: () => ({ method: "GET", url: "/api/v1/streams/ledger/imports/no-such-import" }),
  },
  {
    route: "GET /api/v1/streams/:name/columns",
    expect: authed(200),
    probe: () => ({ method: "GET", url: "/api/v1/streams/ledger/columns" }),
  },
  {
    // amount is BIGINT (set up below): DOUBLE is a widening, and answers 200 again once done.
    route: "PATCH /api/v1/streams/:name/columns",
    expect: adminOnly(200),
    probe: () => ({ method: "PATCH", url: "/api/v1/streams/ledger/columns", body: { amount: "DOUBLE" } }),
  },
  {
    // Writing in the victim's name: the ingest credentials (admin, service) may; a user may not.
    route: "POST /api/v1/streams/:name/events",
    expect: { admin: 200, analyst: 403, user: 403, service: 200, anonymous: 401 },
    probe: () => ({ method: "POST", url: "/api/v1/streams/ledger/events", body: { user_id: VICTIM, amount: 1 } }),
  },
  {
    route: "GET /api/v1/streams/:name/tail",
    expect: readers(200),
    reveals: ["admin", "analyst"],
    sse: "tail",
    probe: () => ({ method: "GET", url: "/api/v1/streams/ledger/tail" }),
  },
  {
    route: "POST /api/v1/query",
    expect: readers(200),
    reveals: ["admin", "analyst"],
    probe: () => ({ method: "POST", url: "/api/v1/query", body: { sql: "SELECT * FROM ledger ORDER BY _offset" } }),
  },
  {
    route: "POST /api/v1/pipelines",
    expect: adminOnly(201),
    probe: () => ({
      method: "POST",
      url: "/api/v1/pipelines",
      body: { name: fresh("made"), sql: "SELECT user_id, amount FROM ledger" },
    }),
  },
  { route: "GET /api/v1/pipelines", expect: staff(200), probe: () => ({ method: "GET", url: "/api/v1/pipelines" }) },
  {
    route: "GET /api/v1/pipelines/:name",
    expect: staff(200),
    probe: () => ({ method: "GET", url: `/api/v1/pipelines/${keptPipeline}` }),
  },
  {
    route: "PATCH /api/v1/pipelines/:name",
    expect: adminOnly(200),
    probe: async (actor) => ({
      method: "PATCH",
      url: `/api/v1/pipelines/${actor === "admin" ? await throwawayPipeline() : keptPipeline}`,
      body: { enabled: false },
    }),
  },
  {
    route: "DELETE /api/v1/pipelines/:name",
    expect: adminOnly(204),
    probe: async (actor) => ({
      method: "DELETE",
      url: `/api/v1/pipelines/${actor === "admin" ? await throwawayPipeline() : keptPipeline}`,
    }),
  },
  {
    route: "GET /api/v1/operator-alerts",
    expect: adminOnly(200),
    probe: () => ({ method: "GET", url: "/api/v1/operator-alerts" }),
  },
  {
    // Counters by stream, pipeline, rule and source name: no user's data, but not for users either.
    route: "GET /api/v1/stats",
    expect: staff(200),
    probe: () => ({ method: "GET", url: "/api/v1/stats" }),
  },
  {
    // Instances, their endpoints and what each owns: operating the installation is the admin's.
    route: "GET /api/v1/cluster",
    expect: adminOnly(200),
    probe: () => ({ method: "GET", url: "/api/v1/cluster" }),
  },
  {
    // Only the installation's instances, by a signature of the body: no role's credential opens it.
    route: "POST /api/v1/cluster/query",
    expect: { admin: 401, analyst: 401, user: 401, service: 401, anonymous: 401 },
    probe: () => ({
      method: "POST",
      url: "/api/v1/cluster/query",
      body: { sql: "SELECT * FROM ledger", params: [], scope: { kind: "all" }, slots: [0], tables: ["ledger"] },
    }),
  },
  {
    // A plain GET (no Upgrade) passes authorisation and gets a JSON 400; analysts may not ingest.
    route: "GET /api/v1/streams/:name/ws",
    expect: { admin: 400, analyst: 403, user: 400, service: 400, anonymous: 401 },
    probe: () => ({ method: "GET", url: "/api/v1/streams/ledger/ws" }),
  },
  { route: "GET /api/v1/sources", expect: adminOnly(200), probe: () => ({ method: "GET", url: "/api/v1/sources" }) },
  {
    route: "GET /api/v1/sources/:name",
    expect: adminOnly(200),
    probe: async (actor) => ({
      method: "GET",
      url: `/api/v1/sources/${actor === "admin" ? await throwawaySource() : "none"}`,
    }),
  },
  {
    route: "POST /api/v1/sources",
    expect: adminOnly(201),
    probe: () => ({ method: "POST", url: "/api/v1/sources", body: sourceBody(fresh("src")) }),
  },
  {
    route: "DELETE /api/v1/sources/:name",
    expect: adminOnly(204),
    probe: async (actor) => ({
      method: "DELETE",
      url: `/api/v1/sources/${actor === "admin" ? await throwawaySource() : "none"}`,
    }),
  },
  {
    route: "POST /api/v1/sources/:name/restart",
    expect: adminOnly(200),
    probe: async (actor) => ({
      method: "POST",
      url: `/api/v1/sources/${actor === "admin" ? await throwawaySource() : "none"}/restart`,
    }),
  },
  // CEP: the victim's marked events tripped the rule made before the matrix, so alerts hold the victim's events.
  {
    route: "POST /api/v1/rules",
    expect: adminOnly(201),
    probe: () => ({ method: "POST", url: "/api/v1/rules", body: ruleBody(fresh("rule")) }),
  },
  { route: "GET /api/v1/rules", expect: staff(200), probe: () => ({ method: "GET", url: "/api/v1/rules" }) },
  {
    route: "GET /api/v1/rules/:id",
    expect: staff(200),
    probe: () => ({ method: "GET", url: `/api/v1/rules/${keptRule}` }),
  },
  {
    route: "PATCH /api/v1/rules/:id",
    expect: adminOnly(200),
    probe: async (actor) => ({
      method: "PATCH",
      url: `/api/v1/rules/${actor === "admin" ? await throwawayRule() : keptRule}`,
      body: { enabled: false },
    }),
  },
  {
    route: "PUT /api/v1/rules/:id",
    expect: adminOnly(200),
    probe: async (actor) => ({
      method: "PUT",
      url: `/api/v1/rules/${actor === "admin" ? await throwawayRule() : keptRule}`,
      body: { ...ruleBody(fresh("rule")), enabled: false },
    }),
  },
  {
    route: "DELETE /api/v1/rules/:id",
    expect: adminOnly(204),
    probe: async (actor) => ({
      method: "DELETE",
      url: `/api/v1/rules/${actor === "admin" ? await throwawayRule() : keptRule}`,
    }),
  },
  {
    // A user sees only alerts about themselves: mallory's list holds none of the victim's events.
    route: "GET /api/v1/alerts",
    expect: readers(200),
    reveals: ["admin", "analyst"],
    probe: () => ({ method: "GET", url: "/api/v1/alerts" }),
  },
  {
    route: "GET /api/v1/alerts/stream",
    expect: readers(200),
    sse: "open",
    probe: () => ({ method: "GET", url: "/api/v1/alerts/stream" }),
  },
  { route: "GET /api/v1/blocks", expect: adminOnly(200), probe: () => ({ method: "GET", url: "/api/v1/blocks" }) },
  {
    route: "DELETE /api/v1/blocks/:userId",
    expect: adminOnly(204),
    probe: () => ({ method: "DELETE", url: `/api/v1/blocks/${VICTIM}?stream=vault` }),
  },
  {
    route: "GET /api/v1/operator-alerts/stream",
    expect: adminOnly(200),
    sse: "open",
    probe: () => ({ method: "GET", url: "/api/v1/operator-alerts/stream" }),
  },
];

/** SQL a `user` might try to reach the victim's rows or the engine: representative of test/analytics/isolation.test.ts. */
const SCOPED_READS = [
  "SELECT * FROM ledger WHERE user_id = 'victim'",
  "SELECT * FROM ledger WHERE user_id = 'mallory' OR 1=1",
  "WITH x AS (SELECT * FROM ledger) SELECT * FROM x",
  "SELECT * FROM (SELECT * FROM ledger WHERE 1=1) s",
  "SELECT (SELECT max(note) FROM ledger) AS note",
  "SELECT note FROM ledger UNION SELECT note FROM ledger WHERE user_id <> 'mallory'",
  "SELECT b.* FROM ledger a JOIN ledger b ON true",
  "SELECT * FROM ledger -- WHERE user_id = 'mallory'",
  'SELECT * FROM "LEDGER"',
];
const REFUSED_SQL = [
  "SELECT 1; SELECT * FROM ledger",
  "SELECT * FROM main.ledger",
  "SELECT * FROM read_csv('/etc/passwd')",
  "SELECT * FROM '/etc/passwd'",
  "SELECT * FROM ledger, LATERAL read_text('/etc/passwd')",
  "ATTACH '/tmp/evil.db' AS evil",
  "COPY ledger TO '/tmp/out.csv'",
  "SET enable_external_access = true",
  "PRAGMA database_list",
  "INSTALL httpfs",
  "SELECT * FROM duckdb_tables()",
  "SELECT * FROM information_schema.tables",
  "SELECT * FROM _runnel_positions",
  "SELECT getenv('HOME')",
  "SELECT * FROM query('SELECT * FROM ledger')",
  "SELECT * FROM query_table('ledger')",
  "DELETE FROM ledger",
  "UPDATE ledger SET user_id = 'mallory'",
  "CREATE TABLE copy AS SELECT * FROM ledger",
  "SUMMARIZE ledger",
  "EXPLAIN SELECT * FROM ledger",
  // Read as a string by a parser that is not DuckDB's; DuckDB reads a catalog or file read.
  "SELECT 'a\\', * FROM duckdb_settings() -- '",
  "SELECT 'a\\', * FROM duckdb_tables() -- '",
  "SELECT E'a\\'', * FROM read_csv('/etc/passwd') -- '",
  "SELECT $$a'$$, * FROM duckdb_settings() -- '",
  "SELECT 1 /* /* */ 'x */, * FROM duckdb_tables() -- '",
];

function assertNoVictimData(where: string, text: string): void {
  for (const mark of markers) assert.ok(!text.includes(mark), `${where}: the answer carries the victim's "${mark}"`);
}

/** Opens an event stream and reads its first bytes. */
async function openCell(actor: Actor, url: string): Promise<{ status: number; text: string }> {
  const controller = new AbortController();
  const token = tokens[actor];
  const res = await fetch(`${baseUrl}${url}`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    signal: controller.signal,
  });
  if (res.status !== 200) return { status: res.status, text: await res.text() };
  const reader = res.body!.getReader();
  try {
    const first = await reader.read();
    return { status: 200, text: new TextDecoder().decode(first.value) };
  } finally {
    controller.abort();
    await reader.cancel().catch(() => {});
  }
}

/** Opens the tail, appends a victim event and one of the caller's own, and returns what arrived. */
async function tailCell(actor: Actor, url: string): Promise<{ status: number; text: string }> {
  const controller = new AbortController();
  const headers: Record<string, string> = {};
  const token = tokens[actor];
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${baseUrl}${url}`, { headers, signal: controller.signal });
  if (res.status !== 200) return { status: res.status, text: await res.text() };
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const own = `OWN-${actor}-${fresh("tail")}`;
  const ownUser = actor === "user" ? "mallory" : "somebody";
  await ok("POST", "/api/v1/streams/ledger/events", tokens.admin, { user_id: VICTIM, note: `${MARK_TAIL}-${actor}` });
  await ok("POST", "/api/v1/streams/ledger/events", tokens.admin, { user_id: ownUser, note: own });
  const deadline = Date.now() + 5_000;
  try {
    while (!text.includes(own) && Date.now() < deadline) {
      const chunk = await Promise.race([
        reader.read(),
        new Promise<{ done: true; value: undefined }>((r) =>
          setTimeout(() => r({ done: true, value: undefined }), deadline - Date.now()),
        ),
      ]);
      if (chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
    }
  } finally {
    controller.abort();
    await reader.cancel().catch(() => {});
  }
  assert.ok(text.includes(own), `${actor}: the tail never delivered the caller's own event`);
  return { status: 200, text };
}

before(async () => {
  t = await startTestRunnel();
  await t.app.listen({ port: 0, host: "127.0.0.1" });
  baseUrl = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  tokens.admin = t.adminToken;

  await ok("POST", "/api/v1/streams", tokens.admin, { name: "ledger", partitions: 2 }, 201);
  await ok("POST", "/api/v1/streams", tokens.admin, { name: "vault", partitions: 1 }, 201);
  keptRule = (await ok("POST", "/api/v1/rules", tokens.admin, ruleBody("victim-watch"), 201)).id as string;
  await ok(
    "POST",
    "/api/v1/auth/signup",
    undefined,
    { username: VICTIM, email: VICTIM_EMAIL, password: VICTIM_PASSWORD },
    201,
  );
  victim.token = await t.login(VICTIM, VICTIM_PASSWORD);
  victim.id = ((await ok("GET", "/api/v1/me", victim.token)).user as { id: string }).id;
  await ok("PUT", "/api/v1/me/settings", victim.token, { mark: MARK_SETTINGS });
  const key = await ok("POST", "/api/v1/api-keys", victim.token, { name: "victim-key" }, 201);
  Object.assign(victim, { keyId: key.id, key: key.key, prefix: key.prefix });
  await ok("POST", "/api/v1/streams/ledger/events", victim.token, [
    { note: MARK_EVENT, amount: 100 },
    { note: MARK_EVENT, amount: 200 },
  ]);

  await ok(
    "POST",
    "/api/v1/auth/signup",
    undefined,
    { username: "mallory", email: "m@ex.com", password: "password-1" },
    201,
  );
  tokens.user = await t.login("mallory", "password-1");
  await ok("POST", "/api/v1/streams/ledger/events", tokens.user, { note: "mallory-own", amount: 1 });
  for (const [actor, role] of [
    ["analyst", "analyst"],
    ["service", "service"],
  ] as const) {
    const username = `the_${role}`;
    await ok(
      "POST",
      "/api/v1/users",
      tokens.admin,
      { username, email: `${username}@ex.com`, password: "password-1", role },
      201,
    );
    tokens[actor] = await t.login(username, "password-1");
  }
  keptPipeline = await throwawayPipeline();
  // The rule's alerts (and the victim's block on vault) are made asynchronously: wait for them.
  for (let i = 0; i < 200; i++) {
    const alerts = (await ok("GET", "/api/v1/alerts", tokens.admin)).alerts as unknown[];
    const blocks = (await ok("GET", "/api/v1/blocks", tokens.admin)).blocks as unknown[];
    if (alerts.length >= 2 && blocks.length >= 1) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  markers = [MARK_EVENT, MARK_SETTINGS, MARK_TAIL, VICTIM_EMAIL, victim.id, victim.prefix, victim.key];

  // The victim's events must be queryable before the matrix asks for them.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await call("POST", "/api/v1/query", tokens.admin, {
      sql: "SELECT count(*) FROM ledger WHERE user_id = 'victim'",
    });
    if (res.status === 200 && (res.json.rows as number[][])[0]![0] === 2) break;
    assert.ok(Date.now() < deadline, `victim events never became queryable: ${res.text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
});

after(() => t.close());

describe("the matrix covers every registered route", () => {
  it("no route without a row, no row without a route", () => {
    const registered = new Set(t.app.runnelRoutes.map(routeKey));
    const rows = new Set(ROWS.map((r) => r.route));
    const missing = [...registered].filter((r) => !rows.has(r));
    const stale = [...rows].filter((r) => !registered.has(r));
    assert.deepEqual(missing, [], `routes without an isolation row: add them to ROWS in ${import.meta.url}`);
    assert.deepEqual(stale, [], "rows for routes that no longer exist");
    assert.equal(rows.size, ROWS.length, "one row per route");
  });
});

describe("every endpoint × every role against another user's resources", () => {
  for (const row of ROWS) {
    describe(row.route, () => {
      for (const actor of ACTORS) {
        const expected = row.expect[actor];
        it(`${actor} → ${expected}`, async () => {
          const probe = await row.probe(actor);
          const res =
            row.sse === "tail"
              ? await tailCell(actor, probe.url)
              : row.sse === "open"
                ? await openCell(actor, probe.url)
                : await call(probe.method, probe.url, tokens[actor], probe.body, ipOf(actor));
          assert.equal(res.status, expected, `${actor} ${probe.method} ${probe.url}: ${res.text.slice(0, 500)}`);
          if (res.status >= 400) {
            const error = JSON.parse(res.text) as { error?: unknown; message?: unknown };
            assert.equal(typeof error.error, "string", res.text);
            assert.equal(typeof error.message, "string", res.text);
          }
          if (row.reveals?.includes(actor) && res.status === 200) {
            // A positive control: the roles entitled to the data do get it, so the negative checks mean something.
            assert.ok(
              markers.some((m) => res.text.includes(m)),
              `${actor} should see the victim's data: ${res.text.slice(0, 300)}`,
            );
          } else {
            assertNoVictimData(`${actor} ${probe.method} ${probe.url}`, res.text);
          }
        });
      }
    });
  }
});

describe("SQL a user writes cannot reach another user's rows or the engine", () => {
  for (const sql of SCOPED_READS) {
    it(`scoped: ${sql}`, async () => {
      const res = await call("POST", "/api/v1/query", tokens.user, { sql }, ipOf("user"));
      assert.equal(res.status, 200, res.text);
      assertNoVictimData(sql, res.text);
      assert.ok(res.text.includes("mallory") || (res.json.rows as unknown[][]).length === 0, res.text);
    });
  }
  it("parameters are bound, never spliced", async () => {
    const res = await call("POST", "/api/v1/query", tokens.user, {
      sql: "SELECT * FROM ledger WHERE note = ?",
      params: [`x' OR user_id = 'victim' OR note = '${MARK_EVENT}`],
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.rows, []);
  });
  for (const sql of REFUSED_SQL) {
    it(`refused: ${sql}`, async () => {
      for (const actor of ["user", "analyst"] as const) {
        const res = await call("POST", "/api/v1/query", tokens[actor], { sql }, ipOf(actor));
        assert.ok(
          res.status === 400 || res.status === 403 || res.status === 404,
          `${actor}: ${res.status} ${res.text}`,
        );
        assertNoVictimData(sql, res.text);
      }
    });
  }
});

describe("afterwards the victim is untouched", () => {
  it("can log in, keeps settings, key and events", async () => {
    await t.login(VICTIM, VICTIM_PASSWORD);
    assert.deepEqual((await ok("GET", "/api/v1/me/settings", victim.token)).settings, { mark: MARK_SETTINGS });
    await ok("GET", "/api/v1/me", victim.key);
    const keys = (await ok("GET", "/api/v1/api-keys", victim.token)).keys as { id: string }[];
    assert.deepEqual(
      keys.map((k) => k.id),
      [victim.keyId],
    );
    const rows = (
      await ok("POST", "/api/v1/query", victim.token, {
        sql: "SELECT count(*) FROM ledger WHERE note = $1",
        params: [MARK_EVENT],
      })
    ).rows as number[][];
    assert.deepEqual(rows, [[2]]);
  });
});
