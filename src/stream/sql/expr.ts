import { RunnelError } from "../../core/errors.js";
import type { StreamEvent } from "../event.js";
import { type AstNode, columnName, exprList, field, functionName, isNode, list, nodeType, text } from "./ast.js";
import type { CompiledExpr } from "./expr-types.js";
import { functionSpec } from "./functions.js";
import { TRY_CAST_MARKER } from "./prepare.js";
import {
  ARITHMETIC,
  arithmeticType,
  between,
  type ComparisonOp,
  concat,
  eq,
  ge,
  gt,
  isArithmeticOp,
  le,
  likeMatcher,
  lt,
  ne,
  negate,
  numberLiteralType,
  truth,
} from "./semantics.js";
import {
  SqlEvalError,
  SqlTimestamp,
  type SqlType,
  toBoolean,
  toDouble,
  toInteger,
  toTimestamp,
  toVarchar,
} from "./values.js";

/** Columns every event has, from the log envelope rather than the JSON body. */
const META_COLUMNS: Readonly<Record<string, CompiledExpr>> = {
  _time: { name: "_time", type: "TIMESTAMPTZ", eval: (r) => new SqlTimestamp(r.timestamp, true) },
  _ingest_time: { name: "_ingest_time", type: "TIMESTAMPTZ", eval: (r) => new SqlTimestamp(r.ingestTime, true) },
  _partition: { name: "_partition", type: "INTEGER", eval: (r) => r.partition },
  _offset: { name: "_offset", type: "BIGINT", eval: (r) => r.offset },
  // The record key is the event's user_id, so it stands in when a derived stream renamed the field.
  user_id: { name: "user_id", type: "ANY", eval: (r) => r.value.user_id ?? r.key },
};

/** Which names a column reference may qualify itself with (the stream and its alias). */
export interface Scope {
  readonly qualifiers: ReadonlySet<string>;
}

const CAST_TYPES: Readonly<Record<string, SqlType>> = {
  DOUBLE: "DOUBLE",
  FLOAT: "DOUBLE",
  FLOAT4: "DOUBLE",
  FLOAT8: "DOUBLE",
  REAL: "DOUBLE",
  "DOUBLE PRECISION": "DOUBLE",
  INTEGER: "INTEGER",
  INT: "INTEGER",
  INT4: "INTEGER",
  BIGINT: "BIGINT",
  INT8: "BIGINT",
  VARCHAR: "VARCHAR",
  TEXT: "VARCHAR",
  STRING: "VARCHAR",
  BOOLEAN: "BOOLEAN",
  BOOL: "BOOLEAN",
  TIMESTAMP: "TIMESTAMP",
  DATETIME: "TIMESTAMP",
  TIMESTAMPTZ: "TIMESTAMPTZ",
  "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
};

function unsupported(message: string): never {
  throw new RunnelError("unsupported_sql", message);
}

function castFn(target: SqlType, sourceType: SqlType): (v: unknown) => unknown {
  switch (target) {
    case "DOUBLE":
      return toDouble;
    case "INTEGER":
    case "BIGINT":
      return (v) => toInteger(v, target);
    case "VARCHAR":
      return (v) => toVarchar(v, sourceType);
    case "BOOLEAN":
      return toBoolean;
    case "TIMESTAMP":
      return (v) => toTimestamp(v, false);
    case "TIMESTAMPTZ":
      return (v) => toTimestamp(v, true);
    case "ANY":
      return (v) => v;
  }
}

function literalName(v: unknown): string {
  if (v === null) return "NULL";
  if (typeof v === "string") return `'${v.replaceAll("'", "''")}'`;
  return String(v);
}

function constant(value: unknown, type: SqlType, name = literalName(value)): CompiledExpr {
  return { name, type, eval: () => value };
}

function numberLiteral(raw: unknown): CompiledExpr {
  const value = typeof raw === "number" ? raw : Number(raw);
  if (!Number.isFinite(value)) unsupported(`numeric literal ${String(raw)} is out of range`);
  return constant(value, numberLiteralType(String(raw), value), String(raw));
}

/** A WHERE or HAVING condition as SQL reads it: its value cast to BOOLEAN (`WHERE amount` keeps non-zero amounts). */
export function condition(e: CompiledExpr): CompiledExpr {
  if (e.type === "BOOLEAN") return e;
  const ev = e.eval;
  return { name: e.name, type: "BOOLEAN", eval: (row) => truth(ev(row)) };
}

export class ExpressionCompiler {
  constructor(private readonly scope: Scope) {}

