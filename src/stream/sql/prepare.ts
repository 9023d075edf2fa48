import { RunnelError } from "../../core/errors.js";

/**
 * node-sql-parser's PostgreSQL grammar is the closest to DuckDB's, but it lacks two DuckDB forms
 * pipelines need: `TRY_CAST(x AS t)` and integer division `a // b`. This pass rewrites them on the
 * token stream (strings, quoted identifiers and comments are left alone) into forms that grammar
 * parses and the compiler recognises:
 *   TRY_CAST(x AS t) → __runnel_try_cast(CAST(x AS t))
 *   a // b           → a / ~ b   (unary `~` binds tighter than `/`, so `//` keeps `/`'s precedence;
 *                                 a user's own `~` is refused here, so the marker is unambiguous)
 * Window table functions in FROM were taken out before (window-tvf.ts); one anywhere else is
 * refused here, because the grammar cannot parse it and the user deserves a better message.
 */
export const TRY_CAST_MARKER = "__runnel_try_cast";

const WINDOW_TVFS = new Set(["tumble", "hop", "session"]);

export function prepareSql(sql: string): string {
  let out = "";
  let i = 0;
  // For each open paren, whether it opened a TRY_CAST, whose rewrite needs one extra `)`.
  const parens: boolean[] = [];
  const n = sql.length;
  while (i < n) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < n) {
        if (sql[j] === c) {
          if (sql[j + 1] === c) j += 2;
          else break;
        } else j++;
      }
      out += sql.slice(i, j + 1);
      i = j + 1;
    } else if (c === "-" && next === "-") {
      const j = sql.indexOf("\n", i);
      const end = j === -1 ? n : j;
      out += sql.slice(i, end);
      i = end;
    } else if (c === "/" && next === "*") {
      const j = sql.indexOf("*/", i + 2);
      const end = j === -1 ? n : j + 2;
      out += sql.slice(i, end);
      i = end;
    } else if (c === "/" && next === "/") {
      out += "/ ~";
      i += 2;
    } else if (c === "~") {
      throw new RunnelError("unsupported_sql", "operator ~ is not supported in pipelines");
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$]/.test(sql[j] as string)) j++;
      const word = sql.slice(i, j);
      let k = j;
      while (k < n && /\s/.test(sql[k] as string)) k++;
      const lower = word.toLowerCase();
      if (sql[k] === "(" && lower === "try_cast") {
        out += `${TRY_CAST_MARKER}(CAST(`;
        parens.push(true);
        i = k + 1;
      } else {
        if (sql[k] === "(" && WINDOW_TVFS.has(lower)) {
          throw new RunnelError(
            "unsupported_sql",
            `${word.toUpperCase()}(…) is only supported as the FROM of a pipeline: FROM ${word.toUpperCase()}(stream, _time, …)`,
          );
        }
        out += word;
        i = j;
      }
    } else if (c === "(") {
      parens.push(false);
      out += c;
      i++;
    } else if (c === ")") {
      out += parens.pop() === true ? "))" : ")";
      i++;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
