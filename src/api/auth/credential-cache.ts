/**
 * Principals resolved from credentials, kept briefly so that ingest does not pay a control-store
 * query (on embedded PGlite, about a millisecond of the event loop) and a JWT verification on
 * every request.
 *
 * Revocation stays prompt: the cache empties itself on every Revocation (./revocations.ts), which
 * the control store publishes once a revoking change has committed and before its caller hears
 * back, so the next request after that answer checks the store again. A change made by another
 * Runnel instance on a shared PostgreSQL publishes nothing here and is seen within `ttlMs`.
 *
 * @example
 * const revocations = new Revocations();
 * const credentials = new CredentialCache(clock, { revocations });
 * const control = createPgliteControlStore(dir, { revocations });
 * const auth = new Authenticator(control, tokens, credentials);
 */
import type { Clock } from "../../core/clock.js";
import type { AuthPrincipal } from "./authenticate.js";
import type { Revocations } from "./revocations.js";

interface Entry {
  readonly principal: AuthPrincipal;
  readonly until: number;
}

export const DEFAULT_CREDENTIAL_TTL_MS = 1000;

export interface CredentialCacheOptions {
  /** How long a resolved credential is trusted without asking the store again. Default 1 s. */
  readonly ttlMs?: number;
  /** Entries kept at most; the oldest goes first. Default 10 000. */
  readonly maxEntries?: number;
  /** The revocations to obey; without them only the TTL ends an entry. */
  readonly revocations?: Revocations;
}

export class CredentialCache {
  private readonly entries = new Map<string, Entry>();
  readonly ttlMs: number;
  private readonly maxEntries: number;
  /** Bumped by every invalidation, so a lookup that started before one cannot store its stale answer. */
  private epoch = 0;

  constructor(
    private readonly clock: Clock,
    options: CredentialCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? DEFAULT_CREDENTIAL_TTL_MS;
    this.maxEntries = options.maxEntries ?? 10_000;
    // Everything goes, not only the user's entries: revocations are rare and a full refill is cheap.
    options.revocations?.subscribe(() => this.invalidate());
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
}
