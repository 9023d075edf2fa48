/**
 * Line parsers for file sources: JSON, logfmt (`level=info msg="disk full" took=12ms`), or a
 * regular expression whose named groups become fields. Each returns the event or a reason.
 */
import type { LineParser } from "./types.js";

export type ParseResult = { event: Record<string, unknown> } | { error: string };
export type LineParse = (line: string) => ParseResult;

export function compileParser(parser: LineParser): LineParse {
  if (parser === "json") return parseJsonLine;
  if (parser === "logfmt") return parseLogfmt;
  const regex = new RegExp(parser.regex);
  return (line) => {
    const m = regex.exec(line);
    if (m === null) return { error: `line does not match ${regex}` };
    return { event: { ...m.groups } };
  };
}

export function parseJsonLine(line: string): ParseResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (e) {
    return { error: `not JSON: ${(e as Error).message}` };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { error: "a line must hold one JSON object" };
  }
  return { event: parsed as Record<string, unknown> };
}

/** logfmt as Heroku and Go's logfmt write it: bare keys are true, values may be double-quoted with \" escapes. */
export function parseLogfmt(line: string): ParseResult {
  const event: Record<string, unknown> = {};
  let i = 0;
  const n = line.length;
  while (i < n) {
    while (i < n && line[i] === " ") i++;
    if (i >= n) break;
    const keyStart = i;
    while (i < n && line[i] !== "=" && line[i] !== " ") i++;
    const key = line.slice(keyStart, i);
    if (key === "" || key.includes('"')) return { error: `logfmt: bad key at column ${keyStart + 1}` };
    if (line[i] !== "=") {
      event[key] = true;
      continue;
    }
    i++;
    if (line[i] === '"') {
      i++;
      let value = "";
      while (i < n && line[i] !== '"') {
        if (line[i] === "\\" && i + 1 < n) i++;
        value += line[i];
        i++;
      }
      if (i >= n) return { error: `logfmt: unterminated quote in "${key}"` };
      i++;
      event[key] = value;
    } else {
      const valueStart = i;
      while (i < n && line[i] !== " ") i++;
      event[key] = line.slice(valueStart, i);
    }
  }
  if (Object.keys(event).length === 0) return { error: "logfmt: no key=value pairs" };
  return { event };
}
