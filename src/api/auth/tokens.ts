/**
 * Session tokens: HS256 JWTs carrying the user id and the user's token version. Bumping the
 * version in the control store (password change, disable) revokes every token issued before.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import type { Clock } from "../../core/clock.js";
import { RunnelError } from "../../core/errors.js";

export interface TokenClaims {
  readonly userId: string;
  readonly version: number;
}

export interface VerifiedClaims extends TokenClaims {
  /** When the token stops being valid, epoch ms. */
  readonly expiresAt: number;
}

export class TokenService {
  private readonly key: Uint8Array;

  constructor(
    secret: string,
    private readonly ttlMs: number,
    private readonly clock: Clock,
  ) {
    this.key = new TextEncoder().encode(secret);
  }

  get ttlSeconds(): number {
    return Math.floor(this.ttlMs / 1000);
  }

  async issue(claims: TokenClaims): Promise<string> {
    const now = Math.floor(this.clock.now() / 1000);
    return new SignJWT({ ver: claims.version })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(claims.userId)
      .setIssuedAt(now)
      .setExpirationTime(now + this.ttlSeconds)
      .setIssuer("runnel")
      .sign(this.key);
  }

  async verify(token: string): Promise<VerifiedClaims> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: ["HS256"],
        issuer: "runnel",
        currentDate: new Date(this.clock.now()),
      });
      if (typeof payload.sub !== "string" || typeof payload.ver !== "number" || typeof payload.exp !== "number") {
        throw new RunnelError("unauthorized", "the token is malformed");
      }
      return { userId: payload.sub, version: payload.ver, expiresAt: payload.exp * 1000 };
    } catch (e) {
      if (e instanceof RunnelError) throw e;
      if (e instanceof joseErrors.JWTExpired)
        throw new RunnelError("token_expired", "the token has expired; log in again");
      throw new RunnelError("unauthorized", "the token is invalid");
    }
  }
}

/** The configured secret, or one generated on first start and kept (0600) under the data dir. */
export async function loadTokenSecret(path: string, configured?: string): Promise<string> {
  if (configured !== undefined) return configured;
  try {
    return (await readFile(path, "utf8")).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  const secret = randomBytes(48).toString("base64url");
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${secret}\n`, { mode: 0o600, flag: "wx" });
  await chmod(path, 0o600);
  return secret;
}
