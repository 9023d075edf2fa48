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
    const scanned = scanShape(bytes, 0, bytes.byteLength, limits, true);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new RunnelError("invalid_json", `the request body is not valid JSON: ${(e as Error).message}`);
    }
    checkNoDuplicates(parsed, scanned, bytes, 0, bytes.byteLength, true);
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
 * each event keeps a zero-copy view of its bytes. An ASCII body (the common case) is decoded once
 * as a whole; any other is decoded line by line.
 */
export function parseNdjson(bytes: Uint8Array, limits: JsonLimits): ParsedLines {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Most bodies are ASCII: then one decode serves every line, since string and byte offsets agree.
  const ascii = isAscii(buf) ? buf.toString("latin1") : undefined;
  if (ascii === undefined && !isUtf8(buf)) throw new RunnelError("invalid_utf8", "the request body is not valid UTF-8");
  const events: unknown[] = [];
  const raw: Uint8Array[] = [];
  const end = buf.byteLength;
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
    if (s === e) continue;
    const text = ascii !== undefined ? ascii.slice(s, e) : buf.toString("utf8", s, e);
    let event: unknown;
    try {
      const scanned = scanShape(buf, s, e, limits);
      event = JSON.parse(text);
      checkNoDuplicates(event, scanned, buf, s, e);
    } catch (err) {
      const index = events.length;
      const refused = err instanceof JsonShapeError ? "is refused" : "is not valid JSON";
      throw new RunnelError("invalid_json", `line ${line} ${refused}: ${(err as Error).message}`, {
        details: [{ line, index, message: (err as Error).message }],
      });
    }
    events.push(event);
    raw.push(buf.subarray(s, e));
  }
  if (events.length === 0) throw new RunnelError("invalid_events", "the request holds no events");
  return { events, raw };
}
