/**
 * Resolves `Authorization: Bearer <token or API key>` to a principal on every request, so a
 * revoked credential (password changed, user disabled or deleted, key deleted) fails on the next
 * request. Answers come from a CredentialCache when one is given (./credential-cache.ts says why
 * that keeps revocation prompt).
 */

import { hashApiKey, looksLikeApiKey } from "../../control/api-keys.js";
import type { ControlStore, Role } from "../../control/types.js";
import { RunnelError } from "../../core/errors.js";
import type { CredentialCache } from "./credential-cache.js";
import type { TokenService } from "./tokens.js";

export interface AuthPrincipal {
  readonly userId: string;
  readonly username: string;
  /** The role this credential acts with (an API key's role, else the user's). */
  readonly role: Role;
  readonly credential: "token" | "api_key";
}

export class Authenticator {
  constructor(
    private readonly control: ControlStore,
    private readonly tokens: TokenService,
    private readonly cache?: CredentialCache,
  ) {}

  /** `fresh`: ask the store even if the cache holds an answer (an open connection re-checking). */
  async authenticate(header: string | undefined, options: { fresh?: boolean } = {}): Promise<AuthPrincipal> {
    if (header === undefined || header === "") {
      throw new RunnelError("unauthorized", "missing credentials: send Authorization: Bearer <token or API key>");
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new RunnelError("unauthorized", "the Authorization header must be Bearer <token or API key>");
    const secret = match[1]!;
    const cached = options.fresh === true ? undefined : this.cache?.get(secret);
    if (cached !== undefined) return cached;
    const epoch = this.cache?.begin() ?? 0;
    const { principal, expiresAt } = await this.resolve(secret);
    this.cache?.set(secret, principal, expiresAt, epoch);
    return principal;
  }

  private async resolve(secret: string): Promise<{ principal: AuthPrincipal; expiresAt: number }> {
    if (looksLikeApiKey(secret)) {
      const key = await this.control.findApiKeyByHash(hashApiKey(secret));
      if (!key || key.owner.disabled) throw new RunnelError("unauthorized", "the API key is invalid or revoked");
      // A key never acts above its owner: after a demotion, keys of the old role stop working.
      if (!keyRoleAllowed(key.owner.role, key.role)) {
        throw new RunnelError("unauthorized", "the API key's role exceeds its owner's; it has been revoked");
      }
      return {
        principal: { userId: key.owner.id, username: key.owner.username, role: key.role, credential: "api_key" },
        expiresAt: Number.POSITIVE_INFINITY,
      };
    }
    const claims = await this.tokens.verify(secret);
    const user = await this.control.getUserById(claims.userId);
    if (!user || user.disabled || user.tokenVersion !== claims.version) {
      throw new RunnelError("unauthorized", "the token has been revoked; log in again");
    }
    return {
      principal: { userId: user.id, username: user.username, role: user.role, credential: "token" },
      expiresAt: claims.expiresAt,
    };
  }
}

/** An admin's keys may carry any role; anyone else's only their own role or `user`. */
export function keyRoleAllowed(ownerRole: Role, keyRole: Role): boolean {
  return ownerRole === "admin" || keyRole === ownerRole || keyRole === "user";
}
