/**
 * Rate limits for costly account actions (signup, API key creation): a token bucket per key (a
 * client address, a user id) holding `count` tokens, refilled at `count` per `windowMs`. A burst
 * of `count` passes, then one per windowMs/count; an empty bucket is refused with 429
 * `too_many_attempts` and Retry-After. Signup hashes a password with scrypt, so without a bound
 * one address signing up in a loop takes the CPU that logins need.
 *
 * Unlike the login throttle (./throttle.ts), every attempt counts, successful or not: the cost is
 * in the attempt. State is in memory per process and bounded like the throttle's (oldest keys are
 * forgotten first); time comes from the injected Clock.
 *
 * @example
 * const signups = new RateLimiter(clock, { count: 10, windowMs: 3_600_000 }, "signups");
 * signups.take(`ip:${request.ip}`); // throws RunnelError("too_many_attempts") when empty
 */
import type { RateLimit } from "../../config/config.js";
import type { Clock } from "../../core/clock.js";
import { RunnelError } from "../../core/errors.js";
import { BoundedMap } from "./throttle.js";

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  readonly #buckets: BoundedMap<Bucket>;

  constructor(
    private readonly clock: Clock,
    private readonly limit: RateLimit,
    /** What is limited, for the error message ("signups", "API keys"). */
    private readonly what: string,
    maxKeys = 100_000,
  ) {
    this.#buckets = new BoundedMap(maxKeys);
  }

  /** Takes one token from each key's bucket, or none if any is empty (then throws 429). */
  take(...keys: string[]): void {
    const now = this.clock.now();
    const perMs = this.limit.count / this.limit.windowMs;
    const buckets = keys.map((key) => {
      const bucket = this.#buckets.get(key) ?? { tokens: this.limit.count, at: now };
      bucket.tokens = Math.min(this.limit.count, bucket.tokens + (now - bucket.at) * perMs);
      bucket.at = now;
      return [key, bucket] as const;
    });
    const empty = buckets.find(([, bucket]) => bucket.tokens < 1);
    if (empty !== undefined) {
      const retryAfter = Math.max(1, Math.ceil((1 - empty[1].tokens) / perMs / 1000));
      throw new RunnelError("too_many_attempts", `too many ${this.what}; try again in ${retryAfter} s`, {
        retryAfter,
      });
    }
    for (const [key, bucket] of buckets) {
      bucket.tokens -= 1;
      this.#buckets.set(key, bucket);
    }
  }
}
