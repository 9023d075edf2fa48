/** Requests between instances are signed with a key derived from the installation's token secret. */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { InstanceAuth } from "../../../src/cluster/queries/instance-auth.js";
import { isRunnelError } from "../../../src/core/errors.js";

const unauthorized = (pattern: RegExp) => (e: unknown) =>
  isRunnelError(e) && e.code === "unauthorized" && pattern.test(e.message);

test("a body signed by an instance verifies, naming it; anything else is refused", () => {
  let now = 1_000_000;
  const a = new InstanceAuth("secret", "runnel 0/é", { now: () => now });
  const b = new InstanceAuth("secret", "runnel-1", { now: () => now });
  const body = '{"sql":"SELECT 1"}';
  const header = a.sign(body);
  assert.equal(b.verify(header, body), "runnel 0/é");
  assert.throws(() => b.verify(header, `${body} `), unauthorized(/does not match/));
  assert.throws(() => b.verify(undefined, body), unauthorized(/no instance signature/));
  assert.throws(() => b.verify("v1 a b", body), unauthorized(/malformed/));
  assert.throws(() => b.verify(header.replace("runnel", "rennel"), body), unauthorized(/does not match/));
  assert.throws(
    () => new InstanceAuth("other", "x", { now: () => now }).verify(header, body),
    unauthorized(/does not match/),
  );
  now += 30_001;
  assert.throws(() => b.verify(header, body), unauthorized(/too old/));
});

test("a login token's signature (the secret itself) is not an instance signature", () => {
  const auth = new InstanceAuth("secret", "a", { now: () => 5 });
  const body = "{}";
  const withSecret = createHmac("sha256", "secret").update(`a\n5\n${body}`).digest("base64url");
  assert.throws(() => auth.verify(`v1 a 5 ${withSecret}`, body), unauthorized(/does not match/));
  assert.equal(auth.verify(auth.sign(body), body), "a");
});
