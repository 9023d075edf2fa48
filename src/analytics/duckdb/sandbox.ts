/**
 * Layer 2 of query isolation for the `user` scope: each query runs in its own in-memory DuckDB
 * instance that holds nothing but copies of the caller's rows of the tables the query names,
 * with external access off and configuration locked. Whatever the SQL does, there is no other
 * user's row in that instance to read. Instances are never reused; a small pool creates them
 * ahead of time because creating one costs ~15 ms while copying a few thousand rows costs ~1 ms.
 */
import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { type EngineLimits, limitReadAhead, lockEngine, openEngine } from "./engine.js";

export interface Sandbox {
  readonly instance: DuckDBInstance;
  readonly connection: DuckDBConnection;
  dispose(): void;
}

async function createSandbox(limits: EngineLimits): Promise<Sandbox> {
  const instance = await openEngine(":memory:", limits);
  const connection = await instance.connect();
  await limitReadAhead(connection);
  await lockEngine(connection);
  return {
    instance,
    connection,
    dispose() {
      // Closing costs a few ms; the caller's answer need not wait for it.
      setImmediate(() => {
        connection.closeSync();
        instance.closeSync();
      });
    },
  };
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

  /** A fresh, locked sandbox used by exactly one query; the caller disposes it. */
  async take(): Promise<Sandbox> {
    const next = this.ready.shift();
    this.fill();
    return next ?? createSandbox(this.limits);
  }

  async close(): Promise<void> {
    this.closed = true;
    const pending = this.ready.splice(0);
    for (const p of pending) {
      try {
        (await p).dispose();
      } catch {
        // Never became usable; nothing to release.
      }
    }
  }
}
