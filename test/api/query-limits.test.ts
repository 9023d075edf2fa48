/**
 * Issue 14, findings 1 and 6, against the real `runnel start` process: a `user` query whose result
 * is 100 000 rows of 30 KB answers 400 result_too_large and the process lives on (it used to die
 * of a JavaScript out-of-memory abort); a runaway query is stopped at the time limit; and one
 * user's runaway queries take that user's share of query slots only, so another user's query is
 * admitted and answered while they are still running or waiting.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client, type Reply } from "../helpers/http.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";

const PASSWORD = "user-password-1";

/** Rows numbered 1..n, each `length` characters, for the caller's rows of `docs` (one each). */
function bigResult(n: number, length: number): string {
  return `WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < ${n})
          SELECT n, repeat('x', ${length}) AS s FROM r, docs`;
}

/** Runs until the time limit stops it. */
const RUNAWAY = `WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 2000000000)
                 SELECT count(*) FROM r, docs`;

interface Running {
  readonly server: ServerProcess;
  readonly users: Client[];
  stop(): Promise<void>;
}

/** A server with a `docs` stream and `count` users holding one event each there. */
async function serverWithUsers(env: Record<string, string>, count: number): Promise<Running> {
  const data = await tempDataDir();
  const server = await startServerProcess(data.dir, env);
  const anonymous = new Client(server.url);
  const admin = await anonymous.login("admin", ADMIN_PASSWORD);
  assert.equal((await admin.post("/api/v1/streams", { name: "docs", partitions: 1 })).status, 201);
  const users: Client[] = [];
  for (let i = 0; i < count; i++) {
    const username = `reader${i}`;
    const signup = await anonymous.post("/api/v1/auth/signup", {
      username,
      email: `${username}@example.com`,
      password: PASSWORD,
    });
    assert.equal(signup.status, 201);
    const user = await anonymous.login(username, PASSWORD);
    assert.equal((await user.post("/api/v1/streams/docs/events", { data: i })).status, 200);
    await user.queryUntil("SELECT count(*) FROM docs", (rows) => rows[0]?.[0] === 1);
    users.push(user);
  }
  return {
    server,
    users,
    stop: async () => {
      // SIGKILL: a graceful stop would wait for the runaway queries still in flight.
      await server.kill("SIGKILL");
      await data.remove();
    },
  };
}

function alive(server: ServerProcess): boolean {
  return server.child.exitCode === null && server.child.signalCode === null;
}

describe("time limit (issue 14, findings 1 and 6)", () => {
  let running: Running;
  before(async () => {
    running = await serverWithUsers({ RUNNEL_QUERY_TIMEOUT: "1s" }, 1);
  });
  after(() => running.stop());

  test("a runaway query is stopped at RUNNEL_QUERY_TIMEOUT with query_timeout", async () => {
    const [user] = running.users as [Client];
    const res = await user.post<{ error: string; message: string }>("/api/v1/query", { sql: RUNAWAY });
    assert.equal(res.status, 400);
    assert.equal(res.body.error, "query_timeout");
    assert.match(res.body.message, /time limit of 1000 ms/);
    const next = await user.post<{ rows: unknown[][] }>("/api/v1/query", { sql: "SELECT count(*) FROM docs" });
    assert.deepEqual(next.body.rows, [[1]]);
  });
});

describe("result bounds and fair admission (issue 14, findings 1 and 6)", () => {
  let running: Running;
  before(async () => {
    running = await serverWithUsers(
      {
        RUNNEL_QUERY_TIMEOUT: "60s",
        RUNNEL_QUERY_CONCURRENCY: "2",
        RUNNEL_QUERY_USER_CONCURRENCY: "1",
        RUNNEL_QUERY_USER_QUEUE: "3",
      },
      2,
    );
  });
  /** Requests left in flight by a test, settled once the server is gone. */
  const pending: Promise<unknown>[] = [];
  after(async () => {
    await running.stop();
    await Promise.all(pending);
  });

  /** runnel_queries{state} from /metrics. */
  async function queries(): Promise<{ running: number; queued: number }> {
    const text = await (await fetch(`${running.server.url}/metrics`)).text();
    const read = (state: string) =>
      Number(new RegExp(`^runnel_queries\\{state="${state}"\\} (\\d+)$`, "m").exec(text)?.[1] ?? Number.NaN);
    return { running: read("running"), queued: read("queued") };
  }

  test("another user's query is admitted and answered while one user's four runaway queries hold their share", async () => {
    const [attacker, victim] = running.users as [Client, Client];
    const settled: string[] = [];
    const runaways = [0, 1, 2, 3].map((i) =>
      attacker.post("/api/v1/query", { sql: RUNAWAY }).then(
        (res) => settled.push(`runaway ${i}: ${res.status}`),
        () => settled.push(`runaway ${i}: connection closed`),
      ),
    );
    // Left running or waiting: they end with the server, after the last test.
    pending.push(...runaways);
    // Setup, not an assertion: time for the four requests to reach the server (loopback, ms).
    await new Promise((resolve) => setTimeout(resolve, 1000));

    const answer: Reply<{ rows: unknown[][] }> = await victim.post("/api/v1/query", {
      sql: "SELECT count(*) FROM docs",
    });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body.rows, [[1]]);
    // Answered while every runaway query was still running or waiting: not queued behind them.
    assert.deepEqual(settled, []);
    // The attacker holds its share (one running) and waits for the rest (three queued).
    assert.deepEqual(await queries(), { running: 1, queued: 3 });

    // A fifth is past the attacker's queue: refused, with Retry-After, and costs nobody else.
    const refused = await attacker.post<{ error: string }>("/api/v1/query", { sql: RUNAWAY });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error, "overloaded");
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.deepEqual(settled, []);
  });

  // While the attacker's runaway queries still hold their share.
  test("100 000 rows of 30 KB answer 400 result_too_large naming the limit; the process answers the next query", async () => {
    const [, user] = running.users as [Client, Client];
    const res = await user.post<{ error: string; message: string; details: unknown }>("/api/v1/query", {
      sql: bigResult(100_000, 30_000),
    });
    assert.equal(res.status, 400, JSON.stringify(res.body).slice(0, 300));
    assert.equal(res.body.error, "result_too_large");
    assert.match(res.body.message, /larger than 32 MiB/);
    assert.deepEqual(res.body.details, { limit: "bytes", max: 32 * 1024 * 1024 });
    assert.ok(alive(running.server), `the server died:\n${running.server.stderr()}`);
    const next = await user.post<{ rows: unknown[][] }>("/api/v1/query", { sql: "SELECT count(*) FROM docs" });
    assert.equal(next.status, 200);
    assert.deepEqual(next.body.rows, [[1]]);
  });

  test("a result under both bounds is answered whole", async () => {
    const [, user] = running.users as [Client, Client];
    const res = await user.post<{ rows: unknown[][] }>("/api/v1/query", { sql: bigResult(1000, 1000) });
    assert.equal(res.status, 200);
    assert.equal(res.body.rows.length, 1000);
  });
});
