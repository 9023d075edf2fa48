/**
 * The differential harness for distributed plans: random rows of two streams (`clicks`, `orders`),
 * one DuckDB holding all of them and up to four holding disjoint shares by user_id, as partitions
 * spread over instances. A query's answer over all rows must equal its plan's: partials on each
 * share, serialized as the API serializes results, loaded into `partials`, merged.
 */
import assert from "node:assert/strict";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import fc from "fast-check";
import { mergePartials, parametersFor } from "../../../src/analytics/distributed/partials.js";
import type { DistributedPlan } from "../../../src/analytics/distributed/plan.js";
import { type QueryLimits, runSelect } from "../../../src/analytics/duckdb/query-runner.js";
import type { QueryResult } from "../../../src/analytics/types.js";

const LIMITS: QueryLimits = { maxRows: 100_000, maxBytes: 64 << 20, timeoutMs: 30_000 };
const MAX_SHARES = 4;

export interface Click {
  user: number;
  amount: number | null;
  qty: number;
  price: number;
  cents: number;
  country: "de" | "fr" | "nl" | null;
  ok: boolean | null;
  minute: number;
}

export interface Order {
  user: number;
  total: number;
  status: string;
}

export interface Rows {
  readonly clicks: readonly Click[];
  readonly orders: readonly Order[];
  /** How many instances the rows are spread over, 1 to 4. */
  readonly shares: number;
}

const click = fc.record<Click>({
  user: fc.integer({ min: 0, max: 9 }),
  amount: fc.option(fc.integer({ min: -10_000, max: 10_000 }), { freq: 6 }),
  qty: fc.integer({ min: 0, max: 255 }),
  // Quarters add up exactly in a double, whatever the order: sums and averages compare exactly.
  price: fc.integer({ min: -400, max: 400 }).map((q) => q / 4),
  cents: fc.integer({ min: -1_000_000, max: 1_000_000 }),
  country: fc.constantFrom("de", "fr", "nl", null),
  ok: fc.constantFrom(true, false, null),
  minute: fc.integer({ min: 0, max: 24 * 60 - 1 }),
});

const order = fc.record<Order>({
  user: fc.integer({ min: 0, max: 11 }),
  total: fc.integer({ min: 1, max: 500 }),
  status: fc.constantFrom("new", "paid", "sent"),
});

export const rows: fc.Arbitrary<Rows> = fc.record({
  clicks: fc.array(click, { maxLength: 60 }),
  orders: fc.array(order, { maxLength: 20 }),
  shares: fc.integer({ min: 1, max: MAX_SHARES }),
});

const DAY = Date.parse("2026-12-06T12:00:00Z");

/** The share (instance) a user's rows live on, like a partition's owner. */
function shareOf(user: string, shares: number): number {
  let h = 0;
  for (const ch of user) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h % shares;
}

