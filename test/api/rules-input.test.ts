/** Malformed rule requests get a JSON 400, never a 500 (regressions found by fuzzing). */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

let t: TestRunnel;
let ruleId = "";

before(async () => {
  t = await startTestRunnel();
  await t.call("POST", "/api/v1/streams", { token: t.adminToken, body: { name: "payments" } });
  const created = await t.call("POST", "/api/v1/rules", {
    token: t.adminToken,
    body: { name: "big", stream: "payments", pattern: [{ name: "big", where: "amount > 500" }] },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  ruleId = created.body.id as string;
});
after(() => t.close());

test("PATCH and PUT with a null, array, scalar or invalid body are refused with 400 naming the field", async () => {
  const cases: Array<[method: "PATCH" | "PUT", raw: string, names: string]> = [
    ["PATCH", "null", "JSON object"],
    ["PATCH", "[]", "JSON object"],
    ["PATCH", "7", "JSON object"],
    ["PATCH", '"on"', "JSON object"],
    ["PATCH", '{"enabled": "yes"}', "/enabled"],
    ["PATCH", '{"bogus": 1}', "/bogus"],
    ["PATCH", '{"pattern": []}', "/pattern"],
    ["PATCH", '{"stream": "nowhere"}', "/stream"],
    ["PATCH", '{"within": "soon"}', "/within"],
    ["PATCH", '{"actions": [{"type": "block", "users": "everyone"}]}', "/actions/0/users"],
    ["PUT", "null", "JSON object"],
    ["PUT", '{"name": "x", "stream": "payments"}', "/pattern"],
  ];
  for (const [method, raw, names] of cases) {
    const res = await t.call(method, `/api/v1/rules/${ruleId}`, {
      token: t.adminToken,
      raw,
      contentType: "application/json",
    });
    assert.equal(res.status, 400, `${method} ${raw}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error, "invalid_input");
    assert.ok(String(res.body.message).includes(names), `${method} ${raw}: ${res.body.message}`);
  }
  const unchanged = await t.call("GET", `/api/v1/rules/${ruleId}`, { token: t.adminToken });
  assert.equal(unchanged.body.name, "big", "a refused change changes nothing");
  for (const method of ["PATCH", "PUT"] as const) {
    const missing = await t.call(method, "/api/v1/rules/00000000-0000-4000-8000-000000000000", {
      token: t.adminToken,
      body: { name: "x", stream: "payments", pattern: [{ name: "a" }] },
    });
    assert.equal(missing.status, 404, method);
  }
});

test("POST with a null or non-object body is refused with 400", async () => {
  for (const raw of ["null", "[]", "1"]) {
    const res = await t.call("POST", "/api/v1/rules", { token: t.adminToken, raw, contentType: "application/json" });
    assert.equal(res.status, 400, `${raw}: ${JSON.stringify(res.body)}`);
  }
});
