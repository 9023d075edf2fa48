/** The HTTP timeout and rate-limit settings of docs/security.md ("Revocation, limits and timeouts"). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config/config.js";

test("timeouts and rates default to the documented values", () => {
  const config = loadConfig({}, {});
  assert.deepEqual(config.http, { requestTimeoutMs: 60_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 72_000 });
  assert.deepEqual(config.auth.signupRate, { count: 10, windowMs: 3_600_000 });
  assert.deepEqual(config.auth.apiKeyRate, { count: 20, windowMs: 3_600_000 });
  assert.ok(Object.isFrozen(config.http) && Object.isFrozen(config.auth.signupRate));
});

test("they are read from the environment", () => {
  const config = loadConfig(
    {},
    { RUNNEL_REQUEST_TIMEOUT: "2s", RUNNEL_SIGNUP_RATE: "3/1m", RUNNEL_API_KEY_RATE: "1/1s" },
  );
  assert.equal(config.http.requestTimeoutMs, 2000);
  assert.deepEqual(config.auth.signupRate, { count: 3, windowMs: 60_000 });
  assert.deepEqual(config.auth.apiKeyRate, { count: 1, windowMs: 1000 });
});

test("bad values are refused naming the setting", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ RUNNEL_REQUEST_TIMEOUT: "0s" }, /RUNNEL_REQUEST_TIMEOUT/],
    [{ RUNNEL_HEADERS_TIMEOUT: "2h" }, /RUNNEL_HEADERS_TIMEOUT .* from 1s to 1h/],
    [{ RUNNEL_KEEP_ALIVE_TIMEOUT: "soon" }, /RUNNEL_KEEP_ALIVE_TIMEOUT/],
    [{ RUNNEL_SIGNUP_RATE: "10" }, /RUNNEL_SIGNUP_RATE .* count per duration such as 10\/1h/],
    [{ RUNNEL_SIGNUP_RATE: "0/1h" }, /RUNNEL_SIGNUP_RATE/],
    [{ RUNNEL_API_KEY_RATE: "5/10ms" }, /RUNNEL_API_KEY_RATE/],
  ];
  for (const [env, message] of cases) {
    assert.throws(
      () => loadConfig({}, env),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify(env),
    );
  }
});
