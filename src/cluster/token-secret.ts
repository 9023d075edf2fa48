/**
 * The token signing secret of an installation, kept in the control database when
 * RUNNEL_TOKEN_SECRET is not set: the first instance to start generates it, every other one reads
 * it, so a token from a login on one instance is accepted by all (behind one load balancer).
 */
import { randomBytes } from "node:crypto";
import type { SqlExecutor } from "../control/driver.js";

export async function sharedTokenSecret(db: SqlExecutor, installation: string): Promise<string> {
  // As src/api/auth/tokens.ts generates one for a single process: 48 random bytes.
  await db.query(
    "INSERT INTO installation_secrets (installation, token_secret) VALUES ($1, $2) ON CONFLICT (installation) DO NOTHING",
    [installation, randomBytes(48).toString("base64url")],
  );
  const { rows } = await db.query<{ token_secret: string }>(
    "SELECT token_secret FROM installation_secrets WHERE installation = $1",
    [installation],
  );
  const secret = rows[0]?.token_secret;
  if (secret === undefined) throw new Error(`no token secret stored for installation "${installation}"`);
  return secret;
}
