/**
 * The control plane's public surface. The composition root picks one factory from configuration:
 *
 * ```ts
 * const store = config.databaseUrl
 *   ? createPostgresControlStore(config.databaseUrl)
 *   : createPgliteControlStore(join(config.dataDir, "control"));
 * await store.open();
 * ```
 */
import { connectPglite } from "./pglite.js";
import { connectPostgres, type PostgresDriverOptions } from "./postgres.js";
import { SqlControlStore, type SqlControlStoreOptions } from "./sql-store.js";
import type { ControlStore } from "./types.js";

export type { GeneratedApiKey } from "./api-keys.js";
export { generateApiKey, hashApiKey, looksLikeApiKey } from "./api-keys.js";
export { MIGRATIONS, migrate } from "./migrations.js";
export type { ScryptParams } from "./passwords.js";
export {
  createPasswordHasher,
  DEFAULT_SCRYPT_PARAMS,
  hashPassword,
  needsRehash,
  verifyNoPassword,
  verifyPassword,
} from "./passwords.js";
export type { SqlControlStoreOptions } from "./sql-store.js";
export { ACTIVITY_DEFAULT_LIMIT, ACTIVITY_MAX_LIMIT, SqlControlStore } from "./sql-store.js";
export type * from "./types.js";
export { ROLES } from "./types.js";
export { foldUsername } from "./usernames.js";

/** Embedded PostgreSQL (PGlite) kept in `dir`, or in memory (for tests) when `dir` is undefined. */
export function createPgliteControlStore(dir?: string, options?: SqlControlStoreOptions): ControlStore {
  return new SqlControlStore(() => connectPglite(dir), options);
}

/** A PostgreSQL server by URL (`postgres://user:pass@host:port/db`). */
export function createPostgresControlStore(
  url: string,
  options?: PostgresDriverOptions & SqlControlStoreOptions,
): ControlStore {
  return new SqlControlStore(() => connectPostgres(url, options), options);
}
