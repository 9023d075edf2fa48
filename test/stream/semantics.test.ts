import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { duckOutcome, type Outcome, pipelineOutcome, ruleOutcome } from "./expression-outcomes.js";

/**
 * The rows of the expression-semantics table (docs/stream-processing.md, docs/cep.md), each run as
 * a rule's `where`, as a pipeline's WHERE and in real DuckDB. `duckdb` is the same condition with
 * the event's values written as DuckDB values (a JSON number is a DOUBLE, a JSON string a string
 * literal); `deviation` names a row where Runnel deliberately answers otherwise, and the test checks
 * DuckDB really answers `duckdbSays` there, so the documented difference cannot go stale.
 */
interface Row {
  readonly where: string;
  readonly event?: Readonly<Record<string, unknown>>;
  readonly outcome: Outcome;
  readonly duckdb: string;
  readonly deviation?: { readonly duckdbSays: Outcome | "UNBOUND"; readonly why: string };
}

const ROWS: readonly Row[] = [
  // A string meeting a number is cast to DOUBLE, in every comparison.
  { where: "'5' = 5", outcome: "TRUE", duckdb: "'5' = 5" },
  { where: "s = n", event: { s: "5", n: 5 }, outcome: "TRUE", duckdb: "'5' = 5::DOUBLE" },
  { where: "s > 9", event: { s: "10" }, outcome: "TRUE", duckdb: "'10' > 9" },
  { where: "s = n", event: { s: " 1_000 ", n: 1000 }, outcome: "TRUE", duckdb: "' 1_000 ' = 1000::DOUBLE" },
  { where: "s < 3", event: { s: "abc" }, outcome: "ERROR", duckdb: "'abc' < 3" },
  { where: "s = n", event: { s: "abc", n: 3 }, outcome: "ERROR", duckdb: "'abc' = 3::DOUBLE" },
  // Two strings compare as text (by code point), whatever they hold.
  { where: "s > '9'", event: { s: "10" }, outcome: "FALSE", duckdb: "'10' > '9'" },
  { where: "s < 'a'", event: { s: "Z" }, outcome: "TRUE", duckdb: "'Z' < 'a'" },
  // Booleans compare as booleans; a string meeting one is cast to BOOLEAN; a number meeting one counts it 1 or 0.
  { where: "b = TRUE", event: { b: true }, outcome: "TRUE", duckdb: "true = true" },
  { where: "FALSE < b", event: { b: true }, outcome: "TRUE", duckdb: "false < true" },
  { where: "b = 'yes'", event: { b: true }, outcome: "TRUE", duckdb: "true = 'yes'" },
  { where: "b = 'abc'", event: { b: true }, outcome: "ERROR", duckdb: "true = 'abc'" },
  { where: "b = n", event: { b: true, n: 1 }, outcome: "TRUE", duckdb: "true = 1::DOUBLE" },
  { where: "b = n", event: { b: true, n: 2 }, outcome: "FALSE", duckdb: "true = 2::DOUBLE" },
  // NULL (or a missing field) makes NULL, before any cast; three-valued AND, OR, NOT.
  { where: "x = 1", event: {}, outcome: "NULL", duckdb: "NULL = 1" },
  { where: "s = x", event: { s: "abc" }, outcome: "NULL", duckdb: "'abc' = NULL" },
  { where: "x = 1 AND FALSE", event: {}, outcome: "FALSE", duckdb: "NULL = 1 AND false" },
  { where: "x = 1 OR TRUE", event: {}, outcome: "TRUE", duckdb: "NULL = 1 OR true" },
  { where: "NOT (x = 1)", event: {}, outcome: "NULL", duckdb: "NOT (NULL = 1)" },
  { where: "x IS NULL", event: {}, outcome: "TRUE", duckdb: "NULL IS NULL" },
  { where: "n IN (1, NULL)", event: { n: 2 }, outcome: "NULL", duckdb: "2::DOUBLE IN (1, NULL)" },
  { where: "n NOT IN (1, NULL)", event: { n: 2 }, outcome: "NULL", duckdb: "2::DOUBLE NOT IN (1, NULL)" },
  // A value where a condition is wanted is cast to BOOLEAN.
  { where: "n", event: { n: 5 }, outcome: "TRUE", duckdb: "CAST(5::DOUBLE AS BOOLEAN)" },
  { where: "n", event: { n: 0 }, outcome: "FALSE", duckdb: "CAST(0::DOUBLE AS BOOLEAN)" },
  { where: "NOT s", event: { s: "yes" }, outcome: "FALSE", duckdb: "NOT 'yes'" },
  { where: "s AND TRUE", event: { s: "abc" }, outcome: "ERROR", duckdb: "'abc' AND true" },
  // Division: / is DOUBLE division (x/0 is ±Infinity, 0/0 NaN, NaN equals itself and sorts last).
  { where: "n / 0 > 1000", event: { n: 1 }, outcome: "TRUE", duckdb: "1::DOUBLE / 0 > 1000" },
  { where: "n / 0 = n / 0", event: { n: 0 }, outcome: "TRUE", duckdb: "0::DOUBLE / 0 = 0::DOUBLE / 0" },
  { where: "n / 0 > 1e308", event: { n: 0 }, outcome: "TRUE", duckdb: "0::DOUBLE / 0 > 1e308" },
  { where: "n % 0 IS NULL", event: { n: 5 }, outcome: "TRUE", duckdb: "5 % 0 IS NULL" },
  {
    where: "n % 0 IS NULL",
    event: { n: 5.5 },
    outcome: "TRUE",
    duckdb: "5.5::DOUBLE % 0 IS NULL",
    deviation: {
      duckdbSays: "FALSE",
      why: "DuckDB's DOUBLE % 0 is NaN; Runnel keeps the integer rule (NULL) for every number",
    },
  },
  // Arithmetic takes numbers and strings that cast to DOUBLE; a boolean or other string is an error.
  {
    where: "s + 1 = 6",
    event: { s: "5" },
    outcome: "TRUE",
    duckdb: "'5' + 1 = 6",
    deviation: { duckdbSays: "UNBOUND", why: "DuckDB wants an explicit cast for VARCHAR + INTEGER" },
  },
  { where: "s + 1 = 6", event: { s: "abc" }, outcome: "ERROR", duckdb: "CAST('abc' AS DOUBLE) + 1 = 6" },
  {
    where: "b + 1 = 2",
    event: { b: true },
    outcome: "ERROR",
    duckdb: "true + 1 = 2",
    deviation: {
      duckdbSays: "UNBOUND",
      why: "DuckDB refuses the query before it runs; Runnel learns types per event, so it fails the event",
    },
  },
  // Rows where DuckDB's static types decide, which JSON fields do not have.
  {
    where: "s = 5",
    event: { s: "5.4" },
    outcome: "FALSE",
    duckdb: "'5.4' = 5",
    deviation: { duckdbSays: "TRUE", why: "DuckDB casts the string to the INTEGER literal's type and rounds 5.4 to 5" },
  },
  {
    where: "s IN ('abc', 1)",
    event: { s: "abc" },
    outcome: "TRUE",
    duckdb: "'abc' IN ('abc', 1)",
    deviation: {
      duckdbSays: "ERROR",
      why: "DuckDB casts the whole list to one type first; Runnel compares item by item up to the first match",
    },
  },
  {
    where: "n || 'x' = '5x'",
    event: { n: 5 },
    outcome: "TRUE",
    duckdb: "5::DOUBLE || 'x' = '5x'",
    deviation: { duckdbSays: "FALSE", why: "DuckDB prints a DOUBLE 5 as 5.0; a JSON number that is whole prints as 5" },
  },
  {
    where: "s = 16",
    event: { s: "0x10" },
    outcome: "ERROR",
    duckdb: "'0x10' = 16",
    deviation: {
      duckdbSays: "TRUE",
      why: "DuckDB casts the string to INTEGER, which reads hexadecimal; DOUBLE does not",
    },
  },
  {
    where: "s < 3",
    event: { s: "5" },
    outcome: "FALSE",
    duckdb: "'5'::VARCHAR < 3",
    deviation: { duckdbSays: "UNBOUND", why: "DuckDB refuses < between a VARCHAR column and a number before running" },
  },
  {
    where: "s = x + 1",
    event: { s: "abc" },
    outcome: "NULL",
    duckdb: "'abc' = NULL + 1",
    deviation: {
      duckdbSays: "ERROR",
      why: "NULL + 1 is an INTEGER NULL in DuckDB, which casts 'abc' before it sees the NULL",
    },
  },
  // How a number prints as text follows its static type: a DOUBLE (5.0, x / 2) prints as 5.0.
  { where: "n / 2 || '' = '2.0'", event: { n: 4 }, outcome: "TRUE", duckdb: "4::DOUBLE / 2 || '' = '2.0'" },
  { where: "5.0 || '' = '5.0'", outcome: "TRUE", duckdb: "5.0 || '' = '5.0'" },
  { where: "n LIKE '2.%'", event: { n: 2.5 }, outcome: "TRUE", duckdb: "CAST(2.5::DOUBLE AS VARCHAR) LIKE '2.%'" },
  // Nested JSON values compare as JSON text with strings, and not at all with numbers.
  { where: "o = 1", event: { o: { x: 1 } }, outcome: "ERROR", duckdb: "" },
  { where: "o = '{\"x\":1}'", event: { o: { x: 1 } }, outcome: "TRUE", duckdb: "" },
];

describe("the expression semantics table, row by row, in a rule, a pipeline and DuckDB", () => {
  let instance: DuckDBInstance;
  let conn: DuckDBConnection;
  before(async () => {
    instance = await DuckDBInstance.create(":memory:");
    conn = await instance.connect();
  });
  after(() => {
    conn.closeSync();
    instance.closeSync();
  });

  for (const row of ROWS) {
    it(`${row.where} over ${JSON.stringify(row.event ?? {})} is ${row.outcome}`, async () => {
      const event = row.event ?? {};
      assert.equal(pipelineOutcome(row.where)(event), row.outcome, "pipeline");
      assert.equal(ruleOutcome(row.where)(event), row.outcome, "rule");
      if (row.duckdb === "") return;
      const duck = await duckOutcome(conn, row.duckdb);
      assert.equal(duck, row.deviation?.duckdbSays ?? row.outcome, `DuckDB: ${row.duckdb}`);
    });
  }
});
