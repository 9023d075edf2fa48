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
  const gen = (e: Expr): string => {
    switch (e.k) {
      case "lit":
        return e.v === null ? "null" : JSON.stringify(e.v);
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
        return `(${t} = ${gen(e.e)}, ${t} === null ? null : !${t})`;
      }
      case "bin": {
        if (e.op === "and" || e.op === "or") {
          const a = `t${temps++}`;
          const b = `t${temps++}`;
          const stop = e.op === "and" ? "false" : "true";
          return `(${a} = ${gen(e.l)}, ${a} === ${stop} ? ${stop} : (${b} = ${gen(e.r)}, ${b} === ${stop} ? ${stop} : (${a} === null || ${b} === null ? null : ${e.op === "and" ? "true" : "false"})))`;
        }
        const fn = CMP[e.op];
        if (fn !== undefined) return `H.${fn}(${gen(e.l)}, ${gen(e.r)})`;
        if (e.op === "||") return `H.concat(${gen(e.l)}, ${gen(e.r)})`;
        return `H.arith(${q(e.op)}, ${gen(e.l)}, ${gen(e.r)})`;
      }
      case "isnull":
        return `(${gen(e.e)} ${e.neg ? "!==" : "==="} null)`;
      case "in": {
        const x = `t${temps++}`;
        const r = `t${temps++}`;
        const items = e.list.map(
          (item) => `(${r} = H.eq(${x}, ${gen(item)})) === true ? true : ${r} === null ? (n${x} = true, false) : false`,
        );
        // SQL: x IN (…) is true on a hit, null if no hit but some comparison was null, else false.
        const body = `(${x} = ${gen(e.e)}, n${x} = false, (${items.map((s) => `(${s})`).join(" || ")}) ? true : n${x} ? null : false)`;
        temps++;
        return e.neg ? `((${r} = ${body}) === null ? null : !${r})` : body;
      }
      case "between": {
        const x = `t${temps++}`;
        const r = `t${temps++}`;
        const inner = `(${x} = ${gen(e.e)}, ${r} = [H.ge(${x}, ${gen(e.lo)}), H.le(${x}, ${gen(e.hi)})], ${r}[0] === false || ${r}[1] === false ? false : ${r}[0] === null || ${r}[1] === null ? null : true)`;
        return e.neg ? `((${r} = ${inner}) === null ? null : !${r})` : inner;
      }
      case "like": {
        const r = `t${temps++}`;
        const inner = `H.like(${gen(e.e)}, ${gen(e.pattern)})`;
        return e.neg ? `((${r} = ${inner}) === null ? null : !${r})` : inner;
      }
      case "call":
        return `H.call(${q(e.fn)}, [${e.args.map(gen).join(", ")}])`;
    }
  };
  const body = gen(tree);
  const decl = temps === 0 ? "" : `let ${Array.from({ length: temps }, (_, i) => `t${i}, nt${i}`).join(", ")};\n`;
  const source = `"use strict";\nreturn function where(e, c) {\n${decl}try { return (${body}) === true; } catch { return false; }\n};`;
  const factory = new Function("H", source) as (h: typeof WHERE_RUNTIME) => Condition;
  return { condition: factory(WHERE_RUNTIME), steps, source };
}
