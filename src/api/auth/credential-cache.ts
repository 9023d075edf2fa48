/**
 * Principals resolved from credentials, kept briefly so that ingest does not pay a control-store
 * query (on embedded PGlite, about a millisecond of the event loop) and a JWT verification on
 * every request.
 *
 * Revocation stays prompt: the ControlStore returned by `watch` empties the cache when a change
 * to users or keys made through it (role, disabled, password, deletion, key deletion) has
 * committed, before its caller hears back, so the next request after that answer checks the
 * store again. A change made by another Runnel instance on a shared PostgreSQL is seen within
 * `ttlMs`.
 *
 * @example
 * const credentials = new CredentialCache(clock);
 * const control = credentials.watch(createPgliteControlStore(dir));
 * const auth = new Authenticator(control, tokens, credentials);
 */
import type { ControlStore } from "../../control/types.js";
import type { Clock } from "../../core/clock.js";
import type { AuthPrincipal } from "./authenticate.js";

/** The ControlStore calls that can change what a credential resolves to. */
const REVOKING = new Set<PropertyKey>(["updateUser", "deleteUser", "deleteApiKey"]);

interface Entry {
  readonly principal: AuthPrincipal;
  readonly until: number;
}

export interface CredentialCacheOptions {
  /** How long a resolved credential is trusted without asking the store again. Default 1 s. */
  readonly ttlMs?: number;
  /** Entries kept at most; the oldest goes first. Default 10 000. */
  readonly maxEntries?: number;
}

export class CredentialCache {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  /** Bumped by every invalidation, so a lookup that started before one cannot store its stale answer. */
  private epoch = 0;

  constructor(
    private readonly clock: Clock,
    options: CredentialCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 1000;
    this.maxEntries = options.maxEntries ?? 10_000;
  }

  get(secret: string): AuthPrincipal | undefined {
    const entry = this.entries.get(secret);
    if (entry === undefined) return undefined;
    if (this.clock.now() >= entry.until) {
      this.entries.delete(secret);
      return undefined;
    }
    return entry.principal;
  }

  /** Taken before a lookup and handed to `set`, which then ignores an answer an invalidation overtook. */
  begin(): number {
    return this.epoch;
  }

  /** Keeps `principal` for `secret` until the TTL passes or the credential itself expires (epoch ms). */
  set(secret: string, principal: AuthPrincipal, expiresAt: number, epoch: number): void {
    if (epoch !== this.epoch) return;
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(secret, { principal, until: Math.min(this.clock.now() + this.ttlMs, expiresAt) });
  }

  invalidate(): void {
    this.epoch++;
    this.entries.clear();
  }

  /** `control`, with every revoking change invalidating this cache once it has committed. */
  watch(control: ControlStore): ControlStore {
    const wrapped = new Map<PropertyKey, unknown>();
    return new Proxy(control, {
      get: (target, property) => {
        const value: unknown = Reflect.get(target, property, target);
        if (typeof value !== "function") return value;
        let fn = wrapped.get(property);
        if (fn === undefined) {
          fn = REVOKING.has(property)
            ? async (...args: unknown[]) => {
                try {
                  return await value.apply(target, args);
                } finally {
                  // Also after a failure: the change may have committed before the error.
                  this.invalidate();
                }
              }
            : value.bind(target);
          wrapped.set(property, fn);
        }
        return fn;
      },
    });
  }
}
