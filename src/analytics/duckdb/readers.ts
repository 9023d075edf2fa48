/**
 * The store's connections for queries, opened before its configuration is locked so that each
 * carries the per-connection settings a query needs (limitReadAhead), which a connection opened
 * afterwards could not take. One query holds one connection; when all are taken the next waits
 * (the query scheduler admits no more than the configured concurrency anyway).
 */
import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { limitReadAhead } from "./engine.js";

export class ReaderPool {
  private readonly free: DuckDBConnection[];
  private readonly waiting: ((connection: DuckDBConnection) => void)[] = [];

  private constructor(private readonly all: readonly DuckDBConnection[]) {
    this.free = [...all];
  }

  /** Opens `size` connections; call before the configuration is locked. */
  static async open(instance: DuckDBInstance, size: number): Promise<ReaderPool> {
    const connections: DuckDBConnection[] = [];
    for (let i = 0; i < size; i++) {
      const c = await instance.connect();
      await limitReadAhead(c);
      connections.push(c);
    }
    return new ReaderPool(connections);
  }

  async use<T>(work: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
    const connection =
      this.free.pop() ?? (await new Promise<DuckDBConnection>((resolve) => this.waiting.push(resolve)));
    try {
      return await work(connection);
    } finally {
      const next = this.waiting.shift();
      if (next) next(connection);
      else this.free.push(connection);
    }
  }

  close(): void {
    for (const c of this.all) c.closeSync();
  }
}
