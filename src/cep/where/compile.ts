/**
 * Compiles a `where` expression ONCE into a JavaScript function (via `new Function`), so matching
 * an event runs straight-line code instead of walking a tree. Unknown step names are refused here;
 * reading the partial match is lazy, so a condition that never names a step costs nothing extra.
 *
 * @example
 * const c = compileWhere("event_type = 'transaction' AND amount > 500", ["large"], "large");
 * c.condition({ event_type: "transaction", amount: 900 }, EMPTY_MATCH); // true
 */
import { RunnelError } from "../../core/errors.js";
import { functionSpec } from "../../stream/sql/functions.js";
import { arithmeticType, isArithmeticOp } from "../../stream/sql/semantics.js";
import type { SqlType } from "../../stream/sql/values.js";
import type { Condition } from "../nfa/state.js";
import { type Expr, parseWhere } from "./parser.js";
import { WHERE_RUNTIME } from "./runtime.js";

export interface CompiledWhere {
  readonly condition: Condition;
  /** Steps the expression reads (through `<step>.x` or aggregates). */
  readonly steps: ReadonlySet<string>;
  /** The generated JavaScript, for tests and debugging. */
  readonly source: string;
}

const CMP: Record<string, string> = { "=": "eq", "<>": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge" };

/**
 * Static type of a `where` expression, as the pipeline compiler types the same SQL: BOOLEAN where
 * the value already is a condition, and the number types that decide how a number prints as text
 * (`5.0 || ''` is '5.0', `5 || ''` is '5').
 */
function typeOf(e: Expr): SqlType {
  switch (e.k) {
    case "lit":
      return typeof e.v === "string" ? "VARCHAR" : typeof e.v === "boolean" ? "BOOLEAN" : "ANY";
    case "num":
      return e.type;
    case "field":
    case "ref":
      return "ANY";
    case "agg":
      return e.fn === "count" ? "BIGINT" : "ANY";
    case "neg":
      return typeOf(e.e);
    case "not":
    case "isnull":
    case "in":
    case "between":
    case "like":
      return "BOOLEAN";
    case "bin":
      if (e.op === "and" || e.op === "or" || CMP[e.op] !== undefined) return "BOOLEAN";
      if (e.op === "||") return "VARCHAR";
      return isArithmeticOp(e.op) ? arithmeticType(e.op, typeOf(e.l), typeOf(e.r)) : "ANY";
    case "call":
      return functionSpec(e.fn).type(e.args.map((a) => ({ name: "", type: typeOf(a), eval: () => null })));
  }
}

export function compileWhere(src: string, stepNames: readonly string[], self: string): CompiledWhere {
  if (typeof src !== "string" || src.trim() === "") {
    throw new RunnelError("invalid_input", `step "${self}": where must be a non-empty SQL expression`);
  }
  let tree: Expr;
  try {
    tree = parseWhere(src);
  } catch (e) {
    if (e instanceof RunnelError) throw new RunnelError("invalid_input", `step "${self}": ${e.message}`);
    throw e;
  }
  const known = new Set(stepNames);
  const steps = new Set<string>();
  let temps = 0;
  const q = (s: string): string => JSON.stringify(s);
  const stepRef = (step: string): string => {
    if (!known.has(step)) {
      throw new RunnelError("invalid_input", `step "${self}": where refers to unknown step "${step}"`);
    }
    steps.add(step);
    return `c.events(${q(step)})`;
  };
  let likes = 0;
  const gen = (e: Expr): string => {
    switch (e.k) {
      case "lit":
        return e.v === null ? "null" : JSON.stringify(e.v);
      case "num":
        return String(e.v);
      case "field":
        return `H.v(e[${q(e.name)}])`;
      case "ref":
        if (e.step === "first") return `H.field(c.first(), ${q(e.field)})`;
        if (e.step === "prev") return `H.field(c.prev(), ${q(e.field)})`;
        return `H.last(${stepRef(e.step)}, ${q(e.field)})`;
      case "agg":
        if (e.fn === "count") return `H.count(${stepRef(e.step)}, ${e.field === null ? "null" : q(e.field)})`;
        return `H.${e.fn}(${stepRef(e.step)}, ${q(e.field as string)})`;
      case "neg":
        return `H.negate(${gen(e.e)})`;
      case "not": {
        const t = `t${temps++}`;
        return `(${t} = ${cond(e.e)}, ${t} === null ? null : !${t})`;
      }
      case "bin": {
        if (e.op === "and" || e.op === "or") {
          const a = `t${temps++}`;
          const b = `t${temps++}`;
          const stop = e.op === "and" ? "false" : "true";
          return `(${a} = ${cond(e.l)}, ${a} === ${stop} ? ${stop} : (${b} = ${cond(e.r)}, ${b} === ${stop} ? ${stop} : (${a} === null || ${b} === null ? null : ${e.op === "and" ? "true" : "false"})))`;
        }
        const fn = CMP[e.op];
        if (fn !== undefined) return `H.${fn}(${gen(e.l)}, ${gen(e.r)})`;
        if (e.op === "||") return `H.concat(${gen(e.l)}, ${gen(e.r)}, ${q(typeOf(e.l))}, ${q(typeOf(e.r))})`;
        return `H.arith[${q(e.op)}](${gen(e.l)}, ${gen(e.r)})`;
      }
      case "isnull":
        return `(${gen(e.e)} ${e.neg ? "!==" : "==="} null)`;
      case "in": {
        const x = `t${temps++}`;
        const r = `t${temps++}`;
        const items = e.list.map(
          (item) => `(${r} = H.eq(${x}, ${gen(item)})) === true ? true : ${r} === null ? (n${x} = true, false) : false`,
        );
        // SQL: x IN (a, b) is x = a OR x = b: TRUE at the first hit, else NULL if a comparison was NULL, else FALSE.
        const body = `(${x} = ${gen(e.e)}, n${x} = false, (${items.map((s) => `(${s})`).join(" || ")}) ? true : n${x} ? null : false)`;
        temps++;
        return e.neg ? `((${r} = ${body}) === null ? null : !${r})` : body;
      }
      case "between": {
        const r = `t${temps++}`;
        const inner = `H.between(${gen(e.e)}, ${gen(e.lo)}, ${gen(e.hi)})`;
        return e.neg ? `((${r} = ${inner}) === null ? null : !${r})` : inner;
      }
      case "like": {
        const r = `t${temps++}`;
        const inner = `L${likes++}(${gen(e.e)}, ${gen(e.pattern)}, ${q(typeOf(e.e))})`;
        return e.neg ? `((${r} = ${inner}) === null ? null : !${r})` : inner;
      }
      case "call": {
        if (e.fn === "coalesce") {
          // Lazy, as SQL's COALESCE: an argument after the first non-NULL one is not evaluated.
          const t = `t${temps++}`;
          const lastArg = e.args[e.args.length - 1];
          return e.args
            .slice(0, -1)
            .reduceRight(
              (rest, a) => `(${t} = ${gen(a)}, ${t} !== null ? ${t} : ${rest})`,
              lastArg === undefined ? "null" : gen(lastArg),
            );
        }
        return `H.f.${e.fn}(${e.args.map(gen).join(", ")})`;
      }
    }
  };
  /** A value where SQL wants a condition (AND, OR, NOT, the whole `where`): cast to BOOLEAN unless it is one. */
  const cond = (e: Expr): string => (typeOf(e) === "BOOLEAN" ? gen(e) : `H.truth(${gen(e)})`);
  const body = cond(tree);
  const decl = temps === 0 ? "" : `let ${Array.from({ length: temps }, (_, i) => `t${i}, nt${i}`).join(", ")};\n`;
  // One LIKE matcher per LIKE in the expression, so each keeps its own pattern's regular expression.
  const matchers = Array.from({ length: likes }, (_, i) => `const L${i} = H.likeMatcher(false);\n`).join("");
  // An evaluation error (a string that does not cast, an operator on the wrong type) means the event does not match.
  const source = `"use strict";\n${matchers}return function where(e, c) {\n${decl}try { return (${body}) === true; } catch { return false; }\n};`;
  const factory = new Function("H", source) as (h: typeof WHERE_RUNTIME) => Condition;
  return { condition: factory(WHERE_RUNTIME), steps, source };
}