  compile(node: AstNode): CompiledExpr {
    if (node.ast !== undefined || nodeType(node) === "select") unsupported("subqueries are not supported in pipelines");
    switch (nodeType(node)) {
      case "number":
      case "bigint":
        return numberLiteral(node.value);
      case "single_quote_string":
      case "string":
      case "natural_string":
        return constant(String(node.value).replaceAll("''", "'"), "VARCHAR");
      case "bool":
        return constant(node.value === true, "BOOLEAN");
      case "null":
        return constant(null, "ANY");
      case "column_ref":
        return this.column(node);
      case "unary_expr":
        return this.unaryExpr(node);
      case "binary_expr":
        return this.binaryExpr(node);
      case "cast":
        return this.cast(node, false);
      case "case":
        return this.caseExpr(node);
      case "function":
        return this.call(node);
      case "aggr_func":
        return unsupported(
          `aggregate function ${functionName(node).toLowerCase()}() needs GROUP BY over a window: FROM TUMBLE(stream, _time, INTERVAL '1 minute') … GROUP BY ALL`,
        );
      case "window_func":
        return unsupported("window functions (OVER) are not supported in pipelines");
      case "interval":
        return unsupported("INTERVAL arithmetic is not supported in pipelines yet");
      default:
        return unsupported(`expression of type ${nodeType(node) || "unknown"} is not supported in pipelines`);
    }
  }

  private column(node: AstNode): CompiledExpr {
    const table = text(node, "table");
    if (text(node, "schema") !== undefined || (table !== undefined && !this.scope.qualifiers.has(table))) {
      unsupported(`unknown table ${table ?? ""} in column reference (a pipeline reads one stream)`);
    }
    const name = columnName(node);
    if (name === "*") unsupported("* is only allowed as a select item");
    const meta = META_COLUMNS[name];
    if (meta !== undefined) return meta;
    return { name, type: "ANY", eval: (r) => r.value[name] ?? null };
  }

  private unaryExpr(node: AstNode): CompiledExpr {
    const op = String(node.operator).toUpperCase();
    const operand = this.compile(field(node, "expr") ?? unsupported("missing operand"));
    const ev = operand.eval;
    if (op === "NOT") {
      return {
        name: `(NOT ${operand.name})`,
        type: "BOOLEAN",
        eval: (r) => {
          const t = truth(ev(r));
          return t === null ? null : !t;
        },
      };
    }
    if (op === "-") {
      return {
        name: `-(${operand.name})`,
        type: operand.type === "ANY" ? "ANY" : operand.type,
        eval: (r) => negate(ev(r)),
      };
    }
    if (op === "+") return operand;
    return unsupported(`operator ${op} is not supported in pipelines`);
  }

  private binaryExpr(node: AstNode): CompiledExpr {
    const op = String(node.operator).toUpperCase();
    const leftNode = field(node, "left") ?? unsupported("missing operand");
    const rightNode = field(node, "right") ?? unsupported("missing operand");
    switch (op) {
      case "AND":
      case "OR":
        return this.logical(op, this.compile(leftNode), this.compile(rightNode));
      case "IS":
      case "IS NOT":
        return this.isExpr(op === "IS NOT", leftNode, rightNode);
      case "BETWEEN":
      case "NOT BETWEEN":
        return this.between(op === "NOT BETWEEN", this.compile(leftNode), exprList(rightNode));
      case "IN":
      case "NOT IN":
        return this.inList(op === "NOT IN", this.compile(leftNode), rightNode);
      case "LIKE":
      case "NOT LIKE":
      case "ILIKE":
      case "NOT ILIKE":
        return this.like(op, this.compile(leftNode), rightNode);
      case "=":
      case "<>":
      case "!=":
      case "<":
      case "<=":
      case ">":
      case ">=":
        return this.comparison(op, this.compile(leftNode), this.compile(rightNode));
      case "/":
        if (nodeType(rightNode) === "unary_expr" && rightNode.operator === "~") {
          return this.arithmetic("//", this.compile(leftNode), this.compile(field(rightNode, "expr") ?? rightNode));
        }
        return this.arithmetic(op, this.compile(leftNode), this.compile(rightNode));
      case "+":
      case "-":
      case "*":
      case "%":
        return this.arithmetic(op, this.compile(leftNode), this.compile(rightNode));
      case "||":
        return this.concat(this.compile(leftNode), this.compile(rightNode));
      default:
        return unsupported(`operator ${op} is not supported in pipelines`);
    }
  }

