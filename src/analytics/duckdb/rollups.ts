/**
 * Rollup tables in DuckDB (docs/rollups.md): Druid's ingestion-time rollup. Each rollup of a
 * stream is a stored table `_runnel_rollup_<name>` of partial aggregates, one row per partition,
 * time bucket and dimension values, brought up to date inside the transaction that applies the
 * stream's rows and positions (so a replay after a crash counts nothing twice), and a view
 * `<name>` that merges the partitions' rows into one per bucket and dimension values: the table
 * queries name.
 *
 * Tiers: a stored row remembers the first and last offset of the rows it aggregates (`_first`,
 * `_last`), and no row spans an offset the archive may cut a partition at. Before a range of a
 * partition is exported, the rows spanning its end are split at it (recomputed from the hot
 * rows), and the offset becomes the partition's seal: later rows are merged only into rows that
 * begin at or above it. The rows of the range are then exactly those with `_first` and `_last`
 * inside it, written beside the stream's file, and the archive boundary applies to rollup rows
 * as to the stream's: hot rows from `_first >= boundary` on, the files below (./tiers.ts).
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
const SPLIT = quoteIdent("_runnel_rollup_split");

/** Where each stream's partitions are sealed (see above); absent: 0. */
export const SEALS_TABLE = "_runnel_rollup_seals";
export const CREATE_SEALS_SQL = `CREATE TABLE IF NOT EXISTS ${SEALS_TABLE} (
  stream VARCHAR NOT NULL, "partition" INTEGER NOT NULL, seal BIGINT NOT NULL, PRIMARY KEY (stream, "partition"))`;

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
    `"_first" BIGINT NOT NULL`,
    `"_last" BIGINT NOT NULL`,
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
  return `CREATE OR REPLACE VIEW ${quoteIdent(rollup.name)} AS ${mergedSql(rollup, storedTable(rollup.name))}`;
}

/** The stored table's columns, in order (the rollup's archive files have the same). */
function storedColumns(rollup: RollupSpec): string[] {
  return [
    '"_partition"',
    '"_first"',
    '"_last"',
    '"_time"',
    ...rollup.dimensions.map(quoteIdent),
    '"_rows"',
    ...rollup.metrics.map((m) => quoteIdent(m.name)),
  ];
}

/** Where a rollup's rows are besides the hot table: its files. */
export interface RollupTiers {
  /** The per-partition boundary as an expression of `_partition` (perPartition). */
  readonly boundary: string;
  /** The rollup's files, one beside each archived and each imported file of the stream. */
  readonly files: readonly string[];
}

/**
 * The rollup over both tiers, for a temporary view of its name (as ./tiers.ts makes for a
 * stream): hot rows from each partition's boundary on, and the rollup's files of the archive.
 */
export function tieredRollupSql(database: string, rollup: RollupSpec, tiers: RollupTiers): string {
  return mergedSql(rollup, tieredRows(database, rollup, tiers));
}

/** The stored rows of both tiers: hot ones from the boundary on, and the archive's. */
export function tieredRows(database: string, rollup: RollupSpec, tiers: RollupTiers): string {
  const columns = storedColumns(rollup).join(", ");
  const list = (files: readonly string[]) => files.map((f) => `'${f.replaceAll("'", "''")}'`).join(", ");
  const parts = [
    `SELECT ${columns} FROM ${quoteIdent(database)}.main.${storedTable(rollup.name)} WHERE "_first" >= ${tiers.boundary}`,
  ];
  if (tiers.files.length > 0) parts.push(`SELECT ${columns} FROM read_parquet([${list(tiers.files)}])`);
  return `(${parts.join(" UNION ALL ")})`;
}

function mergedSql(rollup: RollupSpec, from: string): string {
  const keys = ['"_time"', ...rollup.dimensions.map(quoteIdent)];
  const merged = rollup.metrics.map((m) => `${mergeAll(m)} AS ${quoteIdent(m.name)}`);
  const outer = rollup.metrics.map((m) => {
    const c = quoteIdent(m.name);
    return m.fn === "approx_count_distinct" ? `${estimate(c)} AS ${c}` : c;
  });
  return `SELECT ${[...keys, ...outer].join(", ")}
    FROM (SELECT ${[...keys, ...merged].join(", ")} FROM ${from} GROUP BY ${keys.join(", ")})`;
}

/**
 * Compaction of a rollup's files of consecutive ranges of one partition: their rows of the same
 * group merged into one, which spans no offset the merged file does not.
 */
