/**
 * Turns an ingest request body into events: one JSON object, a JSON array of objects
 * (`application/json`), or newline-delimited objects (`application/x-ndjson`). The body arrives as
 * bytes so that invalid UTF-8 is refused rather than silently replaced.
 */
import { isAscii, isUtf8 } from "node:buffer";
import { RunnelError } from "../core/errors.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

export type BodyFormat = "json" | "ndjson";

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

export function parseEvents(bytes: Uint8Array, format: BodyFormat): unknown[] {
  if (format === "ndjson") return parseNdjson(bytes).events;
  const text = decodeUtf8(bytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new RunnelError("invalid_json", `the request body is not valid JSON: ${(e as Error).message}`);
  }
  const events = Array.isArray(parsed) ? parsed : [parsed];
  if (events.length === 0) throw new RunnelError("invalid_events", "the request holds no events");
  return events;
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
export function parseNdjson(bytes: Uint8Array): ParsedLines {
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
    try {
      events.push(JSON.parse(text));
    } catch (err) {
      throw new RunnelError("invalid_json", `line ${line} is not valid JSON: ${(err as Error).message}`, {
        details: [{ line, message: (err as Error).message }],
      });
    }
    raw.push(buf.subarray(s, e));
  }
  if (events.length === 0) throw new RunnelError("invalid_events", "the request holds no events");
  return { events, raw };
}