async function load(connection: DuckDBConnection, data: Rows, keep: (user: string) => boolean): Promise<void> {
  await connection.run(`CREATE OR REPLACE TABLE clicks (user_id VARCHAR, seq INTEGER, _time TIMESTAMPTZ, amount BIGINT,
    qty INTEGER, price DOUBLE, dec DECIMAL(18, 2), country VARCHAR, ok BOOLEAN, meta JSON)`);
  await connection.run("CREATE OR REPLACE TABLE orders (user_id VARCHAR, seq INTEGER, total BIGINT, status VARCHAR)");
  const c = data.clicks
    .map((r, seq) => ({ ...r, seq, user_id: `u${r.user}` }))
    .filter((r) => keep(r.user_id))
    .map((r) => [
      r.user_id,
      r.seq,
      new Date(DAY + r.minute * 60_000).toISOString(),
      r.amount,
      r.qty,
      r.price,
      r.cents / 100,
      r.country,
      r.ok,
      r.ok === null ? null : { k: r.country, n: r.qty, tags: r.ok ? ["a", "b"] : [] },
    ]);
  const o = data.orders
    .map((r, seq) => ({ ...r, seq, user_id: `u${r.user}` }))
    .filter((r) => keep(r.user_id))
    .map((r) => [r.user_id, r.seq, r.total, r.status]);
  if (c.length > 0) {
    await connection.run(
      `INSERT INTO clicks SELECT r->>0, CAST(r->>1 AS INTEGER), CAST(r->>2 AS TIMESTAMPTZ), CAST(r->>3 AS BIGINT),
        CAST(r->>4 AS INTEGER), CAST(r->>5 AS DOUBLE), CAST(r->>6 AS DECIMAL(18, 2)), r->>7, CAST(r->>8 AS BOOLEAN),
        CASE WHEN json_type(r->9) = 'NULL' THEN NULL ELSE r->9 END
       FROM (SELECT unnest(CAST(json($1) AS JSON[])) AS r)`,
      [JSON.stringify(c)],
    );
  }
  if (o.length > 0) {
    await connection.run(
      `INSERT INTO orders SELECT r->>0, CAST(r->>1 AS INTEGER), CAST(r->>2 AS BIGINT), r->>3
       FROM (SELECT unnest(CAST(json($1) AS JSON[])) AS r)`,
      [JSON.stringify(o)],
    );
  }
}

/** Rows as comparable text, sorted unless the order is part of the answer. */
function rowsOf(result: QueryResult, ordered: boolean): string[] {
  const text = result.rows.map((r) => JSON.stringify(r));
  return ordered ? text : text.sort();
}

export class Shares {
  private readonly databases: DuckDBInstance[] = [];
  private readonly connections: DuckDBConnection[] = [];
  private shares = 0;

  async open(): Promise<void> {
    for (let i = 0; i < MAX_SHARES + 2; i++) {
      const db = await DuckDBInstance.create(":memory:", { threads: "1" });
      this.databases.push(db);
      this.connections.push(await db.connect());
    }
  }

  close(): void {
    for (const c of this.connections) c.closeSync();
    for (const d of this.databases) d.closeSync();
  }

  /** Connection 0 holds every row, 1 merges, 2… hold the shares. */
  async load(data: Rows): Promise<void> {
    this.shares = data.shares;
    await load(this.connections[0]!, data, () => true);
    for (let s = 0; s < data.shares; s++) {
      await load(this.connections[s + 2]!, data, (u) => shareOf(u, data.shares) === s);
    }
  }

  /** `sql`'s answer over all rows, and `plan`'s from the shares. */
  async answers(
    sql: string,
    plan: DistributedPlan,
    params: readonly unknown[],
  ): Promise<{ expected: QueryResult; actual: QueryResult }> {
    const [whole, merger] = this.connections as [DuckDBConnection, DuckDBConnection];
    const expected = await runSelect(whole, sql, params, LIMITS);
    const partials: QueryResult[] = [];
    for (let s = 0; s < this.shares; s++) {
      const share = this.connections[s + 2]!;
      partials.push(await runSelect(share, plan.partialSql, parametersFor(plan.partialParams, params), LIMITS));
    }
    return { expected, actual: await mergePartials(merger, plan, partials, params, LIMITS) };
  }

  /**
   * Asserts that `plan` answers `sql` as one instance does: equal columns, and equal rows (in order
   * when `ordered`; only as many when `limited` without a total order, where any rows may be kept).
   */
  async assertSame(
    sql: string,
    plan: DistributedPlan,
    params: readonly unknown[],
    ordered: boolean,
    limited: boolean,
  ): Promise<void> {
    const { expected, actual } = await this.answers(sql, plan, params);
    const context = `${sql}\n  partial: ${plan.partialSql}\n  merge: ${plan.mergeSql}\n  shares: ${this.shares}`;
    assert.deepEqual(actual.columns, expected.columns, context);
    if (limited && !ordered) assert.equal(actual.rows.length, expected.rows.length, context);
    else assert.deepEqual(rowsOf(actual, ordered), rowsOf(expected, ordered), context);
  }
}
