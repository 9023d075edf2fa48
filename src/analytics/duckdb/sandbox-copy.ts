/**
 * How a user's rows reach their sandbox (./sandbox.ts): the sandbox's table is created up front
 * with the types the store lists for the copied columns (so the statement can go with the ones
 * that begin the sandbox's transaction), and the rows the store's connection read, a
 * materialized result, are appended to it chunk by chunk with no round trip to DuckDB's thread
 * pool per chunk. The copy stays exact (JSON stays JSON, a widened column keeps its current
 * type): where the result's types differ from the listed ones, the table is made again from the
 * result's own.
 */
import type { DuckDBConnection, DuckDBMaterializedResult } from "@duckdb/node-api";
import { quoteIdent } from "./identifiers.js";
import { typeName } from "./results.js";
import type { TableColumn } from "./tiers.js";

/** `CREATE TABLE` of a sandbox's copy of `table` with `columns`. */
export function copyTableSql(table: string, columns: readonly TableColumn[]): string {
  const defs = columns.map((c) => `${quoteIdent(c.name)} ${c.type}`);
  return `CREATE TABLE ${quoteIdent(table)} (${defs.join(", ")})`;
}

/** The result's columns with their types as the sandbox's table needs them. */
export function resultColumns(result: DuckDBMaterializedResult): TableColumn[] {
  const types = result.columnTypes();
  return result.columnNames().map((name, i) => ({ name, type: typeName(types[i]!) }));
}

/**
 * Appends `result` to the sandbox's `table`, which copyTableSql(table, `created`) made in the
 * sandbox's open transaction; made again first if the result's columns are not `created`.
 */
export async function fillCopy(
  target: DuckDBConnection,
  table: string,
  created: readonly TableColumn[],
  result: DuckDBMaterializedResult,
): Promise<void> {
  const columns = resultColumns(result);
  const same =
    columns.length === created.length &&
    columns.every((c, i) => c.name === created[i]!.name && c.type === created[i]!.type);
  if (!same) await target.run(`DROP TABLE ${quoteIdent(table)}; ${copyTableSql(table, columns)}`);
  const chunks = result.chunkCount;
  if (chunks === 0) return;
  const appender = await target.createAppender(table);
  try {
    for (let i = 0; i < chunks; i++) appender.appendDataChunk(result.getChunk(i));
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}
