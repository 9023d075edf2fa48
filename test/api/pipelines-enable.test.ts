/**
 * PATCH /api/v1/pipelines/{name} {enabled}: a disabled pipeline writes nothing while events keep
 * arriving; enabled again, it resumes from its committed position, so every input event produces
 * exactly one output (counted by a unique field), none lost, none twice.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { loadConfig } from "../../src/config/config.js";
import { startRunnel } from "../../src/server.js";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";
import { ADMIN_PASSWORD, tempDataDir } from "../helpers/server-process.js";

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

describe("enabling and disabling a pipeline over HTTP", () => {
  let r: TestRunnel;
  let analyst: string;

  const query = async (sql: string): Promise<unknown[][]> => {
    const res = await r.call("POST", "/api/v1/query", { token: r.adminToken, body: { sql } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return (res.body.rows as unknown[][] | undefined) ?? [];
  };
  const count = async (sql: string): Promise<number> => Number((await query(sql))[0]?.[0] ?? 0);
  /** Polls until `sql`'s count is `want` (the query tables follow the log a few ms behind). */
  const waitForCount = async (sql: string, want: number): Promise<number> => {
    let n = -1;
    for (let i = 0; i < 200 && n !== want; i++) {
      n = await count(sql);
      if (n !== want) await sleep(25);
    }
    return n;
  };
  const ingest = async (from: number, to: number): Promise<void> => {
    const events = [];
    for (let seq = from; seq < to; seq++) events.push({ user_id: `u${seq % 7}`, seq, amount: seq });
    const res = await r.call("POST", "/api/v1/streams/clicks/events", { token: r.adminToken, body: events });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  };
  const patch = (name: string, body: unknown, token = r.adminToken) =>
    r.call("PATCH", `/api/v1/pipelines/${name}`, { token, body });

  before(async () => {
    r = await startTestRunnel();
    const stream = await r.call("POST", "/api/v1/streams", {
      token: r.adminToken,
      body: { name: "clicks", partitions: 3 },
    });
    assert.equal(stream.status, 201, JSON.stringify(stream.body));
    const user = await r.call("POST", "/api/v1/users", {
      token: r.adminToken,
      body: { username: "ana", email: "ana@ex.com", password: "analyst-password-1", role: "analyst" },
    });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    analyst = await r.login("ana", "analyst-password-1");
    const created = await r.call("POST", "/api/v1/pipelines", {
      token: r.adminToken,
      body: { name: "copied", sql: "SELECT user_id, seq, amount * 2 AS doubled FROM clicks", startFrom: "earliest" },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.enabled, true);
  });
  after(async () => {
    await r.close();
  });

  it("stops writing while disabled and resumes exactly once when enabled again", async () => {
    await ingest(0, 60);
    assert.equal(await waitForCount("SELECT count(*) FROM copied", 60), 60);

    const disabled = await patch("copied", { enabled: false });
    assert.equal(disabled.status, 200, JSON.stringify(disabled.body));
    assert.equal(disabled.body.enabled, false);
    assert.equal((disabled.body.stats as { running: boolean }).running, false);

    // Events keep arriving while it is disabled, in several batches.
    await ingest(60, 140);
    await ingest(140, 200);
    assert.equal(await waitForCount("SELECT count(*) FROM clicks", 200), 200);
    await sleep(300);
    assert.equal(await count("SELECT count(*) FROM copied"), 60, "a disabled pipeline wrote output");
    const described = await r.call("GET", "/api/v1/pipelines/copied", { token: r.adminToken });
    assert.equal(described.status, 200);
    assert.equal(described.body.enabled, false);
    const listed = await r.call("GET", "/api/v1/pipelines", { token: r.adminToken });
    const entry = (listed.body.pipelines as { name: string; enabled: boolean }[]).find((p) => p.name === "copied");
    assert.equal(entry?.enabled, false, "a disabled pipeline is still listed");

    // Disabling twice is harmless; the input cannot be deleted while a disabled pipeline reads it.
    assert.equal((await patch("copied", { enabled: false })).status, 200);
    const dropInput = await r.call("DELETE", "/api/v1/streams/clicks", { token: r.adminToken });
    assert.equal(dropInput.status, 409, JSON.stringify(dropInput.body));
    assert.match(String(dropInput.body.message), /copied/);

    const enabled = await patch("copied", { enabled: true });
    assert.equal(enabled.status, 200, JSON.stringify(enabled.body));
    assert.equal(enabled.body.enabled, true);
    assert.equal((enabled.body.stats as { running: boolean }).running, true);
    await ingest(200, 230);

    assert.equal(await waitForCount("SELECT count(*) FROM copied", 230), 230);
    await sleep(300);
    assert.equal(await count("SELECT count(*) FROM copied"), 230, "more outputs than inputs");
    assert.equal(await count("SELECT count(DISTINCT seq) FROM copied"), 230);
    assert.deepEqual(await query("SELECT seq, count(*) FROM copied GROUP BY seq HAVING count(*) <> 1"), []);
    assert.equal(await count("SELECT min(seq) FROM copied"), 0);
    assert.equal(await count("SELECT max(seq) FROM copied"), 229);
    assert.equal(await count("SELECT count(*) FROM copied WHERE doubled <> seq * 2"), 0);
  });

  it("refuses bodies other than {enabled: boolean} with 400 naming the field", async () => {
    const cases: [string, RegExp][] = [
      ["null", /JSON object/],
      ["[]", /JSON object/],
      ["7", /JSON object/],
      ['{"enabled": "yes"}', /\/enabled/],
      ['{"enabled": null}', /\/enabled/],
      ["{}", /\/enabled/],
      ['{"enabled": true, "sql": "SELECT 1"}', /\/sql: unknown field/],
    ];
    for (const [raw, message] of cases) {
      const res = await r.call("PATCH", "/api/v1/pipelines/copied", {
        token: r.adminToken,
        raw,
        contentType: "application/json",
      });
      assert.equal(res.status, 400, `${raw}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, "invalid_input", raw);
      assert.match(String(res.body.message), message, raw);
    }
  });

  it("is admin only and answers 404 for an unknown pipeline", async () => {
    assert.equal((await patch("copied", { enabled: false }, analyst)).status, 403);
    assert.equal((await patch("nope", { enabled: false })).status, 404);
  });

  it("deletes a disabled pipeline with its output", async () => {
    const created = await r.call("POST", "/api/v1/pipelines", {
      token: r.adminToken,
      body: { name: "short_lived", sql: "SELECT user_id, seq FROM clicks" },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((await patch("short_lived", { enabled: false })).status, 200);
    const deleted = await r.call("DELETE", "/api/v1/pipelines/short_lived", { token: r.adminToken });
    assert.equal(deleted.status, 204);
    assert.equal((await r.call("GET", "/api/v1/pipelines/short_lived", { token: r.adminToken })).status, 404);
    assert.equal((await r.call("GET", "/api/v1/streams/short_lived", { token: r.adminToken })).status, 404);
  });
});

it("a disabled pipeline stays disabled across a restart, listed but not running, and resumes when enabled", async () => {
  const data = await tempDataDir();
  const config = loadConfig(
    {},
    { RUNNEL_DATA_DIR: data.dir, RUNNEL_ADMIN_PASSWORD: ADMIN_PASSWORD, RUNNEL_LOG_LEVEL: "silent" },
  );
  const boot = async () => {
    const runnel = await startRunnel(config, { listen: false });
    const call = async (method: "GET" | "POST" | "PATCH", url: string, body?: unknown) => {
      const res = await runnel.app.inject({
        method,
        url,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined && { "content-type": "application/json" }),
        },
        ...(body !== undefined && { payload: JSON.stringify(body) }),
      });
      return { status: res.statusCode, body: JSON.parse(res.body === "" ? "{}" : res.body) as Record<string, unknown> };
    };
    let token = "";
    const login = await runnel.app.inject({
      method: "POST",
      url: "/api/v1/auth/login",
      payload: { username: "admin", password: ADMIN_PASSWORD },
    });
    token = (JSON.parse(login.body) as { token: string }).token;
    return { runnel, call };
  };
  const countOut = async (call: Awaited<ReturnType<typeof boot>>["call"]) =>
    Number(
      ((await call("POST", "/api/v1/query", { sql: "SELECT count(*) FROM out" })).body.rows as unknown[][])[0]?.[0],
    );
  try {
    const first = await boot();
    assert.equal((await first.call("POST", "/api/v1/streams", { name: "src", partitions: 2 })).status, 201);
    const created = await first.call("POST", "/api/v1/pipelines", {
      name: "out",
      sql: "SELECT user_id, seq FROM src",
      startFrom: "earliest",
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((await first.call("PATCH", "/api/v1/pipelines/out", { enabled: false })).status, 200);
    await first.runnel.stop();

    const second = await boot();
    try {
      const described = await second.call("GET", "/api/v1/pipelines/out");
      assert.equal(described.status, 200, JSON.stringify(described.body));
      assert.equal(described.body.enabled, false);
      assert.equal((described.body.stats as { running: boolean }).running, false);
      const events = Array.from({ length: 40 }, (_, seq) => ({ user_id: `u${seq % 3}`, seq }));
      assert.equal((await second.call("POST", "/api/v1/streams/src/events", events)).status, 200);
      await sleep(300);
      assert.equal(await countOut(second.call), 0, "a pipeline disabled before the restart ran after it");
      assert.equal((await second.call("PATCH", "/api/v1/pipelines/out", { enabled: true })).status, 200);
      let n = 0;
      for (let i = 0; i < 200 && n !== 40; i++) {
        n = await countOut(second.call);
        if (n !== 40) await sleep(25);
      }
      assert.equal(n, 40);
    } finally {
      await second.runnel.stop();
    }
  } finally {
    await data.remove();
  }
});
