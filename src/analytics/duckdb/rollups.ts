/**
 * Rollup tables in DuckDB (docs/rollups.md): Druid's ingestion-time rollup. Each rollup of a
 * stream is a stored table `_runnel_rollup_<name>` of partial aggregates, one row per partition,
 * time bucket and dimension values, brought up to date inside the transaction that applies the
 * stream's rows and positions (so a replay after a crash counts nothing twice), and a view
 * `<name>` that merges the partitions' rows into one per bucket and dimension values: the table
 * queries name.
 *
 * Dimensions are kept as text (Druid's default string dimensions), so a rollup's columns never
 * change type as the stream's do; sum, min and max read numbers as DOUBLE. The approximate
 * distinct count keeps a KMV sketch (the k smallest 64-bit hashes of the values, the idea behind
 * the theta sketches Druid uses): it merges exactly across batches, partitions and buckets by
 * union, is exact below SKETCH_SIZE distinct values and has a relative standard error of
 * 1/sqrt(SKETCH_SIZE - 2) ≈ 3.1% above (Bar-Yossef et al. 2002; Beyer et al., "On synopses for
 * distinct-value estimation under multiset operations", SIGMOD 2007).
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import type { RollupMetric, RollupSpec } from "../../control/types.js";
import { columnKey } from "./column-types.js";
import { quoteIdent } from "./identifiers.js";
import type { FieldColumns } from "./table-writer.js";

/** Hashes a KMV sketch keeps (k): 8 KiB per row at most. */
export const SKETCH_SIZE = 1024;

/** The stored table of a rollup (its `_runnel` prefix keeps it out of users' SQL: src/analytics/sql/check.ts). */
export function storedTable(rollup: string): string {
  return quoteIdent(`_runnel_rollup_${rollup}`);
}

const BATCH = quoteIdent("_runnel_rollup_batch");

function metricType(metric: RollupMetric): string {
  switch (metric.fn) {
    case "count":
      return "BIGINT";
    case "approx_count_distinct":
      return "UBIGINT[]";
    default:
      return "DOUBLE";
  }
}

export function createStoredSql(rollup: RollupSpec): string {
  const columns = [
    `"_partition" INTEGER NOT NULL`,
    `"_time" TIMESTAMPTZ`,
    ...rollup.dimensions.map((d) => `${quoteIdent(d)} VARCHAR`),
    `"_rows" BIGINT NOT NULL`,
    ...rollup.metrics.map((m) => `${quoteIdent(m.name)} ${metricType(m)}`),
  ];
  return `CREATE TABLE IF NOT EXISTS ${storedTable(rollup.name)} (${columns.join(", ")})`;
}

/** A sketch's k smallest distinct hashes (NULLs, the hashes of NULL values, dropped by list_distinct). */
function smallest(list: string): string {
  return `list_slice(list_sort(list_distinct(${list})), 1, ${SKETCH_SIZE})`;
}

/** The distinct count a sketch stands for: exact while it holds fewer than k hashes, (k-1)/h_k beyond. */
function estimate(sketch: string): string {
  return `CASE WHEN len(${sketch}) < ${SKETCH_SIZE} THEN len(${sketch})
    ELSE round((${SKETCH_SIZE} - 1) / (${sketch}[${SKETCH_SIZE}]::DOUBLE / 18446744073709551616.0))::BIGINT END`;
}

/** The aggregate of a metric's stored partial values over the rows of one group. */
function mergeAll(metric: RollupMetric): string {
  const c = quoteIdent(metric.name);
  switch (metric.fn) {
    case "count":
      return `sum(${c})::BIGINT`;
    case "sum":
      return `sum(${c})`;
    case "min":
      return `min(${c})`;
    case "max":
      return `max(${c})`;
    case "approx_count_distinct":
      return smallest(`flatten(list(${c}))`);
  }
}

/** The view queries read: partitions' partial rows merged into one row per bucket and dimension values. */
export function createViewSql(rollup: RollupSpec): string {
  const keys = ['"_time"', ...rollup.dimensions.map(quoteIdent)];
  const merged = rollup.metrics.map((m) => `${mergeAll(m)} AS ${quoteIdent(m.name)}`);
  const outer = rollup.metrics.map((m) => {
    const c = quoteIdent(m.name);
    return m.fn === "approx_count_distinct" ? `${estimate(c)} AS ${c}` : c;
  });
  return `CREATE OR REPLACE VIEW ${quoteIdent(rollup.name)} AS
    SELECT ${[...keys, ...outer].join(", ")}
    FROM (SELECT ${[...keys, ...merged].join(", ")} FROM ${storedTable(rollup.name)} GROUP BY ${keys.join(", ")})`;
}

export function dropSql(rollup: RollupSpec): string[] {
  return [`DROP VIEW IF EXISTS ${quoteIdent(rollup.name)}`, `DROP TABLE IF EXISTS ${storedTable(rollup.name)}`];
}

