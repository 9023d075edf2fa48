import { RunnelError } from "../../core/errors.js";
import { checkWindow, type WindowSpec } from "../window/windows.js";

/**
 * Windowing table functions in FROM (Flink SQL's TUMBLE/HOP/SESSION TVFs), which the PostgreSQL
 * grammar cannot parse. This pass finds `FROM TUMBLE(<stream>, <time>, <interval>…)`, reads the
 * window, and hands the parser `FROM <stream>`; `GROUP BY ALL` (DuckDB) is taken out the same way.
 * Accepted forms: `TUMBLE(s, _time, INTERVAL '1 minute')`, Flink's
 * `TUMBLE(TABLE s, DESCRIPTOR(_time), INTERVAL '1' MINUTE)`, `HOP(…, slide, size)`, `SESSION(…, gap)`.
 */
export interface WindowTvf {
  readonly window: WindowSpec;
  readonly stream: string;
}

export interface ExtractedWindow {
  readonly sql: string;
  readonly tvf: WindowTvf | undefined;
  readonly groupByAll: boolean;
}

interface Token {
  readonly kind: "word" | "string" | "quoted" | "punct" | "space";
  readonly text: string;
  readonly start: number;
  readonly end: number;
}

function unsupported(message: string): never {
  throw new RunnelError("unsupported_sql", message);
}

function lex(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i] as string;
    const start = i;
    if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < n) {
        if (sql[j] === c) {
          if (sql[j + 1] === c) j += 2;
          else break;
        } else j++;
      }
      i = j + 1;
      tokens.push({ kind: c === "'" ? "string" : "quoted", text: sql.slice(start, i), start, end: i });
    } else if (c === "-" && sql[i + 1] === "-") {
      const j = sql.indexOf("\n", i);
      i = j === -1 ? n : j;
      tokens.push({ kind: "space", text: sql.slice(start, i), start, end: i });
    } else if (c === "/" && sql[i + 1] === "*") {
      const j = sql.indexOf("*/", i + 2);
      i = j === -1 ? n : j + 2;
      tokens.push({ kind: "space", text: sql.slice(start, i), start, end: i });
    } else if (/\s/.test(c)) {
      while (i < n && /\s/.test(sql[i] as string)) i++;
      tokens.push({ kind: "space", text: sql.slice(start, i), start, end: i });
    } else if (/[A-Za-z0-9_$.]/.test(c)) {
      while (i < n && /[A-Za-z0-9_$.]/.test(sql[i] as string)) i++;
      tokens.push({ kind: "word", text: sql.slice(start, i), start, end: i });
    } else {
      i++;
      tokens.push({ kind: "punct", text: c, start, end: i });
    }
  }
  return tokens;
}

const UNIT_MS: Readonly<Record<string, number>> = {
  millisecond: 1,
  milliseconds: 1,
  ms: 1,
  second: 1000,
  seconds: 1000,
  sec: 1000,
  secs: 1000,
  s: 1000,
  minute: 60_000,
  minutes: 60_000,
  min: 60_000,
  mins: 60_000,
  m: 60_000,
  hour: 3_600_000,
  hours: 3_600_000,
  h: 3_600_000,
  day: 86_400_000,
  days: 86_400_000,
  d: 86_400_000,
  week: 604_800_000,
  weeks: 604_800_000,
};

/** `INTERVAL '1 minute'`, `INTERVAL '1' MINUTE`, `INTERVAL 90 SECONDS`, `INTERVAL '1 hour 30 minutes'`. */
export function parseInterval(text: string): number {
  const m = /^\s*INTERVAL\s+(.+?)\s*$/is.exec(text);
  if (m === null) unsupported(`window sizes must be INTERVAL literals, e.g. INTERVAL '1 minute', not ${text.trim()}`);
  const body = (m[1] as string).replace(/'/g, " ").trim().toLowerCase();
  const parts = body.split(/\s+/);
  let total = 0;
  if (parts.length % 2 !== 0) unsupported(`cannot read interval ${text.trim()}: use INTERVAL '<n> <unit>'`);
  for (let i = 0; i < parts.length; i += 2) {
    const n = Number(parts[i]);
    const unit = parts[i + 1] as string;
    const ms = UNIT_MS[unit];
    if (ms === undefined) {
      unsupported(
        `interval unit ${unit.toUpperCase()} is not supported in windows (use milliseconds to weeks: months and years vary in length)`,
      );
    }
    if (!Number.isFinite(n) || n < 0) unsupported(`cannot read interval ${text.trim()}`);
    total += n * ms;
  }
  if (!Number.isSafeInteger(total) || total <= 0) unsupported(`window interval ${text.trim()} must be positive`);
  return total;
}

function meaningful(tokens: readonly Token[], from: number): number {
  let i = from;
  while (i < tokens.length && (tokens[i] as Token).kind === "space") i++;
  return i;
}

function isWord(t: Token | undefined, word: string): boolean {
  return t !== undefined && t.kind === "word" && t.text.toUpperCase() === word;
}

/** Splits a TVF's argument text at top-level commas. */
function splitArgs(tokens: readonly Token[], from: number, to: number, sql: string): string[] {
  const args: string[] = [];
  let depth = 0;
  let argStart = (tokens[from] as Token).start;
  for (let i = from; i < to; i++) {
    const t = tokens[i] as Token;
    if (t.kind !== "punct") continue;
    if (t.text === "(") depth++;
    else if (t.text === ")") depth--;
    else if (t.text === "," && depth === 0) {
      args.push(sql.slice(argStart, t.start).trim());
      argStart = t.end;
    }
  }
  args.push(sql.slice(argStart, (tokens[to] as Token).start).trim());
  return args;
}

function streamArg(text: string): string {
  const s = text.replace(/^TABLE\s+/i, "").trim();
  if (/\sPARTITION\s+BY\s/i.test(` ${s} `)) {
    unsupported("PARTITION BY inside SESSION is not supported: session windows are keyed by the GROUP BY columns");
  }
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(s))
    unsupported(`the first argument of a window function must name a stream, not ${s}`);
  return s;
}

