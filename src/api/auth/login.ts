/**
 * The login decision, apart from HTTP so it is tested with a fake clock and a store: throttle
 * check, password verification (timing-equal for unknown users), activity records, re-hashing
 * with stronger parameters, and the token.
 */
import { needsRehash as needsRehashDefault } from "../../control/passwords.js";
import type { ControlStore, User } from "../../control/types.js";
import { foldUsername } from "../../control/usernames.js";
import { RunnelError } from "../../core/errors.js";
import type { PasswordHasher } from "../services.js";
import type { LoginThrottle } from "./throttle.js";
import type { TokenService } from "./tokens.js";

export interface LoginResult {
  readonly token: string;
  readonly expiresIn: number;
  readonly user: User;
}

export interface LoginDeps {
  readonly control: ControlStore;
  readonly passwords: PasswordHasher;
  readonly tokens: TokenService;
  readonly throttle: LoginThrottle;
}

/** Where the attempt comes from, for the throttle and the activity log. */
export interface LoginClient {
  readonly ip: string;
  readonly userAgent: string | null;
}

const WRONG = "wrong username or password";

export async function login(
  deps: LoginDeps,
  username: string,
  password: string,
  client: LoginClient,
): Promise<LoginResult> {
  const { control, passwords, tokens, throttle } = deps;
  // Counted under the folded name: `Alice` and `ALICE` are one account, so they share one allowance.
  const name = foldUsername(username);
  const refused = throttle.check(name, client.ip);
  if (refused !== undefined) {
    throw new RunnelError("too_many_attempts", `too many failed logins; try again in ${refused.retryAfterSeconds} s`, {
      retryAfter: refused.retryAfterSeconds,
    });
  }

  const user = await control.getUserByUsername(username);
  // Verify against a real hash even for unknown users so timing does not reveal which usernames exist.
  const ok = user ? await passwords.verify(password, user.passwordHash) : await passwords.verifyNone(password);
  if (!user || !ok || user.disabled) {
    const locks = throttle.fail(name, client.ip);
    if (user) {
      await control.recordActivity(user.id, "login_failed", { ...client });
      for (const lock of locks) {
        await control.recordActivity(user.id, "login_throttled", {
          ...client,
          scope: lock.scope,
          seconds: lock.retryAfterSeconds,
        });
      }
    }
    throw new RunnelError("unauthorized", WRONG);
  }
  throttle.succeed(name, client.ip);

  // The plaintext is in hand only now: the one moment a hash can move to stronger parameters.
  const stale = passwords.needsRehash ?? ((encoded: string) => needsRehashDefault(encoded));
  if (stale(user.passwordHash)) {
    await control.rehashPassword(user.id, user.passwordHash, await passwords.hash(password));
  }
  await control.recordActivity(user.id, "login", { ...client });
  const token = await tokens.issue({ userId: user.id, version: user.tokenVersion });
  const { passwordHash: _secret, ...publicUser } = user;
  return { token, expiresIn: tokens.ttlSeconds, user: publicUser };
}
