/** Tokens of a `where` expression (a small SQL boolean expression). */
import { RunnelError } from "../../core/errors.js";

export type Token =
  | { readonly kind: "num"; readonly value: number; readonly text: string; readonly pos: number }
  | { readonly kind: "str"; readonly value: string; readonly pos: number }
  | { readonly kind: "ident"; readonly value: string; readonly quoted: boolean; readonly pos: number }
  | { readonly kind: "op"; readonly value: string; readonly pos: number }
  | { readonly kind: "end"; readonly pos: number };

const OPS = ["<>", "!=", "<=", ">=", "||", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",", "."];

export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const fail = (msg: string): never => {
    throw new RunnelError("invalid_input", `where: ${msg} at position ${i + 1}`);
  };
  while (i < src.length) {
    const c = src[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(src[i + 1] ?? ""))) {
      const m = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/.exec(src.slice(i));
      if (m === null) fail("bad number");
      const text = (m as RegExpExecArray)[0];
      out.push({ kind: "num", value: Number(text), text, pos: start });
      i += text.length;
      continue;
    }
    if (c === "'") {
      let s = "";
      i++;
      for (;;) {
        if (i >= src.length) fail("unterminated string");
        const d = src[i] as string;
        if (d === "'") {
          if (src[i + 1] === "'") {
            s += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        s += d;
        i++;
      }
      out.push({ kind: "str", value: s, pos: start });
      continue;
    }
    if (c === '"') {
      const end = src.indexOf('"', i + 1);
      if (end < 0) fail("unterminated quoted identifier");
      out.push({ kind: "ident", value: src.slice(i + 1, end), quoted: true, pos: start });
      i = end + 1;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(src.slice(i)) as RegExpExecArray;
      out.push({ kind: "ident", value: m[0], quoted: false, pos: start });
      i += m[0].length;
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (op === undefined) fail(`unexpected character "${c}"`);
    out.push({ kind: "op", value: op as string, pos: start });
    i += (op as string).length;
  }
  out.push({ kind: "end", pos: src.length });
  return out;
}
