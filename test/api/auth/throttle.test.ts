/** Login throttling with a hand-moved clock: slowed, then refused for a while, never for ever. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { DEFAULT_THROTTLE_POLICY, LoginThrottle } from "../../../src/api/auth/throttle.js";
import { ManualClock } from "../../../src/core/clock.js";

const P = DEFAULT_THROTTLE_POLICY;

function failTimes(t: LoginThrottle, n: number, user: string, ip: string): void {
  for (let i = 0; i < n; i++) t.fail(user, ip);
}

describe("LoginThrottle", () => {
  it("lets the free failures through, then locks the pair for doubling times", () => {
    const clock = new ManualClock(1_000_000);
    const t = new LoginThrottle(clock);
    failTimes(t, P.pair.free, "alice", "10.0.0.1");
    assert.equal(t.check("alice", "10.0.0.1"), undefined);
    assert.deepEqual(t.fail("alice", "10.0.0.1"), [{ scope: "pair", retryAfterSeconds: 1 }]);
    assert.deepEqual(t.check("alice", "10.0.0.1"), { scope: "pair", retryAfterSeconds: 1 });
    clock.advance(1_000);
    assert.equal(t.check("alice", "10.0.0.1"), undefined);
    assert.deepEqual(t.fail("alice", "10.0.0.1"), [{ scope: "pair", retryAfterSeconds: 2 }]);
    clock.advance(2_000);
    assert.deepEqual(t.fail("alice", "10.0.0.1"), [{ scope: "pair", retryAfterSeconds: 4 }]);
  });

  it("caps every lock, so no run of failures locks anyone out for ever", () => {
    const clock = new ManualClock(0);
    const t = new LoginThrottle(clock);
    failTimes(t, 200, "alice", "10.0.0.1");
    const refusal = t.check("alice", "10.0.0.1");
    assert.ok(refusal !== undefined);
    assert.ok(refusal.retryAfterSeconds <= P.pair.capMs / 1000, JSON.stringify(refusal));
    clock.advance(P.address.capMs);
    assert.equal(t.check("alice", "10.0.0.1"), undefined);
  });

  it("a lock on one address leaves the user's login from another address alone", () => {
    const clock = new ManualClock(0);
    const t = new LoginThrottle(clock);
    failTimes(t, P.pair.free + 3, "alice", "203.0.113.9");
    assert.ok(t.check("alice", "203.0.113.9"));
    assert.equal(t.check("alice", "10.0.0.1"), undefined);
    assert.equal(t.check("bob", "203.0.113.9"), undefined);
  });

  it("spread guessing locks the username, except for addresses that logged in before", () => {
    const clock = new ManualClock(0);
    const t = new LoginThrottle(clock);
    t.succeed("alice", "10.0.0.1");
    for (let i = 0; i <= P.username.free; i++) t.fail("alice", `198.51.100.${i}`);
    assert.equal(t.check("alice", "192.0.2.1")?.scope, "username");
    assert.equal(t.check("alice", "10.0.0.1"), undefined, "known address");
    assert.ok((t.check("alice", "192.0.2.1")?.retryAfterSeconds ?? 0) <= P.username.capMs / 1000);
  });

  it("one address spraying many usernames is locked by address, and a success does not wash it", () => {
    const clock = new ManualClock(0);
    const t = new LoginThrottle(clock);
    for (let i = 0; i <= P.address.free; i++) t.fail(`user${i}`, "203.0.113.7");
    t.succeed("mallory", "203.0.113.7");
    assert.equal(t.check("someone-new", "203.0.113.7")?.scope, "address");
  });

  it("forgets failures after a quiet hour", () => {
    const clock = new ManualClock(0);
    const t = new LoginThrottle(clock);
    failTimes(t, P.pair.free, "alice", "10.0.0.1");
    clock.advance(P.forgetMs + 1);
    assert.deepEqual(t.fail("alice", "10.0.0.1"), []);
  });

  it("a success clears the pair counter", () => {
    const clock = new ManualClock(0);
    const t = new LoginThrottle(clock);
    failTimes(t, P.pair.free, "alice", "10.0.0.1");
    t.succeed("alice", "10.0.0.1");
    assert.deepEqual(t.fail("alice", "10.0.0.1"), []);
  });

  it("keeps memory bounded", () => {
    const clock = new ManualClock(0);
    const t = new LoginThrottle(clock, { ...P, maxEntries: 10 });
    for (let i = 0; i < 1000; i++) t.fail(`u${i}`, `a${i}`);
    assert.equal(t.check("u0", "a0"), undefined);
  });

  it("property: Retry-After is within [1 s, cap], and waiting it out always unlocks", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom("alice", "bob"), fc.constantFrom("1.1.1.1", "2.2.2.2"), fc.nat(5_000)), {
          maxLength: 200,
        }),
        (attempts) => {
          const clock = new ManualClock(0);
          const t = new LoginThrottle(clock);
          const maxCap = Math.max(P.pair.capMs, P.username.capMs, P.address.capMs) / 1000;
          for (const [user, ip, wait] of attempts) {
            clock.advance(wait);
            const refusal = t.check(user, ip);
            if (refusal) {
              assert.ok(refusal.retryAfterSeconds >= 1 && refusal.retryAfterSeconds <= maxCap);
              clock.advance(refusal.retryAfterSeconds * 1000);
              assert.equal(t.check(user, ip), undefined);
            }
            t.fail(user, ip);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