  private logical(op: "AND" | "OR", l: CompiledExpr, r: CompiledExpr): CompiledExpr {
    const el = l.eval;
    const er = r.eval;
    const name = `(${l.name} ${op} ${r.name})`;
    if (op === "AND") {
      return {
        name,
        type: "BOOLEAN",
        eval: (row) => {
          const a = truth(el(row));
          if (a === false) return false;
          const b = truth(er(row));
          if (b === false) return false;
          return a === null || b === null ? null : true;
        },
      };
    }
    return {
      name,
      type: "BOOLEAN",
      eval: (row) => {
        const a = truth(el(row));
        if (a === true) return true;
        const b = truth(er(row));
        if (b === true) return true;
        return a === null || b === null ? null : false;
      },
    };
  }

  private isExpr(negated: boolean, leftNode: AstNode, rightNode: AstNode): CompiledExpr {
    const l = this.compile(leftNode);
    const el = l.eval;
    const rt = nodeType(rightNode);
    if (rt === "null") {
      return {
        name: `(${l.name} IS ${negated ? "NOT " : ""}NULL)`,
        type: "BOOLEAN",
        eval: (r) => (el(r) === null) !== negated,
      };
    }
    if (rt === "bool") {
      const want = rightNode.value === true;
      return {
        name: `(${l.name} IS ${negated ? "NOT " : ""}${want ? "TRUE" : "FALSE"})`,
        type: "BOOLEAN",
        eval: (r) => (truth(el(r)) === want) !== negated,
      };
    }
    return unsupported("IS DISTINCT FROM is not supported in pipelines yet");
  }

  private comparison(op: string, l: CompiledExpr, r: CompiledExpr): CompiledExpr {
    const el = l.eval;
    const er = r.eval;
    const sqlOp = (op === "!=" ? "<>" : op) as ComparisonOp;
    // One closure per operator, so each calls its comparison directly (a call V8 can inline)
    // rather than through a variable that differs between closures.
    const evals: Record<ComparisonOp, (row: StreamEvent) => boolean | null> = {
      "=": (row) => eq(el(row), er(row)),
      "<>": (row) => ne(el(row), er(row)),
      "<": (row) => lt(el(row), er(row)),
      "<=": (row) => le(el(row), er(row)),
      ">": (row) => gt(el(row), er(row)),
      ">=": (row) => ge(el(row), er(row)),
    };
    return { name: `(${l.name} ${sqlOp} ${r.name})`, type: "BOOLEAN", eval: evals[sqlOp] };
  }

  private between(negated: boolean, x: CompiledExpr, bounds: AstNode[]): CompiledExpr {
    const [loNode, hiNode] = bounds;
    if (loNode === undefined || hiNode === undefined) unsupported("BETWEEN needs two bounds");
    const lo = this.compile(loNode);
    const hi = this.compile(hiNode);
    const ex = x.eval;
    const elo = lo.eval;
    const ehi = hi.eval;
    return {
      name: `(${x.name} ${negated ? "NOT " : ""}BETWEEN ${lo.name} AND ${hi.name})`,
      type: "BOOLEAN",
      eval: (row) => {
        const t = between(ex(row), elo(row), ehi(row));
        return t === null ? null : t !== negated;
      },
    };
  }

  private inList(negated: boolean, x: CompiledExpr, rightNode: AstNode): CompiledExpr {
    const items = exprList(rightNode);
    if (items.some((i) => i.ast !== undefined || nodeType(i) === "select")) {
      unsupported("subqueries are not supported in pipelines");
    }
    const compiled = items.map((i) => this.compile(i));
    const evs = compiled.map((c) => c.eval);
    const ex = x.eval;
    return {
      name: `(${x.name} ${negated ? "NOT IN" : "IN"} (${compiled.map((c) => c.name).join(", ")}))`,
      type: "BOOLEAN",
      // SQL: x IN (a, b) is x = a OR x = b, evaluated in order up to the first TRUE.
      eval: (row) => {
        const v = ex(row);
        let sawNull = false;
        for (const ev of evs) {
          const hit = eq(v, ev(row));
          if (hit === true) return !negated;
          if (hit === null) sawNull = true;
        }
        return sawNull ? null : negated;
      },
    };
  }

  private like(op: string, x: CompiledExpr, patternNode: AstNode): CompiledExpr {
    if (patternNode.escape !== undefined) unsupported("LIKE … ESCAPE is not supported in pipelines yet");
    const negated = op.startsWith("NOT");
    const ci = op.endsWith("ILIKE");
    const pattern = this.compile(patternNode);
    const ex = x.eval;
    const ep = pattern.eval;
    const match = likeMatcher(ci);
    const type = x.type;
    return {
      name: `(${x.name} ${op} ${pattern.name})`,
      type: "BOOLEAN",
      eval: (row) => {
        const m = match(ex(row), ep(row), type);
        return m === null ? null : m !== negated;
      },
    };
  }

