/**
 * The one seam between the control store and a PostgreSQL connection: enough to run a
 * parameterised statement and a transaction, so PGlite and a real server share every line of SQL
 * (kysely's Dialect idea, at the size this store needs).
 */

export interface SqlExecutor {
  /** One statement (PGlite's extended protocol refuses several), `$1…` parameters. */
  query<T>(sql: string, params?: readonly unknown[]): Promise<{ rows: T[] }>;
}

export interface SqlDriver extends SqlExecutor {
  /** Runs `fn` in one transaction on one connection; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /**
   * Runs once the migrations have: what this kind of server wants of the schema that the
   * migrations, shared by both, cannot say (pglite.ts).
   */
  migrated?(): Promise<void>;
  /** Connection use right now, for monitoring (read at each scrape, so it must be cheap). */
  poolStats(): DriverPoolStats;
}

/** A driver's connections: opened (`total`), of which `idle`; requests `waiting` for one; the limit `max`. */
export interface DriverPoolStats {
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
  readonly max: number;
}

/** The fields both drivers' errors carry for a server error (pg's and PGlite's DatabaseError). */
export interface DatabaseErrorLike {
  readonly code: string;
  readonly constraint?: string;
  readonly message: string;
}

export function isDatabaseError(e: unknown): e is DatabaseErrorLike {
  return (
    typeof e === "object" && e !== null && typeof (e as { code?: unknown }).code === "string" && e instanceof Error
  );
}
