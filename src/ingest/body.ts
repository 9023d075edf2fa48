/**
 * Turns an ingest request body into events: one JSON object, a JSON array of objects
 * (`application/json`), or newline-delimited objects (`application/x-ndjson`). The body arrives as
 * bytes so that invalid UTF-8 is refused rather than silently replaced, and its shape (depth,
 * fields, duplicate names: json-limits.ts) is checked on those bytes before anything parses them.
 */
import { isAscii, isUtf8 } from "node:buffer";
import { RunnelError } from "../core/errors.js";
import { checkNoDuplicates, type JsonLimits, JsonShapeError, scanShape } from "./json-limits.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Events parsed from NDJSON, with each event's own bytes (a view into the body, not a copy). */
export interface ParsedLines {
  readonly events: unknown[];
  /** raw[i] is the trimmed source text of events[i]: the log can store it as is when nothing changes. */
  readonly raw: Uint8Array[];
}

export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new RunnelError("invalid_utf8", "the request body is not valid UTF-8");
  }
}

/**
 * Any JSON request body (every route's `application/json`). A top-level array is a batch: each
 * element is measured against the limits as if alone, and a refusal names its index.
 */
export function parseJsonBody(bytes: Uint8Array, limits: JsonLimits): unknown {
  const text = decodeUtf8(bytes);
  try {
    const shape = scanShape(bytes, 0, bytes.byteLength, limits, true);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new RunnelError("invalid_json", `the request body is not valid JSON: ${(e as Error).message}`);
    }
    checkNoDuplicates(parsed, shape, bytes, 0, bytes.byteLength, true);
    return parsed;
  } catch (e) {
    if (!(e instanceof JsonShapeError)) throw e;
    const where = e.item === undefined ? "the request body" : `event ${e.item}`;
    throw new RunnelError("invalid_json", `${where} is refused: ${e.message}`, {
      details: [{ ...(e.item !== undefined && { index: e.item }), message: e.message }],
    });
  }
}

const NEWLINE = 0x0a;

function isBlank(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0d;
}

/**
 * Hot path. The body is checked for UTF-8 once, natively, and cut at newlines by byte offset, so
 * each event keeps a zero-copy view of its bytes. Each line's shape is scanned first
 * (json-limits.ts); then, when every line is one JSON value and no blank line sits between them
 * (the common case), the lines are parsed by one JSON.parse of the body as an array (newlines
 * made commas): one call instead of one per line, which pays for the scan. Anything else, and any
 * body that array does not parse, is parsed line by line so the error names its line.
 */
export function parseNdjson(bytes: Uint8Array, limits: JsonLimits): ParsedLines {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ascii = isAscii(buf);
  if (!ascii && !isUtf8(buf)) throw new RunnelError("invalid_utf8", "the request body is not valid UTF-8");
  const raw: Uint8Array[] = [];
  /** Per event: its line number and its shape as scanned. */
  const lines: number[] = [];
  const shapes: number[] = [];
  const end = buf.byteLength;
  let joinable = true;
  let blankSince = false;
  let first = -1;
  let last = 0;
  let line = 0;
  let pos = 0;
  while (pos < end) {
    line++;
    let next = buf.indexOf(NEWLINE, pos);
    if (next === -1) next = end;
    let s = pos;
    let e = next;
    pos = next + 1;
    while (s < e && isBlank(buf[s]!)) s++;
    while (e > s && isBlank(buf[e - 1]!)) e--;
    if (s === e) {
      blankSince = first !== -1;
      continue;
    }
    let shape: number;
    try {
      shape = scanShape(buf, s, e, limits);
    } catch (err) {
      throw lineError(line, raw.length, err as Error);
    }
    if (shape < 0 || blankSince) joinable = false;
    if (first === -1) first = s;
    last = e;
    raw.push(buf.subarray(s, e));
    lines.push(line);
    shapes.push(shape);
  }
  if (raw.length === 0) throw new RunnelError("invalid_events", "the request holds no events");
  const events = (joinable && parseJoined(buf, first, last, ascii, raw.length)) || parseEach(raw, lines);
  for (let i = 0; i < events.length; i++) {
    const bytesOf = raw[i]!;
    try {
      checkNoDuplicates(events[i], shapes[i]!, bytesOf, 0, bytesOf.byteLength);
    } catch (err) {
      throw lineError(lines[i]!, i, err as Error);
    }
  }
  return { events, raw };
}

/** The lines `buf[first, last)` as one JSON array, or undefined when that does not parse to `count` values. */
function parseJoined(buf: Buffer, first: number, last: number, ascii: boolean, count: number): unknown[] | undefined {
  // Inside a line a newline cannot occur (JSON escapes it in strings), so every one separates two lines.
  const text = buf.toString(ascii ? "latin1" : "utf8", first, last).replaceAll("\n", ",");
  try {
    const parsed: unknown = JSON.parse(`[${text}]`);
    return Array.isArray(parsed) && parsed.length === count ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Line by line, so a line that is not JSON is named. */
function parseEach(raw: readonly Uint8Array[], lines: readonly number[]): unknown[] {
  const events: unknown[] = [];
  for (let i = 0; i < raw.length; i++) {
    const bytes = raw[i]!;
    try {
      events.push(JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")));
    } catch (err) {
      throw lineError(lines[i]!, i, err as Error);
    }
  }
  return events;
}

function lineError(line: number, index: number, err: Error): RunnelError {
  const refused = err instanceof JsonShapeError ? "is refused" : "is not valid JSON";
  return new RunnelError("invalid_json", `line ${line} ${refused}: ${err.message}`, {
    details: [{ line, index, message: err.message }],
  });
}
