import pg from "pg";
import type { SqlDriver, SqlExecutor } from "./driver.js";

export interface PostgresDriverOptions {
  /** Connections in the pool. */
  readonly max?: number;
  /** How long to wait for a connection before a query fails, so readiness checks cannot hang. */
  readonly connectionTimeoutMs?: number;
  /**
   * This instance's name in the change feed: every connection sets `runnel.origin` to it, so the
   * notifications of its own writes say they are its own (src/control/change-feed.ts).
   */
  readonly origin?: string;
  /**
   * The server ends a session idle inside a transaction this long (PostgreSQL's
   * idle_in_transaction_session_timeout), releasing its locks. Default: the server's setting.
   */
  readonly idleInTransactionTimeoutMs?: number;
}

/** A real PostgreSQL server by URL, through a `pg` connection pool. */
export async function connectPostgres(url: string, options: PostgresDriverOptions = {}): Promise<SqlDriver> {
  const max = options.max ?? 10;
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5000,
    application_name: "runnel",
    ...(options.origin !== undefined && { options: originOption(options.origin) }),
    ...(options.idleInTransactionTimeoutMs !== undefined && {
      idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs,
    }),
  });
  // An idle client losing its connection emits here; unhandled, it would crash the process. The
  // pool discards that client and the next query reports any lasting outage to its caller.
  pool.on("error", () => {});
  const exec = async <T>(client: pg.Pool | pg.PoolClient, sql: string, params: readonly unknown[]) => {
    const result = await client.query(sql, [...params]);
    return { rows: result.rows as T[] };
  };
  return {
    query: <T>(sql: string, params: readonly unknown[] = []) => exec<T>(pool, sql, params),
    async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      // A connection lost mid-transaction (server restart, pg_terminate_backend) also emits 'error'
      // on its client, which the pool hears only for idle clients: unheard, it would crash the
      // process. The failing query already reports it to the caller.
      const ignore = () => {};
      client.on("error", ignore);
      let broken: unknown;
      try {
        await client.query("BEGIN");
        const value = await fn({
          query: <R>(sql: string, params: readonly unknown[] = []) => exec<R>(client, sql, params),
        });
        await client.query("COMMIT");
        return value;
      } catch (e) {
        try {
          await client.query("ROLLBACK");
        } catch (rollbackError) {
          // The connection is unusable; release(err) destroys it rather than returning it to the pool.
          broken = rollbackError;
        }
        throw e;
      } finally {
        client.off("error", ignore);
        client.release(broken instanceof Error ? broken : undefined);
      }
    },
    async close() {
      if (!pool.ended) await pool.end();
    },
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max }),
  };
}

/** The startup option that sets `runnel.origin` on a connection (a name the server's option parser takes unquoted). */
export function originOption(origin: string): string {
  if (!/^[A-Za-z0-9_.:/-]+$/.test(origin))
    throw new Error(`an origin is letters, digits and _.:/- only, got "${origin}"`);
  return `-c runnel.origin=${origin}`;
}
