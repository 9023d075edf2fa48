/**
 * An import's input as batches of plain objects, in input order, so that "row n" means the same
 * rows on every run of one import (its chunks are identified by row numbers). NDJSON is parsed
 * here with JSON.parse, as ingest parses a request, so imported and ingested events type their
 * fields alike; CSV and Parquet are read by DuckDB (CSV columns typed by its sniffer) and their
 * values made JSON values: what ingest would have received.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { DuckDBConnection } from "@duckdb/node-api";
import { sqlString } from "../../analytics/duckdb/tiers.js";
import { RunnelError } from "../../core/errors.js";

export const IMPORT_FORMATS = ["ndjson", "csv", "parquet"] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

export function isImportFormat(x: unknown): x is ImportFormat {
  return (IMPORT_FORMATS as readonly unknown[]).includes(x);
}

/** The format a file's name implies (`.ndjson`/`.jsonl`/`.json`, `.csv`, `.parquet`), if any. */
export function formatOfName(name: string): ImportFormat | undefined {
  const lower = name.toLowerCase();
  if (/\.(ndjson|jsonl|json)$/.test(lower)) return "ndjson";
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".parquet")) return "parquet";
  return undefined;
}

/** Consecutive input rows; `where(i)` names row `first + i` in messages ("line 12", "row 3"). */
export interface InputBatch {
  readonly first: number;
  readonly rows: readonly unknown[];
  where(i: number): string;
}

const BATCH_ROWS = 2048;

/**
 * Reads `path` in `format`. `connection` is a DuckDB connection allowed to read the file (CSV
 * and Parquet only). A row that cannot be read (NDJSON that is not JSON, a CSV value that does
 * not fit the column DuckDB sniffed) throws invalid_input naming it.
 */
export async function* readInput(
  path: string,
  format: ImportFormat,
  connection: DuckDBConnection,
): AsyncGenerator<InputBatch> {
  if (format === "ndjson") yield* readNdjson(path);
  else yield* readWithDuckDb(path, format, connection);
}

async function* readNdjson(path: string): AsyncGenerator<InputBatch> {
  const lines = createInterface({
    input: createReadStream(path, { encoding: "utf8" }),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  let rows: unknown[] = [];
  let lineNumbers: number[] = [];
  let first = 0;
  let line = 0;
  const batch = (): InputBatch => {
    const numbers = lineNumbers;
    return { first, rows, where: (i) => `line ${numbers[i]}` };
  };
  for await (const text of lines) {
    line += 1;
    if (text.trim() === "") continue;
    try {
      rows.push(JSON.parse(text));
    } catch (e) {
      throw new RunnelError("invalid_input", `line ${line}: not valid JSON (${(e as Error).message})`);
    }
    lineNumbers.push(line);
    if (rows.length === BATCH_ROWS) {
      yield batch();
      first += rows.length;
      rows = [];
      lineNumbers = [];
    }
  }
  if (rows.length > 0) yield batch();
}

async function* readWithDuckDb(
  path: string,
  format: "csv" | "parquet",
  c: DuckDBConnection,
): AsyncGenerator<InputBatch> {
  const source = format === "csv" ? `read_csv(${sqlString(path)}, header = true)` : `read_parquet(${sqlString(path)})`;
  let first = 0;
  // Rows are counted from 1 at the first data row (after a CSV's header).
  const where = (at: number) => `row ${at + 1}`;
  try {
    const result = await c.stream(`SELECT * FROM ${source}`);
    for await (const objects of result.yieldRowObjectJs()) {
      const start = first;
      const rows = objects.map((o) => toJsonValue(o));
      yield { first: start, rows, where: (i) => where(start + i) };
      first += rows.length;
    }
  } catch (e) {
    if (e instanceof RunnelError) throw e;
    // DuckDB's messages run to several lines of hints; the first says what is wrong.
    const message = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    throw new RunnelError("invalid_input", `${format} input after row ${first}: ${message}`, { cause: e });
  }
}

/**
 * A value as DuckDB gives it to JavaScript, made a JSON value: integers as numbers (beyond 2^53
 * rounded, as JSON.parse rounds them), timestamps and dates as ISO-8601 strings, bytes as base64.
 */
export function toJsonValue(value: unknown): unknown {
  switch (typeof value) {
    case "bigint":
      return Number(value);
    case "number":
      return Number.isFinite(value) ? value : null;
    case "object": {
      if (value === null) return null;
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
      if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
      if (Array.isArray(value)) return value.map(toJsonValue);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = toJsonValue(v);
      return out;
    }
    default:
      return value;
  }
}