  private arithmetic(op: string, l: CompiledExpr, r: CompiledExpr): CompiledExpr {
    if (!isArithmeticOp(op)) unsupported(`operator ${op} is not supported in pipelines`);
    const el = l.eval;
    const er = r.eval;
    const apply = ARITHMETIC[op];
    return {
      name: `(${l.name} ${op} ${r.name})`,
      type: arithmeticType(op, l.type, r.type),
      eval: (row) => apply(el(row), er(row)),
    };
  }

  private concat(l: CompiledExpr, r: CompiledExpr): CompiledExpr {
    const el = l.eval;
    const er = r.eval;
    const tl = l.type;
    const tr = r.type;
    return {
      name: `(${l.name} || ${r.name})`,
      type: "VARCHAR",
      eval: (row) => concat(el(row), er(row), tl, tr),
    };
  }

  cast(node: AstNode, tryCast: boolean): CompiledExpr {
    const targets = list(node, "target");
    const rawType = targets.length === 1 ? text(targets[0] as AstNode, "dataType") : undefined;
    const target = rawType === undefined ? undefined : CAST_TYPES[rawType.toUpperCase()];
    if (target === undefined) {
      unsupported(
        `CAST to ${rawType ?? "this type"} is not supported in pipelines (use DOUBLE, INTEGER, BIGINT, VARCHAR, BOOLEAN, TIMESTAMP or TIMESTAMPTZ)`,
      );
    }
    const operand = this.compile(field(node, "expr") ?? unsupported("CAST needs an operand"));
    const ev = operand.eval;
    const conv = castFn(target, operand.type);
    const name = `${tryCast ? "TRY_CAST" : "CAST"}(${operand.name} AS ${rawType?.toUpperCase()})`;
    if (!tryCast) return { name, type: target, eval: (row) => conv(ev(row)) };
    return {
      name,
      type: target,
      eval: (row) => {
        try {
          return conv(ev(row));
        } catch (e) {
          if (e instanceof SqlEvalError) return null;
          throw e;
        }
      },
    };
  }

  private caseExpr(node: AstNode): CompiledExpr {
    const subjectNode = field(node, "expr");
    const subject = subjectNode === undefined ? undefined : this.compile(subjectNode);
    const branches: { cond: (row: StreamEvent) => unknown; result: CompiledExpr }[] = [];
    let otherwise: CompiledExpr = constant(null, "ANY");
    for (const arg of list(node, "args")) {
      const result = this.compile(field(arg, "result") ?? unsupported("CASE branch without result"));
      if (nodeType(arg) === "else") {
        otherwise = result;
        continue;
      }
      const condNode = field(arg, "cond") ?? unsupported("WHEN without condition");
      const cond =
        subject === undefined ? this.compile(condNode) : this.comparison("=", subject, this.compile(condNode));
      const ec = cond.eval;
      branches.push({ cond: (row) => truth(ec(row)) === true, result });
    }
    const evs = branches.map((b) => ({ cond: b.cond, result: b.result.eval }));
    const elseEv = otherwise.eval;
    const types = [...branches.map((b) => b.result.type), otherwise.type].filter((t) => t !== "ANY");
    return {
      name: "CASE",
      type: types.length > 0 && types.every((t) => t === types[0]) ? (types[0] as SqlType) : "ANY",
      eval: (row) => {
        for (const b of evs) if (b.cond(row)) return b.result(row);
        return elseEv(row);
      },
    };
  }

  private call(node: AstNode): CompiledExpr {
    const name = functionName(node);
    const argNodes = exprList(field(node, "args"));
    if (name === TRY_CAST_MARKER) {
      const inner = argNodes[0];
      if (argNodes.length !== 1 || inner === undefined || nodeType(inner) !== "cast") unsupported("malformed TRY_CAST");
      return this.cast(inner, true);
    }
    // The grammar reads `NOT (x)` as a call of a function named NOT.
    if (name.toUpperCase() === "NOT" && argNodes.length === 1) {
      return this.unaryExpr({ type: "unary_expr", operator: "NOT", expr: argNodes[0] });
    }
    if (isNode(node.over) && node.over !== null) unsupported("window functions (OVER) are not supported in pipelines");
    const spec = functionSpec(name);
    if (argNodes.length < spec.minArgs || argNodes.length > spec.maxArgs) {
      unsupported(`wrong number of arguments to ${name.toLowerCase()}(): got ${argNodes.length}`);
    }
    const args = argNodes.map((a) => this.compile(a));
    return {
      name: `${name.toLowerCase()}(${args.map((a) => a.name).join(", ")})`,
      type: spec.type(args),
      eval: spec.build(args),
    };
  }
}
