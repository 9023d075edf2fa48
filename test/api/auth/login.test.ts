/** The login decision against a real (in-memory) control store and a hand-moved clock. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { login } from "../../../src/api/auth/login.js";
import { LoginThrottle } from "../../../src/api/auth/throttle.js";
import { TokenService } from "../../../src/api/auth/tokens.js";
import { createPasswordHasher, createPgliteControlStore, hashPassword } from "../../../src/control/index.js";
import type { ControlStore } from "../../../src/control/types.js";
import { ManualClock } from "../../../src/core/clock.js";
import { RunnelError } from "../../../src/core/errors.js";

const clock = new ManualClock(Date.parse("2026-11-28T12:00:00Z"));
const passwords = createPasswordHasher({ N: 2 ** 11, r: 8, p: 1 });
const tokens = new TokenService("x".repeat(32), 3_600_000, clock);
const client = { ip: "10.0.0.1", userAgent: "test" };
let control: ControlStore;

before(async () => {
  control = createPgliteControlStore();
  await control.open();
});
after(() => control.close());

async function newUser(name: string, password: string, N = 2 ** 11) {
  return control.createUser({
    username: name,
    email: `${name}@example.com`,
    passwordHash: await hashPassword(password, { N, r: 8, p: 1 }),
    role: "user",
  });
}

async function kinds(userId: string): Promise<string[]> {
  return (await control.listActivity(userId)).map((e) => e.kind);
}

describe("login", () => {
  it("re-hashes a weaker stored hash with the current parameters, keeping tokens valid", async () => {
    const user = await newUser("weak", "password-1", 2 ** 10);
    const deps = { control, passwords, tokens, throttle: new LoginThrottle(clock) };
    const result = await login(deps, "weak", "password-1", client);
    const stored = await control.getUserByUsername("weak");
    assert.match(stored?.passwordHash ?? "", /^scrypt\$N=2048,r=8,p=1\$/);
    assert.equal(stored?.tokenVersion, user.tokenVersion);
    assert.equal((await tokens.verify(result.token)).version, stored?.tokenVersion);
    await login(deps, "weak", "password-1", client);
  });

  it("leaves a current hash alone", async () => {
    await newUser("current", "password-1");
    const before = (await control.getUserByUsername("current"))?.passwordHash;
    await login({ control, passwords, tokens, throttle: new LoginThrottle(clock) }, "current", "password-1", client);
    assert.equal((await control.getUserByUsername("current"))?.passwordHash, before);
  });

  it("records failures and the start of a lock; refuses during the lock even with the right password", async () => {
    const user = await newUser("guessed", "password-1");
    const deps = { control, passwords, tokens, throttle: new LoginThrottle(clock) };
    for (let i = 0; i < 6; i++) {
      await assert.rejects(login(deps, "guessed", `wrong-${i}`, client), { code: "unauthorized" });
    }
    await assert.rejects(login(deps, "guessed", "password-1", client), (e: unknown) => {
      assert.ok(e instanceof RunnelError);
      assert.equal(e.code, "too_many_attempts");
      assert.equal(e.status, 429);
      assert.equal(e.retryAfter, 1);
      return true;
    });
    const seen = await kinds(user.id);
    assert.equal(seen.filter((k) => k === "login_failed").length, 6);
    assert.deepEqual(seen.slice(0, 2), ["login_throttled", "login_failed"]);
    // From another address the real user is not affected.
    await login(deps, "guessed", "password-1", { ip: "10.9.9.9", userAgent: null });
    clock.advance(1_000);
    await login(deps, "guessed", "password-1", client);
  });

  it("answers an unknown user exactly like a wrong password", async () => {
    const deps = { control, passwords, tokens, throttle: new LoginThrottle(clock) };
    await newUser("known", "password-1");
    const messages: string[] = [];
    for (const name of ["known", "nobody-here"]) {
      await assert.rejects(login(deps, name, "wrong-password", client), (e: unknown) => {
        assert.ok(e instanceof RunnelError && e.code === "unauthorized");
        messages.push(e.message);
        return true;
      });
    }
    assert.equal(messages[0], messages[1]);
  });

  it("refuses a disabled user with the same answer", async () => {
    const user = await newUser("off", "password-1");
    await control.updateUser(user.id, { disabled: true });
    const deps = { control, passwords, tokens, throttle: new LoginThrottle(clock) };
    await assert.rejects(login(deps, "off", "password-1", client), { code: "unauthorized" });
  });
});
