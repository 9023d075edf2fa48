/**
 * Line parsers for file sources: JSON, logfmt (`level=info msg="disk full" took=12ms`), or a
 * regular expression whose named groups become fields. Each returns the event or a reason.
 */
import { ENV_NAMES } from "../config/config.js";
import { type JsonLimits, JsonShapeError, parseShapedText } from "../ingest/json-limits.js";
import type { LineParser } from "./types.js";

export type ParseResult = { event: Record<string, unknown> } | { error: string };
export type LineParse = (line: string) => ParseResult;

export function compileParser(parser: LineParser, limits: JsonLimits): LineParse {
  if (parser === "json") return (line) => parseJsonObject(line, limits, "line");
  if (parser === "logfmt") return (line) => parseLogfmt(line, limits.maxFields);
  const regex = new RegExp(parser.regex);
  return (line) => {
    const m = regex.exec(line);
    if (m === null) return { error: `line does not match ${regex}` };
    return { event: { ...m.groups } };
  };
}

/**
 * One JSON object from a source's record (a file's line, an MQTT payload, a Kafka value), under
 * the shape limits every ingest path applies, so a refused record goes to the dead-letter stream.
 */
export function parseJsonObject(text: string, limits: JsonLimits, what: string): ParseResult {
  let parsed: unknown;
  try {
    parsed = parseShapedText(text, limits);
  } catch (e) {
    const problem = e instanceof JsonShapeError ? "is refused" : "is not JSON";
    return { error: `${what} ${problem}: ${(e as Error).message}` };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { error: `${what} must be a JSON object` };
  }
  return { event: parsed as Record<string, unknown> };
}

/**
 * logfmt as Heroku and Go's logfmt write it: bare keys are true, values may be double-quoted with
 * \" escapes. A repeated key is refused, as in JSON events (I-JSON).
 */
export function parseLogfmt(line: string, maxFields: number): ParseResult {
  const event: Record<string, unknown> = {};
  let fields = 0;
  let i = 0;
  const n = line.length;
  while (i < n) {
    while (i < n && line[i] === " ") i++;
    if (i >= n) break;
    const keyStart = i;
    while (i < n && line[i] !== "=" && line[i] !== " ") i++;
    const key = line.slice(keyStart, i);
    if (key === "" || key.includes('"')) return { error: `logfmt: bad key at column ${keyStart + 1}` };
    if (Object.hasOwn(event, key)) return { error: `logfmt: duplicate key "${key}"` };
    if (++fields > maxFields) return { error: `logfmt: more than ${maxFields} keys (${ENV_NAMES.maxJsonFields})` };
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