/** The stream table's column holding `field`, or NULL for a field no event has brought yet. */
function source(field: string, columns: FieldColumns): string {
  if (columnKey(field) === "user_id") return '"user_id"';
  const column = columns.get(columnKey(field));
  return column === undefined ? "NULL" : quoteIdent(column.name);
}

/** One batch's aggregate of `metric` over the rows of the stream table the batch applied. */
function aggregate(metric: RollupMetric, columns: FieldColumns): string {
  const value = metric.field === undefined ? "NULL" : source(metric.field, columns);
  const number = `TRY_CAST(${value} AS DOUBLE)`;
  switch (metric.fn) {
    case "count":
      return "count(*)";
    case "sum":
      return `sum(${number})`;
    case "min":
      return `min(${number})`;
    case "max":
      return `max(${number})`;
    case "approx_count_distinct":
      // md5, not DuckDB's hash(): sketches outlive the engine version that made them.
      return smallest(`list((md5_number(CAST(${value} AS VARCHAR)) >> 64)::UBIGINT)`);
  }
}

/** A stored row's metric merged with the batch's. */
function merge(metric: RollupMetric): string {
  const s = `s.${quoteIdent(metric.name)}`;
  const b = `b.${quoteIdent(metric.name)}`;
  switch (metric.fn) {
    case "count":
      return `${s} + ${b}`;
    case "sum":
      return `coalesce(${s} + ${b}, ${s}, ${b})`;
    case "min":
      // DuckDB's least and greatest skip NULLs.
      return `least(${s}, ${b})`;
    case "max":
      return `greatest(${s}, ${b})`;
    case "approx_count_distinct":
      return smallest(`list_concat(${s}, ${b})`);
  }
}

/**
 * Brings `rollup` up to date with the stream table's rows at offsets [from, to) of each
 * partition (the rows the caller's open transaction just appended): their aggregate per
 * partition, bucket and dimension values is merged into the stored row of the same key, or
 * becomes a new row.
 */
export async function applyRollup(
  c: DuckDBConnection,
  stream: string,
  rollup: RollupSpec,
  columns: FieldColumns,
  ranges: ReadonlyMap<number, readonly [number, number]>,
): Promise<void> {
  const where = [...ranges]
    .map(
      ([p, [from, to]]) =>
        `("_partition" = ${Math.trunc(p)} AND "_offset" >= ${Math.trunc(from)} AND "_offset" < ${Math.trunc(to)})`,
    )
    .join(" OR ");
  const g = Math.trunc(rollup.granularityMs);
  const dims = rollup.dimensions.map((d) => `CAST(${source(d, columns)} AS VARCHAR) AS ${quoteIdent(d)}`);
  const metrics = rollup.metrics.map((m) => `${aggregate(m, columns)} AS ${quoteIdent(m.name)}`);
  const keys = ['"_partition"', '"_time"', ...rollup.dimensions.map(quoteIdent)];
  await c.run(
    `CREATE OR REPLACE TEMP TABLE ${BATCH} AS
     SELECT "_partition", to_timestamp(floor(epoch_ms("_time") / ${g}) * ${g} / 1000.0) AS "_time", ${[...dims, 'count(*) AS "_rows"', ...metrics].join(", ")}
     FROM ${quoteIdent(stream)} WHERE ${where} GROUP BY ALL`,
  );
  const match = keys.map((k) => `s.${k} IS NOT DISTINCT FROM b.${k}`).join(" AND ");
  const table = storedTable(rollup.name);
  const sets = ['"_rows" = s."_rows" + b."_rows"', ...rollup.metrics.map((m) => `${quoteIdent(m.name)} = ${merge(m)}`)];
  await c.run(`UPDATE ${table} AS s SET ${sets.join(", ")} FROM ${BATCH} AS b WHERE ${match}`);
  await c.run(
    `INSERT INTO ${table} SELECT b.* FROM ${BATCH} AS b WHERE NOT EXISTS (SELECT 1 FROM ${table} AS s WHERE ${match})`,
  );
  await c.run(`DROP TABLE ${BATCH}`);
}

/** Rows a rollup has taken in, and rows it keeps for them. */
export interface RollupStats {
  readonly name: string;
  readonly rowsIn: number;
  readonly rowsKept: number;
}

export async function rollupStats(c: DuckDBConnection, rollup: RollupSpec): Promise<RollupStats> {
  const reader = await c.runAndReadAll(`SELECT coalesce(sum("_rows"), 0), count(*) FROM ${storedTable(rollup.name)}`);
  const [rowsIn, rowsKept] = reader.getRowsJS()[0] ?? [0, 0];
  return { name: rollup.name, rowsIn: Number(rowsIn), rowsKept: Number(rowsKept) };
}