export function compactedSql(rollup: RollupSpec, files: readonly string[]): string {
  const keys = ['"_time"', ...rollup.dimensions.map(quoteIdent)];
  const select = [
    '"_partition"',
    'min("_first") AS "_first"',
    'max("_last") AS "_last"',
    ...keys,
    'sum("_rows")::BIGINT AS "_rows"',
    ...rollup.metrics.map((m) => `${mergeAll(m)} AS ${quoteIdent(m.name)}`),
  ];
  const list = files.map((f) => `'${f.replaceAll("'", "''")}'`).join(", ");
  return `SELECT ${select.join(", ")} FROM read_parquet([${list}])
    GROUP BY "_partition", ${keys.join(", ")} ORDER BY "_time"`;
}

export function dropSql(rollup: RollupSpec): string[] {
  return [`DROP VIEW IF EXISTS ${quoteIdent(rollup.name)}`, `DROP TABLE IF EXISTS ${storedTable(rollup.name)}`];
}

/** The stream table's column holding `field` (of table alias `q`), or NULL for a field no event has brought yet. */
function source(field: string, columns: FieldColumns, q = ""): string {
  if (columnKey(field) === "user_id") return `${q}"user_id"`;
  const column = columns.get(columnKey(field));
  return column === undefined ? "NULL" : `${q}${quoteIdent(column.name)}`;
}

/** A row's group: its bucket, then its dimension values as text. */
function groupKeys(rollup: RollupSpec, columns: FieldColumns, q = ""): string[] {
  const g = Math.trunc(rollup.granularityMs);
  return [
    `to_timestamp(floor(epoch_ms(${q}"_time") / ${g}) * ${g} / 1000.0)`,
    ...rollup.dimensions.map((d) => `CAST(${source(d, columns, q)} AS VARCHAR)`),
  ];
}

/** Stored rows aggregating the stream table's rows that `where` picks, grouped by partition, group and `split`. */
function aggregateSql(rollup: RollupSpec, columns: FieldColumns, from: string, where: string, split?: string): string {
  const keys = groupKeys(rollup, columns);
  const select = [
    '"_partition"',
    'min("_offset") AS "_first"',
    'max("_offset") AS "_last"',
    `${keys[0]} AS "_time"`,
    ...rollup.dimensions.map((d, i) => `${keys[i + 1]} AS ${quoteIdent(d)}`),
    'count(*) AS "_rows"',
    ...rollup.metrics.map((m) => `${aggregate(m, columns)} AS ${quoteIdent(m.name)}`),
  ];
  // By position: an alias such as _time would name the stream table's column here.
  const groups = ["1", ...keys.map((_, i) => String(4 + i)), ...(split === undefined ? [] : [split])];
  return `SELECT ${select.join(", ")} FROM ${from} WHERE ${where} GROUP BY ${groups.join(", ")}`;
}

/**
 * A rollup added to a stream that has rows (docs/rollups.md, "Adding and removing"): its stored
 * rows for the stream table's hot rows from each partition's archive boundary on (the rows below
 * are in archive files, which get rollup files of their own), none spanning a partition's seal.
 */
export function backfillSql(
  stream: string,
  rollup: RollupSpec,
  columns: FieldColumns,
  boundaries: ReadonlyMap<number, number>,
  seals: ReadonlyMap<number, number>,
): string {
  const select = aggregateSql(
    rollup,
    columns,
    quoteIdent(stream),
    `"_offset" >= ${perPartition(boundaries)}`,
    `("_offset" >= ${perPartition(seals)})`,
  );
  return `INSERT INTO ${storedTable(rollup.name)} ${select}`;
}

/**
 * A rollup's rows of one archive file, computed from the file's rows (`file`: a read_parquet
 * expression): one row per partition, bucket and dimension values, spanning only the file's
 * offsets, as the file's rollup file would hold had the rollup been declared when it was written.
 */
export function fileRollupSql(rollup: RollupSpec, columns: FieldColumns, file: string): string {
  return `${aggregateSql(rollup, columns, file, "true")} ORDER BY "_time"`;
}

