/**
 * Logs: JSON lines with a request id and a component, and never a secret. Signup, login (right
 * and wrong), password change, API key creation and use run with debug logging; the captured
 * lines must contain none of the passwords, tokens or keys involved.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { loadConfig } from "../../src/config/config.js";
import { startRunnel } from "../../src/server.js";
import { ADMIN_PASSWORD, tempDataDir } from "../helpers/server-process.js";

test("debug logs carry request ids and components, and no password, token or API key", async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(
        ...chunk
          .toString()
          .split("\n")
          .filter((l) => l !== ""),
      );
      done();
    },
  });
  const data = await tempDataDir();
  const config = loadConfig(
    {},
    { RUNNEL_DATA_DIR: data.dir, RUNNEL_ADMIN_PASSWORD: ADMIN_PASSWORD, RUNNEL_LOG_LEVEL: "debug" },
  );
  const runnel = await startRunnel(config, { listen: false, logDestination: sink });
  const secrets = [ADMIN_PASSWORD];
  try {
    const call = async (method: "GET" | "POST", url: string, body?: unknown, token?: string, requestId?: string) => {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers["content-type"] = "application/json";
      if (token !== undefined) headers.authorization = `Bearer ${token}`;
      if (requestId !== undefined) headers["x-request-id"] = requestId;
      const res = await runnel.app.inject({
        method,
        url,
        headers,
        ...(body !== undefined && { payload: JSON.stringify(body) }),
      });
      return {
        status: res.statusCode,
        body: JSON.parse(res.body || "{}") as Record<string, string>,
        headers: res.headers,
      };
    };

    const password = "first-Secret-pass-81";
    const next = "second-Secret-pass-92";
    secrets.push(password, next);
    assert.equal(
      (await call("POST", "/api/v1/auth/signup", { username: "carol", email: "c@example.com", password })).status,
      201,
    );
    assert.equal(
      (await call("POST", "/api/v1/auth/login", { username: "carol", password: "wrong-Secret-pass-03" })).status,
      401,
    );
    secrets.push("wrong-Secret-pass-03");
    const login = await call("POST", "/api/v1/auth/login", { username: "carol", password }, undefined, "trace-abc.123");
    assert.equal(login.status, 200);
    assert.equal(login.headers["x-request-id"], "trace-abc.123", "a sane incoming request id is kept and echoed");
    const token = login.body.token!;
    secrets.push(token);
    const changed = await call("POST", "/api/v1/me/password", { current: password, next }, token);
    assert.ok(changed.status === 200 || changed.status === 204, `password change: ${changed.status}`);
    if (typeof changed.body.token === "string") secrets.push(changed.body.token);
    const relogin = await call("POST", "/api/v1/auth/login", { username: "carol", password: next });
    const token2 = relogin.body.token!;
    secrets.push(token2);
    const key = await call("POST", "/api/v1/api-keys", { name: "laptop" }, token2);
    assert.equal(key.status, 201);
    secrets.push(key.body.key!);
    assert.equal((await call("GET", "/api/v1/me", undefined, key.body.key)).status, 200);
    // A credential in the query string (as EventSource clients send one) is not logged either.
    await call("GET", `/api/v1/streams/nope/tail?access_token=${token2}`);
    const adminToken = (await call("POST", "/api/v1/auth/login", { username: "admin", password: ADMIN_PASSWORD })).body
      .token!;
    secrets.push(adminToken);
    assert.equal((await call("GET", "/api/v1/operator-alerts", undefined, adminToken)).status, 200);

    assert.ok(lines.length >= 10, `expected a line per request, got ${lines.length}`);
    for (const line of lines) {
      for (const secret of secrets) assert.ok(!line.includes(secret), `a log line holds a secret: ${line}`);
      assert.doesNotMatch(line, /"authorization"|Bearer /i);
    }
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = parsed.filter((p) => p.msg === "request completed");
    assert.ok(requests.length >= 9);
    for (const r of requests) {
      assert.equal(r.component, "api");
      assert.equal(typeof r.reqId, "string");
      assert.equal(typeof (r.req as { method?: unknown }).method, "string");
    }
    assert.ok(requests.some((r) => r.reqId === "trace-abc.123"));
    const ids = new Set(requests.map((r) => r.reqId));
    assert.ok(ids.size >= requests.length - 1, "request ids are distinct");
    assert.ok(requests.some((r) => (r.req as { url: string }).url === "/api/v1/streams/nope/tail"));
  } finally {
    await runnel.stop();
    await data.remove();
  }
});
