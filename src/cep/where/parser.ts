/**
 * Parses a `where` expression into a small tree: SQL boolean logic, comparisons, arithmetic,
 * IS [NOT] NULL, [NOT] IN, [NOT] BETWEEN, [NOT] LIKE, a few scalar functions, and references to the
 * partial match: `first.x`, `prev.x`, `<step>.x` and aggregates `sum|avg|min|max|count(<step>.x)`,
 * `count(<step>.*)`.
 */
import { RunnelError } from "../../core/errors.js";
import { numberLiteralType } from "../../stream/sql/semantics.js";
import type { SqlType } from "../../stream/sql/values.js";
import { type Token, tokenize } from "./lexer.js";

export type Expr =
  | { readonly k: "lit"; readonly v: string | boolean | null }
  /** `type` as DuckDB reads the literal: 5 is INTEGER, 5.0 DOUBLE (it decides how the number prints as text). */
  | { readonly k: "num"; readonly v: number; readonly type: SqlType }
  | { readonly k: "field"; readonly name: string }
  | { readonly k: "ref"; readonly step: string; readonly field: string }
  | { readonly k: "agg"; readonly fn: Aggregate; readonly step: string; readonly field: string | null }
  | { readonly k: "neg"; readonly e: Expr }
  | { readonly k: "not"; readonly e: Expr }
  | { readonly k: "bin"; readonly op: string; readonly l: Expr; readonly r: Expr }
  | { readonly k: "isnull"; readonly e: Expr; readonly neg: boolean }
  | { readonly k: "in"; readonly e: Expr; readonly list: readonly Expr[]; readonly neg: boolean }
  | { readonly k: "between"; readonly e: Expr; readonly lo: Expr; readonly hi: Expr; readonly neg: boolean }
  | { readonly k: "like"; readonly e: Expr; readonly pattern: Expr; readonly neg: boolean }
  | { readonly k: "call"; readonly fn: string; readonly args: readonly Expr[] };

export type Aggregate = "sum" | "avg" | "min" | "max" | "count";
const AGGREGATES = new Set(["sum", "avg", "min", "max", "count"]);
export const SCALAR_FUNCTIONS = new Set(["lower", "upper", "abs", "length", "coalesce", "round", "floor", "ceil"]);
const COMPARISONS = new Set(["=", "<>", "!=", "<", "<=", ">", ">="]);
const RESERVED = new Set(["and", "or", "not", "is", "null", "in", "between", "like", "true", "false"]);

export function parseWhere(src: string): Expr {
  const p = new Parser(tokenize(src));
  const e = p.expr();
  p.expectEnd();
  return e;
}

class Parser {
  private i = 0;
  constructor(private readonly toks: Token[]) {}

  private peek(): Token {
    return this.toks[this.i] as Token;
  }
  private next(): Token {
    return this.toks[this.i++] as Token;
  }
  private fail(msg: string, t: Token = this.peek()): never {
    throw new RunnelError("invalid_input", `where: ${msg} at position ${t.pos + 1}`);
  }
  private isKw(word: string, t: Token = this.peek()): boolean {
    return t.kind === "ident" && !t.quoted && t.value.toLowerCase() === word;
  }
  private acceptKw(word: string): boolean {
    if (!this.isKw(word)) return false;
    this.i++;
    return true;
  }
  private isOp(op: string): boolean {
    const t = this.peek();
    return t.kind === "op" && t.value === op;
  }
  private acceptOp(op: string): boolean {
    if (!this.isOp(op)) return false;
    this.i++;
    return true;
  }
  private expectOp(op: string): void {
    if (!this.acceptOp(op)) this.fail(`expected "${op}"`);
  }

  expectEnd(): void {
    if (this.peek().kind !== "end") this.fail("unexpected input");
  }