/** `CASE <q>_partition WHEN p THEN offset … ELSE 0 END`. */
export function perPartition(offsets: ReadonlyMap<number, number>, q = ""): string {
  if (offsets.size === 0) return "0";
  const cases = [...offsets].map(([p, o]) => `WHEN ${Math.trunc(p)} THEN ${Math.trunc(o)}`);
  return `(CASE ${q}"_partition" ${cases.join(" ")} ELSE 0 END)`;
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
 * partition, bucket and dimension values is merged into the stored row of the same key that
 * begins at or above the partition's seal, or becomes a new row.
 */
export async function applyRollup(
  c: DuckDBConnection,
  stream: string,
  rollup: RollupSpec,
  columns: FieldColumns,
  ranges: ReadonlyMap<number, readonly [number, number]>,
  seals: ReadonlyMap<number, number>,
): Promise<void> {
  const where = [...ranges]
    .map(
      ([p, [from, to]]) =>
        `("_partition" = ${Math.trunc(p)} AND "_offset" >= ${Math.trunc(from)} AND "_offset" < ${Math.trunc(to)})`,
    )
    .join(" OR ");
  await c.run(`CREATE OR REPLACE TEMP TABLE ${BATCH} AS ${aggregateSql(rollup, columns, quoteIdent(stream), where)}`);
  const keys = ['"_partition"', '"_time"', ...rollup.dimensions.map(quoteIdent)];
  const match = `${keys.map((k) => `s.${k} IS NOT DISTINCT FROM b.${k}`).join(" AND ")} AND s."_first" >= ${perPartition(seals, "s.")}`;
  const table = storedTable(rollup.name);
  const sets = [
    '"_last" = greatest(s."_last", b."_last")',
    '"_rows" = s."_rows" + b."_rows"',
    ...rollup.metrics.map((m) => `${quoteIdent(m.name)} = ${merge(m)}`),
  ];
  await c.run(`UPDATE ${table} AS s SET ${sets.join(", ")} FROM ${BATCH} AS b WHERE ${match}`);
  await c.run(
    `INSERT INTO ${table} SELECT b.* FROM ${BATCH} AS b WHERE NOT EXISTS (SELECT 1 FROM ${table} AS s WHERE ${match})`,
  );
  await c.run(`DROP TABLE ${BATCH}`);
}

/**
 * Splits the stored rows of `partition` that span `at` (rows at offsets both below and from it)
 * into a row of each side, recomputed from the stream table's rows, which are all still hot:
 * a row spans `at` only if it began at or above the partition's boundary. The caller holds the
 * transaction and records `at` as the seal.
 */
export async function splitRollup(
  c: DuckDBConnection,
  stream: string,
  rollup: RollupSpec,
  columns: FieldColumns,
  partition: number,
  at: number,
): Promise<void> {
  const table = storedTable(rollup.name);
  const p = Math.trunc(partition);
  const e = Math.trunc(at);
  const spanning = `"_partition" = ${p} AND "_first" < ${e} AND "_last" >= ${e}`;
  await c.run(`CREATE OR REPLACE TEMP TABLE ${SPLIT} AS SELECT * FROM ${table} WHERE ${spanning}`);
  const [[count, from]] = (await c.runAndReadAll(`SELECT count(*), min("_first") FROM ${SPLIT}`)).getRowsJS() as [
    [bigint, bigint | null],
  ];
  if (Number(count) > 0) {
    await c.run(`DELETE FROM ${table} WHERE ${spanning}`);
    // A group's rows cover disjoint offset ranges, so the stream rows of a spanning row's group
    // inside its range are exactly the rows it aggregated.
    const keys = groupKeys(rollup, columns, "r.");
    const same = [
      `k."_time" IS NOT DISTINCT FROM ${keys[0]}`,
      ...rollup.dimensions.map((d, i) => `k.${quoteIdent(d)} IS NOT DISTINCT FROM ${keys[i + 1]}`),
      'r."_offset" BETWEEN k."_first" AND k."_last"',
    ];
    const where = `"_partition" = ${p} AND "_offset" >= ${Number(from)} AND EXISTS (SELECT 1 FROM ${SPLIT} AS k WHERE ${same.join(" AND ")})`;
    await c.run(
      `INSERT INTO ${table} ${aggregateSql(rollup, columns, `${quoteIdent(stream)} AS r`, where, `("_offset" >= ${e})`)}`,
    );
  }
  await c.run(`DROP TABLE ${SPLIT}`);
}

/** The rows of `partition` for offsets [from, to): the rollup's part of one archive file. */
export function rangeSql(database: string, rollup: RollupSpec, partition: number, from: number, to: number): string {
  return `SELECT * FROM ${quoteIdent(database)}.main.${storedTable(rollup.name)}
    WHERE "_partition" = ${Math.trunc(partition)} AND "_first" >= ${Math.trunc(from)} AND "_last" < ${Math.trunc(to)}
    ORDER BY "_time"`;
}

/** Rows a rollup has taken in, and rows it keeps for them. */
export interface RollupStats {
  readonly name: string;
  readonly rowsIn: number;
  readonly rowsKept: number;
}

/** Counted over `from`: the stored table, or both tiers (tieredRollupSql's inner union). */
export async function rollupStats(c: DuckDBConnection, rollup: RollupSpec, from?: string): Promise<RollupStats> {
  const reader = await c.runAndReadAll(
    `SELECT coalesce(sum("_rows"), 0), count(*) FROM ${from ?? storedTable(rollup.name)}`,
  );
  const [rowsIn, rowsKept] = reader.getRowsJS()[0] ?? [0, 0];
  return { name: rollup.name, rowsIn: Number(rowsIn), rowsKept: Number(rowsKept) };
}
