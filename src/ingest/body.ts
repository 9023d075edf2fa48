/**
 * Turns an ingest request body into events: one JSON object, a JSON array of objects
 * (`application/json`), or newline-delimited objects (`application/x-ndjson`). The body arrives as
 * bytes so that invalid UTF-8 is refused rather than silently replaced.
 */
import { RunnelError } from "../core/errors.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

export type BodyFormat = "json" | "ndjson";

export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new RunnelError("invalid_utf8", "the request body is not valid UTF-8");
  }
}

export function parseEvents(bytes: Uint8Array, format: BodyFormat): unknown[] {
  const text = decodeUtf8(bytes);
  if (format === "json") {
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
  const events: unknown[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    try {
      events.push(JSON.parse(line));
    } catch (e) {
      throw new RunnelError("invalid_json", `line ${i + 1} is not valid JSON: ${(e as Error).message}`, {
        details: [{ line: i + 1, message: (e as Error).message }],
      });
    }
  }
  if (events.length === 0) throw new RunnelError("invalid_events", "the request holds no events");
  return events;
}
