/** The token-bucket rate limiter of signup and API key creation, on a manual clock. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RateLimiter } from "../../../src/api/auth/rate-limit.js";
import { ManualClock } from "../../../src/core/clock.js";

describe("rate limiter", () => {
  it("lets a burst of count through, then one per window/count, with Retry-After", () => {
    const clock = new ManualClock(0);
    const limiter = new RateLimiter(clock, { count: 3, windowMs: 60_000 }, "signups");
    for (let i = 0; i < 3; i++) limiter.take("ip:a");
    assert.throws(
      () => limiter.take("ip:a"),
      (e: unknown) => {
        const err = e as { code: string; retryAfter: number };
        assert.equal(err.code, "too_many_attempts");
        assert.equal(err.retryAfter, 20);
        return true;
      },
    );
    limiter.take("ip:b");
    clock.advance(20_000);
    limiter.take("ip:a");
    assert.throws(() => limiter.take("ip:a"), { code: "too_many_attempts" });
  });

  it("takes from every key or from none", () => {
    const clock = new ManualClock(0);
    const limiter = new RateLimiter(clock, { count: 2, windowMs: 60_000 }, "API keys");
    limiter.take("user:1", "ip:a");
    limiter.take("user:1", "ip:a");
    // The user is spent: the address keeps its tokens for other users.
    assert.throws(() => limiter.take("user:1", "ip:b"), { code: "too_many_attempts" });
    limiter.take("user:2", "ip:b");
    limiter.take("user:3", "ip:b");
    assert.throws(() => limiter.take("user:4", "ip:b"), { code: "too_many_attempts" });
  });

  it("forgets the oldest keys past its bound", () => {
    const clock = new ManualClock(0);
    const limiter = new RateLimiter(clock, { count: 1, windowMs: 60_000 }, "signups", 2);
    limiter.take("a");
    limiter.take("b");
    limiter.take("c");
    limiter.take("a");
    assert.throws(() => limiter.take("c"), { code: "too_many_attempts" });
  });
});
