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

test("PATCH with a null, array or scalar body is refused with 400", async () => {
  for (const raw of ["null", "[]", "7", '"on"', '{"enabled": "yes"}', '{"name": "x"}']) {
    const res = await t.call("PATCH", `/api/v1/rules/${ruleId}`, {
      token: t.adminToken,
      raw,
      contentType: "application/json",
    });
    assert.equal(res.status, 400, `${raw}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error, "invalid_input");
  }
});

test("POST with a null or non-object body is refused with 400", async () => {
  for (const raw of ["null", "[]", "1"]) {
    const res = await t.call("POST", "/api/v1/rules", { token: t.adminToken, raw, contentType: "application/json" });
    assert.equal(res.status, 400, `${raw}: ${JSON.stringify(res.body)}`);
  }
});
