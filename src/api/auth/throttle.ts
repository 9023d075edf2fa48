/**
 * Login throttling: failed logins are counted per (username, address) pair, per username and per
 * address; past a free allowance each further failure locks that counter for a doubling time,
 * capped, during which logins it covers are refused with 429 and Retry-After.
 *
 * Why this scheme:
 * - The pair counts first and strictest (5 free failures): one address guessing one account is
 *   the common attack, and locking only that pair leaves the real user, who logs in from another
 *   address, untouched.
 * - The username counter (20 free) catches guessing spread over many addresses. It would let an
 *   attacker lock a real user out, so it never applies to an address that has logged in to that
 *   account successfully before (a "known address"), and its cap is short (5 minutes).
 * - The address counter (50 free) catches one address spraying many usernames. A success does not
 *   reset it: an attacker holding one valid account must not be able to wash their record clean.
 * - Every lock is capped (15 minutes at most) and counters are forgotten after an hour without
 *   failures, so no sequence of failures locks anyone out for ever; the worst an attacker can do
 *   to a real user from elsewhere is slow their logins from new addresses to one per 5 minutes.
 * - While locked, the password is not checked at all: a correct guess during a lock must not
 *   succeed, or the lock would not slow guessing; it also saves the KDF's cost under attack.
 *
 * State is in memory, per process, and bounded (oldest entries are dropped first): with several
 * instances an attacker gets each instance's allowance, which multiplies the rate by the number
 * of instances but keeps it bounded. Time comes from the injected Clock.
 */
import type { Clock } from "../../core/clock.js";

export interface ThrottleRule {
  /** Failures allowed before the first lock. */
  readonly free: number;
  /** Length of the first lock; each further failure doubles it. */
  readonly baseMs: number;
  readonly capMs: number;
}

export interface ThrottlePolicy {
  readonly pair: ThrottleRule;
  readonly username: ThrottleRule;
  readonly address: ThrottleRule;
  /** A counter with no failure for this long starts again from zero. */
  readonly forgetMs: number;
  /** How long a successful login makes its address "known" for that username. */
  readonly knownAddressMs: number;
  /** Most entries kept per map, so a flood of distinct names cannot exhaust memory. */
  readonly maxEntries: number;
}

export const DEFAULT_THROTTLE_POLICY: ThrottlePolicy = Object.freeze({
  pair: Object.freeze({ free: 5, baseMs: 1_000, capMs: 15 * 60_000 }),
  username: Object.freeze({ free: 20, baseMs: 1_000, capMs: 5 * 60_000 }),
  address: Object.freeze({ free: 50, baseMs: 1_000, capMs: 15 * 60_000 }),
  forgetMs: 60 * 60_000,
  knownAddressMs: 30 * 24 * 60 * 60_000,
  maxEntries: 100_000,
});

export type ThrottleScope = "pair" | "username" | "address";

export interface ThrottleRefusal {
  readonly scope: ThrottleScope;
  /** Whole seconds until a retry can be considered, at least 1. */
  readonly retryAfterSeconds: number;
}

interface Counter {
  failures: number;
  lastFailureAt: number;
  lockedUntil: number;
}

/** A Map that drops its oldest entries past a size, and treats an update as the newest. */
export class BoundedMap<V> {
  readonly #map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    return this.#map.get(key);
  }
  set(key: string, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    while (this.#map.size > this.max) {
      const oldest = this.#map.keys().next().value;
      if (oldest === undefined) break;
      this.#map.delete(oldest);
    }
  }
  delete(key: string): void {
    this.#map.delete(key);
  }
}

export class LoginThrottle {
  readonly #counters: Record<ThrottleScope, BoundedMap<Counter>>;
  readonly #known: BoundedMap<number>;

  constructor(
    private readonly clock: Clock,
    private readonly policy: ThrottlePolicy = DEFAULT_THROTTLE_POLICY,
  ) {
    this.#counters = {
      pair: new BoundedMap(policy.maxEntries),
      username: new BoundedMap(policy.maxEntries),
      address: new BoundedMap(policy.maxEntries),
    };
    this.#known = new BoundedMap(policy.maxEntries);
  }

  /** The refusal that applies to a login attempt now, if any (the longest, when several do). */
  check(username: string, address: string): ThrottleRefusal | undefined {
    const now = this.clock.now();
    let refusal: ThrottleRefusal | undefined;
    for (const [scope, key] of this.#keys(username, address)) {
      if (scope === "username" && this.#isKnown(username, address, now)) continue;
      const counter = this.#counters[scope].get(key);
      if (counter === undefined || counter.lockedUntil <= now) continue;
      const retryAfterSeconds = Math.max(1, Math.ceil((counter.lockedUntil - now) / 1000));
      if (refusal === undefined || retryAfterSeconds > refusal.retryAfterSeconds) {
        refusal = { scope, retryAfterSeconds };
      }
    }
    return refusal;
  }

  /** Counts a failure; returns the scopes whose lock this failure started or extended. */
  fail(username: string, address: string): ThrottleRefusal[] {
    const now = this.clock.now();
    const locked: ThrottleRefusal[] = [];
    for (const [scope, key] of this.#keys(username, address)) {
      const map = this.#counters[scope];
      const rule = this.policy[scope];
      let counter = map.get(key);
      if (counter === undefined || now - counter.lastFailureAt > this.policy.forgetMs) {
        counter = { failures: 0, lastFailureAt: now, lockedUntil: 0 };
      }
      counter.failures += 1;
      counter.lastFailureAt = now;
      const over = counter.failures - rule.free;
      if (over > 0) {
        // 2^(over-1) grows past any cap quickly; clamp the exponent so the arithmetic stays finite.
        const ms = Math.min(rule.capMs, rule.baseMs * 2 ** Math.min(over - 1, 40));
        counter.lockedUntil = now + ms;
        locked.push({ scope, retryAfterSeconds: Math.max(1, Math.ceil(ms / 1000)) });
      }
      map.set(key, counter);
    }
    return locked;
  }

  /** A successful login clears the pair and the username counters and remembers the address. */
  succeed(username: string, address: string): void {
    this.#counters.pair.delete(pairKey(username, address));
    this.#counters.username.delete(username);
    this.#known.set(pairKey(username, address), this.clock.now());
  }

  #isKnown(username: string, address: string, now: number): boolean {
    const at = this.#known.get(pairKey(username, address));
    return at !== undefined && now - at <= this.policy.knownAddressMs;
  }

  #keys(username: string, address: string): [ThrottleScope, string][] {
    return [
      ["pair", pairKey(username, address)],
      ["username", username],
      ["address", address],
    ];
  }
}

function pairKey(username: string, address: string): string {
  // An address never holds NUL, so the last NUL splits the key unambiguously: keys cannot collide.
  return `${username}\u0000${address}`;
}