  expr(): Expr {
    let l = this.and();
    while (this.acceptKw("or")) l = { k: "bin", op: "or", l, r: this.and() };
    return l;
  }
  private and(): Expr {
    let l = this.not();
    while (this.acceptKw("and")) l = { k: "bin", op: "and", l, r: this.not() };
    return l;
  }
  private not(): Expr {
    if (this.acceptKw("not")) return { k: "not", e: this.not() };
    return this.predicate();
  }
  private predicate(): Expr {
    const e = this.additive();
    const t = this.peek();
    if (t.kind === "op" && COMPARISONS.has(t.value)) {
      this.i++;
      return { k: "bin", op: t.value === "!=" ? "<>" : t.value, l: e, r: this.additive() };
    }
    if (this.acceptKw("is")) {
      const neg = this.acceptKw("not");
      if (!this.acceptKw("null")) this.fail("expected NULL");
      return { k: "isnull", e, neg };
    }
    const neg = this.acceptKw("not");
    if (this.acceptKw("in")) {
      this.expectOp("(");
      const list: Expr[] = [this.additive()];
      while (this.acceptOp(",")) list.push(this.additive());
      this.expectOp(")");
      return { k: "in", e, list, neg };
    }
    if (this.acceptKw("between")) {
      const lo = this.additive();
      if (!this.acceptKw("and")) this.fail("expected AND in BETWEEN");
      return { k: "between", e, lo, hi: this.additive(), neg };
    }
    if (this.acceptKw("like")) return { k: "like", e, pattern: this.additive(), neg };
    if (neg) this.fail("expected IN, BETWEEN or LIKE after NOT");
    return e;
  }
  private additive(): Expr {
    let l = this.mult();
    for (;;) {
      const t = this.peek();
      if (t.kind === "op" && (t.value === "+" || t.value === "-" || t.value === "||")) {
        this.i++;
        l = { k: "bin", op: t.value, l, r: this.mult() };
      } else return l;
    }
  }
  private mult(): Expr {
    let l = this.unary();
    for (;;) {
      const t = this.peek();
      if (t.kind === "op" && (t.value === "*" || t.value === "/" || t.value === "%")) {
        this.i++;
        l = { k: "bin", op: t.value, l, r: this.unary() };
      } else return l;
    }
  }
  private unary(): Expr {
    if (this.acceptOp("-")) return { k: "neg", e: this.unary() };
    if (this.acceptOp("+")) return this.unary();
    return this.primary();
  }
  private primary(): Expr {
    const t = this.next();
    if (t.kind === "num") return { k: "num", v: t.value, type: numberLiteralType(t.text, t.value) };
    if (t.kind === "str") return { k: "lit", v: t.value };
    if (t.kind === "op" && t.value === "(") {
      const e = this.expr();
      this.expectOp(")");
      return e;
    }
    if (t.kind !== "ident") return this.fail("expected a value", t);
    const word = t.value.toLowerCase();
    if (!t.quoted) {
      if (word === "true") return { k: "lit", v: true };
      if (word === "false") return { k: "lit", v: false };
      if (word === "null") return { k: "lit", v: null };
      if (RESERVED.has(word)) this.fail(`unexpected ${t.value.toUpperCase()}`, t);
    }
    if (!t.quoted && this.isOp("(")) {
      this.i++;
      if (AGGREGATES.has(word)) {
        const step = this.identifier("a step name");
        this.expectOp(".");
        let field: string | null = null;
        if (this.acceptOp("*")) {
          if (word !== "count") this.fail(`${word}(${step}.*) is not defined; name a field`);
        } else field = this.identifier("a field name");
        this.expectOp(")");
        return { k: "agg", fn: word as Aggregate, step, field };
      }
      if (!SCALAR_FUNCTIONS.has(word)) this.fail(`unknown function ${t.value}`, t);
      const args: Expr[] = [];
      if (!this.acceptOp(")")) {
        args.push(this.expr());
        while (this.acceptOp(",")) args.push(this.expr());
        this.expectOp(")");
      }
      return { k: "call", fn: word, args };
    }
    if (this.acceptOp(".")) return { k: "ref", step: t.value, field: this.identifier("a field name") };
    return { k: "field", name: t.value };
  }
  private identifier(what: string): string {
    const t = this.next();
    if (t.kind !== "ident") this.fail(`expected ${what}`, t);
    return (t as { value: string }).value;
  }
}