function timeArg(text: string): void {
  const d = /^DESCRIPTOR\s*\(\s*(.+?)\s*\)$/i.exec(text);
  const column = (d?.[1] ?? text).replace(/^"(.*)"$/, "$1");
  if (column !== "_time") {
    unsupported(
      `windows run on event time, the column _time (the stream's timestampField); ${column} cannot be the time column`,
    );
  }
}

export function extractWindow(sql: string): ExtractedWindow {
  const tokens = lex(sql);
  let out = sql;
  let tvf: WindowTvf | undefined;
  let groupByAll = false;
  // Edits are applied from the end so earlier positions stay valid.
  const edits: { start: number; end: number; text: string }[] = [];
  // Only the outer query's FROM: a TVF inside a subquery is left for the refusal of subqueries.
  let depth = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as Token;
    if (t.kind === "punct") {
      if (t.text === "(") depth++;
      else if (t.text === ")") depth--;
      continue;
    }
    if (depth > 0) continue;
    if (isWord(t, "GROUP")) {
      const by = meaningful(tokens, i + 1);
      const all = meaningful(tokens, by + 1);
      if (isWord(tokens[by], "BY") && isWord(tokens[all], "ALL")) {
        groupByAll = true;
        edits.push({ start: t.start, end: (tokens[all] as Token).end, text: " " });
      }
      continue;
    }
    if (!isWord(t, "FROM")) continue;
    const nameAt = meaningful(tokens, i + 1);
    const name = tokens[nameAt];
    const open = meaningful(tokens, nameAt + 1);
    if (name === undefined || name.kind !== "word" || tokens[open]?.text !== "(") continue;
    const kind = name.text.toUpperCase();
    if (kind !== "TUMBLE" && kind !== "HOP" && kind !== "SESSION") continue;
    if (tvf !== undefined) unsupported("a pipeline may use one window function");
    let inner = 0;
    let close = -1;
    for (let j = open; j < tokens.length; j++) {
      const x = tokens[j] as Token;
      if (x.kind !== "punct") continue;
      if (x.text === "(") inner++;
      else if (x.text === ")" && --inner === 0) {
        close = j;
        break;
      }
    }
    if (close < 0) unsupported(`unbalanced parentheses in ${kind}(…)`);
    const args = splitArgs(tokens, open + 1, close, sql);
    const want = kind === "HOP" ? 4 : 3;
    if (args.length !== want) {
      unsupported(
        kind === "HOP"
          ? "HOP takes (stream, _time, slide, size)"
          : `${kind} takes (stream, _time, ${kind === "TUMBLE" ? "size" : "gap"})`,
      );
    }
    const stream = streamArg(args[0] as string);
    timeArg(args[1] as string);
    let window: WindowSpec;
    try {
      window =
        kind === "TUMBLE"
          ? checkWindow({ kind: "tumble", size: parseInterval(args[2] as string) })
          : kind === "HOP"
            ? checkWindow({
                kind: "hop",
                slide: parseInterval(args[2] as string),
                size: parseInterval(args[3] as string),
              })
            : checkWindow({ kind: "session", gap: parseInterval(args[2] as string) });
    } catch (e) {
      if (e instanceof RunnelError && e.code === "invalid_input") unsupported(`${kind}: ${e.message}`);
      throw e;
    }
    tvf = { window, stream };
    edits.push({ start: name.start, end: (tokens[close] as Token).end, text: stream });
    i = close;
  }
  for (const e of edits.sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return { sql: out, tvf, groupByAll };
}
