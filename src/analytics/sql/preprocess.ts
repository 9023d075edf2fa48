/**
 * Rewrites the few DuckDB forms node-sql-parser's PostgreSQL grammar does not know into forms it
 * does, for checking only (the text DuckDB runs is the caller's own). The rewrites keep every
 * table and function name where it was, so what is checked is what runs:
 *   `?` placeholders → `$1`, `$2`…; `GROUP BY ALL` / `ORDER BY ALL` → `… BY 1`; list literals
 *   `[1, 2]` → `ARRAY[1, 2]`; DuckDB-only integer type names in casts → BIGINT.
 * Strings, quoted identifiers and comments are left untouched.
 */

interface Segment {
  readonly code: boolean;
  readonly text: string;
}

/** Splits SQL into code and non-code (strings, quoted identifiers, comments) as DuckDB's lexer does. */
export function segments(sql: string): Segment[] {
  const out: Segment[] = [];
  let code = "";
  let i = 0;
  const flush = (): void => {
    if (code !== "") out.push({ code: true, text: code });
    code = "";
  };
  while (i < sql.length) {
    const ch = sql[i];
    const next = sql[i + 1];
    let end = -1;
    if (ch === "'" || ch === '"') {
      end = i + 1;
      for (;;) {
        const j = sql.indexOf(ch, end);
        if (j < 0) {
          end = sql.length;
          break;
        }
        if (sql[j + 1] === ch) {
          end = j + 2;
          continue;
        }
        end = j + 1;
        break;
      }
    } else if (ch === "-" && next === "-") {
      const j = sql.indexOf("\n", i);
      end = j < 0 ? sql.length : j;
    } else if (ch === "/" && next === "*") {
      // Block comments nest in PostgreSQL and DuckDB.
      let depth = 1;
      end = i + 2;
      while (end < sql.length && depth > 0) {
        if (sql.startsWith("/*", end)) {
          depth++;
          end += 2;
        } else if (sql.startsWith("*/", end)) {
          depth--;
          end += 2;
        } else end++;
      }
    } else if (ch === "$") {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (tag !== null) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        end = close < 0 ? sql.length : close + tag[0].length;
      }
    }
    if (end < 0) {
      code += ch;
      i++;
      continue;
    }
    flush();
    out.push({ code: false, text: sql.slice(i, end) });
    i = end;
  }
  flush();
  return out;
}

/** `[` opening a list literal (not a subscript): at the start or after an operator, comma or keyword. */
const LIST_LITERAL = /(^|[(,=<>+\-*/|]\s*|\b(?:SELECT|THEN|ELSE|WHEN|AND|OR|NOT|IN|IS|RETURNING)\s+)\[/gi;

export function preprocessForParser(sql: string): string {
  let placeholder = 0;
  return segments(sql)
    .map((s) => {
      if (!s.code) return s.text;
      return s.text
        .replace(/\?/g, () => `$${++placeholder}`)
        .replace(/\b(GROUP|ORDER)(\s+)BY(\s+)ALL\b/gi, (_m, kw: string, s1: string, s2: string) => `${kw}${s1}BY${s2}1`)
        .replace(/(::|\bAS)(\s*)(U?HUGEINT|UBIGINT|UINTEGER|USMALLINT|U?TINYINT|VARINT|BIGNUM)\b/gi, "$1$2BIGINT")
        .replace(LIST_LITERAL, (_m, before: string) => `${before}ARRAY[`);
    })
    .join("");
}
