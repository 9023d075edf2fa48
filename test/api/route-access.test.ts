/**
 * Who may call a route is declared with the route (src/api/auth/access.ts): every registered
 * route declares it, an undeclared one is refused, and the credential is checked before the body
 * is parsed.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Fastify from "fastify";
import { checkRouteAccess } from "../../src/api/auth/access.js";
import { routeKey } from "../../src/api/routes/openapi.js";
import { ROLES } from "../../src/control/types.js";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

let t: TestRunnel;
before(async () => {
  t = await startTestRunnel();
});
after(() => t.close());

describe("route access", () => {
  it("every registered route declares who may call it", () => {
    assert.ok(t.app.runnelRoutes.length > 40, "the routes were collected");
    const undeclared = t.app.runnelRoutes.filter((r) => r.access === undefined).map(routeKey);
    assert.deepEqual(undeclared, []);
    for (const route of t.app.runnelRoutes) {
      const access = route.access;
      if (access === "public" || access === "authenticated" || access === "instance") continue;
      assert.ok(Array.isArray(access) && access.length > 0, `${routeKey(route)} declares no role`);
      for (const role of access as readonly string[]) assert.ok((ROLES as readonly string[]).includes(role));
    }
  });

  it("only signup, login, health, metrics and the OpenAPI document are public", () => {
    const open = t.app.runnelRoutes.filter((r) => r.access === "public").map(routeKey);
    assert.deepEqual(open.sort(), [
      "GET /api/v1/openapi.json",
      "GET /healthz",
      "GET /metrics",
      "GET /readyz",
      "POST /api/v1/auth/login",
      "POST /api/v1/auth/signup",
    ]);
  });

  it("only the cluster's share queries are for instances, and no user's credential reaches them", async () => {
    const instanceOnly = t.app.runnelRoutes.filter((r) => r.access === "instance").map(routeKey);
    assert.deepEqual(instanceOnly, ["POST /api/v1/cluster/query"]);
    const res = await t.app.inject({
      method: "POST",
      url: "/api/v1/cluster/query",
      headers: { authorization: `Bearer ${t.adminToken}` },
      payload: { sql: "SELECT 1", params: [], scope: { kind: "all" }, slots: [0] },
    });
    assert.equal(res.statusCode, 401, res.body);
    assert.equal(JSON.parse(res.body).error, "unauthorized");
  });

  it("a route that declares nothing is refused, even with a valid credential", async () => {
    const app = Fastify();
    checkRouteAccess(app, {
      authenticate: async () => ({ userId: "u", username: "u", role: "admin", credential: "token" }),
    });
    app.get("/undeclared", async () => ({ leaked: true }));
    const res = await app.inject({ method: "GET", url: "/undeclared", headers: { authorization: "Bearer x" } });
    assert.equal(res.statusCode, 403);
    assert.doesNotMatch(res.body, /leaked/);
    await app.close();
  });

  it("a bad credential answers 401 before a malformed body is parsed", async () => {
    for (const [contentType, body] of [
      ["application/json", "{not json"],
      ["application/x-ndjson", "{]\n"],
      ["application/json", "[".repeat(100_000)],
    ] as const) {
      for (const authorization of [
        undefined,
        "Bearer not-a-token",
        "Bearer rnl_AAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
      ]) {
        const res = await t.app.inject({
          method: "POST",
          url: "/api/v1/streams/anything/events",
          headers: { "content-type": contentType, ...(authorization !== undefined && { authorization }) },
          payload: body,
        });
        assert.equal(res.statusCode, 401, `${contentType} ${authorization}: ${res.body}`);
      }
    }
  });

  it("a role the route does not admit gets 403 before its body is parsed", async () => {
    const res = await t.app.inject({
      method: "POST",
      url: "/api/v1/users",
      headers: { "content-type": "application/json", authorization: `Bearer ${await userToken()}` },
      payload: "{not json",
    });
    assert.equal(res.statusCode, 403, res.body);
  });
});

async function userToken(): Promise<string> {
  const res = await t.call("POST", "/api/v1/auth/signup", {
    body: { username: "plain", email: "plain@example.com", password: "plain-password" },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return t.login("plain", "plain-password");
}
