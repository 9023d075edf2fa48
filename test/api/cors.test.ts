/** CORS is off unless configured, and then only for the listed origins. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

async function preflight(t: TestRunnel, origin: string) {
  return t.app.inject({
    method: "OPTIONS",
    url: "/api/v1/query",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization" },
  });
}

describe("without RUNNEL_CORS_ORIGINS", () => {
  let t: TestRunnel;
  before(async () => {
    t = await startTestRunnel();
  });
  after(() => t.close());

  it("sends no CORS header to any origin", async () => {
    const res = await t.app.inject({ method: "GET", url: "/healthz", headers: { origin: "https://evil.example" } });
    assert.equal(res.headers["access-control-allow-origin"], undefined);
    const pre = await preflight(t, "https://evil.example");
    assert.equal(pre.headers["access-control-allow-origin"], undefined);
    assert.notEqual(pre.statusCode, 204);
  });
});

describe("with RUNNEL_CORS_ORIGINS", () => {
  let t: TestRunnel;
  before(async () => {
    t = await startTestRunnel({ env: { RUNNEL_CORS_ORIGINS: "https://app.example.com, http://localhost:5173" } });
  });
  after(() => t.close());

  it("allows the listed origins, with a preflight, and nobody else", async () => {
    const res = await t.app.inject({
      method: "GET",
      url: "/api/v1/streams",
      headers: { origin: "https://app.example.com", authorization: `Bearer ${t.adminToken}` },
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["access-control-allow-origin"], "https://app.example.com");
    assert.equal(res.headers["access-control-allow-credentials"], undefined);

    const pre = await preflight(t, "http://localhost:5173");
    assert.equal(pre.statusCode, 204);
    assert.equal(pre.headers["access-control-allow-origin"], "http://localhost:5173");
    assert.match(String(pre.headers["access-control-allow-headers"]), /authorization/);

    const other = await preflight(t, "https://evil.example");
    assert.equal(other.headers["access-control-allow-origin"], undefined);
  });
});
