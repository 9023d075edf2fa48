import type { SqlDriver, SqlExecutor } from "./driver.js";
import { ALERTS_FEED_TRIGGER } from "./migrations.js";
import { createPglite } from "./pglite-template.js";

/**
 * Embedded PostgreSQL (PGlite, in WebAssembly) in `dir`, or in memory when `dir` is undefined; a
 * new cluster starts from the packaged template when there is one (pglite-template.ts).
 * One PGlite instance serves one process: it is single-connection, so queries queue behind each
 * other and a transaction holds the instance until it ends.
 */
export async function connectPglite(dir?: string): Promise<SqlDriver> {
  const db = await createPglite(dir);
  // Calls holding or queued for the one connection (a transaction counts once, for its whole length).
  let inFlight = 0;
  const track = async <T>(run: () => Promise<T>): Promise<T> => {
    inFlight++;
    try {
      return await run();
    } finally {
      inFlight--;
    }
  };
  return {
    query<T>(sql: string, params: readonly unknown[] = []) {
      return track(async () => {
        const result = await db.query<T>(sql, [...params]);
        return { rows: result.rows };
      });
    },
    transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      return track(() =>
        db.transaction((tx) =>
          fn({
            async query<R>(sql: string, params: readonly unknown[] = []) {
              const result = await tx.query<R>(sql, [...params]);
              return { rows: result.rows };
            },
          }),
        ),
      );
    },
    async close() {
      if (!db.closed) await db.close();
    },
    async migrated() {
      // The alerts' NOTIFY feeds other instances on a shared PostgreSQL (change-feed.ts); PGlite
      // serves one process and nobody listens, yet the trigger took 0.2-0.35 ms of every alert
      // insert of 20 rows on the main thread (12-15 %; 2 rows: 0.1-0.2 ms).
      await db.query(`ALTER TABLE cep_alerts DISABLE TRIGGER ${ALERTS_FEED_TRIGGER}`);
    },
    // PGlite is one connection: busy while any call runs, the others queue behind it.
    poolStats: () => ({ total: 1, idle: inFlight > 0 ? 0 : 1, waiting: Math.max(0, inFlight - 1), max: 1 }),
  };
}
