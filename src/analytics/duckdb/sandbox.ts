/**
 * Layer 2 of query isolation for the `user` scope: each query runs in an in-memory DuckDB
 * instance that holds nothing but copies of the caller's rows of the tables the query names,
 * with external access off and configuration locked. Whatever the SQL does, there is no other
 * user's row in that instance to read.
 *
 * A query does everything in a sandbox inside one transaction (the copies, then its SELECT), so
 * rolling that transaction back leaves the instance as it was created: no table, no view, no
 * sequence. The pool hands such a sandbox to the next query only once it has checked that its
 * catalog is empty again; a sandbox whose query failed or whose check finds anything is closed
 * instead. Reusing saves creating an instance (~15 ms of CPU, and a few ms closing it on the
 * event loop) per query, which on a 2-core machine competed with the queries themselves. Nothing
 * a SELECT can do survives the rollback but the position of random()'s generator: settings are
 * locked, and what keeps state past a transaction (SET, PREPARE, CREATE) is no SELECT, which
 * both the query check and the runner require.
 */
import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { type EngineLimits, limitReadAhead, lockEngine, openEngine } from "./engine.js";

export interface Sandbox {
  readonly instance: DuckDBInstance;
  readonly connection: DuckDBConnection;
}

/** Objects in a sandbox's catalog that a query (its copies included) could have left. */
const LEFT_OVER = `SELECT (SELECT count(*) FROM duckdb_tables())
  + (SELECT count(*) FROM duckdb_views() WHERE NOT internal)
  + (SELECT count(*) FROM duckdb_sequences())
  + (SELECT count(*) FROM duckdb_indexes())
  + (SELECT count(*) FROM duckdb_types() WHERE NOT internal)
  + (SELECT count(*) FROM duckdb_schemas() WHERE NOT internal)
  + (SELECT count(*) FROM duckdb_databases() WHERE database_name <> 'memory' AND NOT internal)`;

async function createSandbox(limits: EngineLimits): Promise<Sandbox> {
  const instance = await openEngine(":memory:", limits);
  const connection = await instance.connect();
  await limitReadAhead(connection);
  await lockEngine(connection);
  return { instance, connection };
}

function closeSandbox(sandbox: Sandbox): void {
  // Closing costs a few ms; the caller's answer need not wait for it.
  setImmediate(() => {
    sandbox.connection.closeSync();
    sandbox.instance.closeSync();
  });
}

/**
 * Rolls back what the sandbox's last query did and checks nothing is left; true when it is as
 * new. Exported for the test that proves it.
 */
export async function resetSandbox(sandbox: Sandbox): Promise<boolean> {
  try {
    await sandbox.connection.run("ROLLBACK");
    const [[left]] = (await sandbox.connection.runAndReadAll(LEFT_OVER)).getRowsJS() as [[bigint]];
    return left === 0n;
  } catch {
    return false;
  }
}

export class SandboxPool {
  private readonly ready: Promise<Sandbox>[] = [];
  private closed = false;

  constructor(
    private readonly limits: EngineLimits,
    private readonly size: number,
  ) {}

  fill(): void {
    while (!this.closed && this.ready.length < this.size) {
      const pending = createSandbox(this.limits);
      // A failed warm-up surfaces on take(); do not let it become an unhandled rejection.
      pending.catch(() => {});
      this.ready.push(pending);
    }
  }

  /**
   * A locked sandbox with an empty catalog, used by one query at a time; the caller gives it
   * back with release(), or discard() when its query did not end well.
   */
  async take(): Promise<Sandbox> {
    const next = this.ready.shift();
    if (next === undefined) return createSandbox(this.limits);
    return next;
  }

  /**
   * Resets the sandbox (resetSandbox) and keeps it for the next query, or closes it if it is not
   * as new or the pool is full. The reset runs after the caller's answer: a query that comes
   * before it ends waits for it (it is well under a millisecond) rather than for a new instance.
   */
  release(sandbox: Sandbox): void {
    if (this.closed || this.ready.length >= this.size) {
      closeSandbox(sandbox);
      return;
    }
    const reset = resetSandbox(sandbox).then(async (clean) => {
      if (clean) return sandbox;
      closeSandbox(sandbox);
      return createSandbox(this.limits);
    });
    reset.catch(() => {});
    this.ready.push(reset);
  }

  /** Closes a sandbox whose query failed or was interrupted, and starts a new one in its place. */
  discard(sandbox: Sandbox): void {
    closeSandbox(sandbox);
    this.fill();
  }

  async close(): Promise<void> {
    this.closed = true;
    const pending = this.ready.splice(0);
    for (const p of pending) {
      try {
        closeSandbox(await p);
      } catch {
        // Never became usable; nothing to release.
      }
    }
  }
}
