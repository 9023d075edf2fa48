/**
 * Which aggregates can be split into per-instance partials and a merge that gives exactly the
 * one-instance answer, value and type: count → sum of counts (cast back to BIGINT), sum → sum of
 * sums, min/max → min/max, avg → sum of sums / sum of counts, and the associative boolean and bit
 * aggregates. Every other aggregate (median, quantiles, string_agg, approximations, …) needs all of
 * a group's rows in one place, which only a GROUP BY on the partition key gives (./plan.ts).
 */
import { RunnelError } from "../../core/errors.js";
import { call, cast, columnRef, integer, type Node, text, varchar } from "./tree.js";

/** DuckDB's aggregate functions among the ones a query may call (src/analytics/sql/functions.ts). */
export const AGGREGATES: ReadonlySet<string> = new Set(
  `any_value approx_count_distinct approx_quantile approx_top_k arbitrary arg_max arg_max_null arg_min
  arg_min_null argmax argmin array_agg avg bit_and bit_or bit_xor bool_and bool_or corr count count_if
  count_star covar_pop covar_samp entropy favg first fsum histogram json_group_array json_group_object
  kurtosis kurtosis_pop last list mad max max_by mean median min min_by mode product quantile
  quantile_cont quantile_disc regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx
  regr_sxy regr_syy reservoir_quantile sem skewness stddev stddev_pop stddev_samp string_agg sum
  sum_no_overflow sumkahan var_pop var_samp variance`
    .split(/\s+/)
    .filter((f) => f !== ""),
);

export function isAggregate(node: Node): boolean {
  return node.class === "FUNCTION" && AGGREGATES.has(text(node.function_name).toLowerCase());
}

export function notDistributable(construct: string, why: string): RunnelError {
  return new RunnelError("query_not_distributable", `${construct} cannot be merged exactly across instances: ${why}`, {
    details: { construct },
  });
}

/** Aggregates whose merge is the same function over the partial values. */
const SELF_MERGING = new Set(["min", "max", "bool_and", "bool_or", "bit_and", "bit_or"]);

const NOT_DETERMINISTIC = new Set(["any_value", "arbitrary", "first", "last"]);

const GROUP_BY_KEY = "group by the partition key so each group is whole on one instance";

/**
 * The merge expression for aggregate call `fn`, registering through `partial` the aggregate(s)
 * each instance computes (`partial` returns the column name they get in `partials`).
 */
export interface PartitionKey {
  readonly name: string;
  /** Whether a column reference reads the partition key (values on one instance only). */
  isKey(ref: Node): boolean;
}

export function mergeAggregate(fn: Node, key: PartitionKey, partial: (aggregate: Node) => string): Node {
  const name = text(fn.function_name).toLowerCase();
  const children = Array.isArray(fn.children) ? (fn.children as Node[]) : [];
  const shown = `${name}()`;
  if (NOT_DETERMINISTIC.has(name)) {
    throw notDistributable(shown, "it picks an arbitrary row, which differs between instances");
  }
  if (name === "approx_count_distinct") {
    throw notDistributable(
      shown,
      `its per-instance estimates do not add up to the estimate over all rows; use count(DISTINCT ${key.name}) or ${GROUP_BY_KEY}`,
    );
  }
  const sumOf = (column: string): Node => call("sum", [columnRef(column)]);
  if (name === "count" || name === "count_star") {
    if (fn.distinct === true) {
      // Partition key values are disjoint across instances: the distinct counts add up.
      if (children.length !== 1 || !key.isKey(children[0]!)) {
        throw notDistributable(
          `count(DISTINCT …)`,
          `a value may be counted on several instances; only count(DISTINCT ${key.name}) is merged, otherwise ${GROUP_BY_KEY}`,
        );
      }
    }
    return cast(sumOf(partial(fn)), "BIGINT");
  }
  if (fn.distinct === true && !SELF_MERGING.has(name)) {
    throw notDistributable(`${name}(DISTINCT …)`, `a value may occur on several instances; ${GROUP_BY_KEY}`);
  }
  if (SELF_MERGING.has(name) && children.length === 1) return call(name, [columnRef(partial(fn))]);
  // sum(HUGEINT) stays HUGEINT, sum(DECIMAL(38, s)) stays DECIMAL(38, s), sum(DOUBLE) DOUBLE: the
  // types a sum over all rows has. count_if is HUGEINT in DuckDB, so its sum is too.
  if ((name === "sum" || name === "count_if" || name === "bit_xor") && children.length === 1) {
    return name === "bit_xor" ? call(name, [columnRef(partial(fn))]) : sumOf(partial(fn));
  }
  if ((name === "avg" || name === "mean") && children.length === 1) {
    const sum = partial({ ...fn, function_name: "sum" });
    const count = partial({ ...fn, function_name: "count" });
    return averageOf(sumOf(sum), sumOf(count));
  }
  throw notDistributable(
    shown,
    `its partial results cannot be combined exactly (count, sum, min, max, avg, count_if, bool_and, bool_or, bit_and, bit_or and bit_xor are); ${GROUP_BY_KEY}`,
  );
}

const operator = (name: string, children: Node[]): Node => call(name, children, { isOperator: true });

/**
 * `sum / count` as DuckDB's avg computes it. Over a DECIMAL DuckDB divides the unscaled sum by
 * count × 10^scale: dividing the DOUBLE of the sum (already rounded) by the count would round twice
 * and differ in the last binary digit about one time in five. The scale is only known from the
 * partials' types, so the merge reads it from the sum's text (`-5023.40` → -502340 / (count × 100));
 * `typeof` is a constant, so only one branch is bound to run. An empty share gives NULL / 0 rows;
 * DuckDB's division by zero is NULL, as avg over no rows.
 */
function averageOf(sum: Node, count: Node): Node {
  const digits = cast(sum, "VARCHAR");
  const unscaled = cast(cast(call("replace", [digits, varchar("."), varchar("")]), "HUGEINT"), "DOUBLE");
  const scale = call("pow", [integer(10), call("length", [call("split_part", [digits, varchar("."), integer(2)])])]);
  const decimal = operator("/", [unscaled, operator("*", [cast(count, "DOUBLE"), scale])]);
  return {
    class: "CASE",
    type: "CASE_EXPR",
    alias: "",
    case_checks: [{ when_expr: operator("~~", [call("typeof", [sum]), varchar("DECIMAL%")]), then_expr: decimal }],
    else_expr: operator("/", [sum, count]),
  };
}
