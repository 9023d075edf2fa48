/** The admin API for sources: add, list with state and counters, failures with a reason, delete. */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { tempDataDir } from "../helpers/server-process.js";
import { type Instance, startInstance, waitFor } from "./helpers.js";

let data: Awaited<ReturnType<typeof tempDataDir>>;
let r: Instance;

before(async () => {
  data = await tempDataDir();
  r = await startInstance(data.dir);
  assert.equal((await r.call("POST", "/api/v1/streams", { name: "lines" })).status, 201);
});
after(async () => {
  await r.runnel.stop();
  await data.remove();
});

test("an API-added source runs, reports counters, survives a restart and can be deleted", async () => {
  const file = join(data.dir, "in.ndjson");
  await writeFile(file, '{"n":1}\n{"n":2}\n');
  const created = await r.call("POST", "/api/v1/sources", {
    name: "tailer",
    type: "file",
    path: file,
    stream: "lines",
    userId: "ops",
    pollInterval: "50ms",
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(await r.countUntil("SELECT count(*) FROM lines WHERE user_id = 'ops'", 2), 2);
  const status = (await r.call("GET", "/api/v1/sources/tailer")).body;
  assert.equal(status.state, "running");
  assert.equal(status.origin, "api");
  assert.equal((status.metrics as { accepted: number }).accepted, 2);
  assert.equal(
    (await r.call("POST", "/api/v1/sources", { name: "tailer", type: "file", path: file, stream: "lines" })).status,
    409,
  );

  await r.runnel.stop();
  r = await startInstance(data.dir);
  const again = await waitFor(
    async () => (await r.call("GET", "/api/v1/sources/tailer")).body,
    (s) => s.state === "running",
  );
  assert.equal(again.state, "running");
  assert.equal((await r.call("DELETE", "/api/v1/sources/tailer")).status, 204);
  assert.equal((await r.call("GET", "/api/v1/sources/tailer")).status, 404);
});

test("a source that cannot start is reported failed with the reason, and retried", async () => {
  const created = await r.call("POST", "/api/v1/sources", {
    name: "nowhere",
    type: "mqtt",
    url: "mqtt://127.0.0.1:1",
    topics: [{ filter: "x/#", stream: "lines" }],
  });
  assert.equal(created.status, 201);
  const failed = await waitFor(
    async () => (await r.call("GET", "/api/v1/sources/nowhere")).body,
    (s) => s.state === "failed",
  );
  assert.equal(failed.state, "failed");
  assert.match(String(failed.reason), /ECONNREFUSED|connect/);
  assert.equal((await r.call("DELETE", "/api/v1/sources/nowhere")).status, 204);
});

test("a bad body is refused naming the field; only admins see sources", async () => {
  const bad = await r.call("POST", "/api/v1/sources", { name: "x", type: "file", stream: "lines" });
  assert.equal(bad.status, 400);
  assert.match(String(bad.body.message), /body\.path is required/);
  const signup = await r.call("POST", "/api/v1/auth/signup", {
    username: "eve",
    email: "e@x.io",
    password: "password-1",
  });
  assert.equal(signup.status, 201);
  const login = await r.runnel.app.inject({
    method: "POST",
    url: "/api/v1/auth/login",
    headers: { "content-type": "application/json" },
    payload: JSON.stringify({ username: "eve", password: "password-1" }),
  });
  const token = (JSON.parse(login.body) as { token: string }).token;
  const res = await r.runnel.app.inject({
    method: "GET",
    url: "/api/v1/sources",
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.statusCode, 403);
});
