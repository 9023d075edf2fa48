/**
 * The shape limits every JSON body and every event meets before it is parsed: nesting depth,
 * members per object, and no duplicate member names (I-JSON, RFC 7493 §2.3). Checked on the raw
 * bytes, so a body nested 20,000 deep is refused before JSON.parse or any recursive reader
 * (JSON.stringify, the analytics loader, SQL evaluation, PostgreSQL's jsonb) can overflow a stack,
 * and so a duplicate key is seen at all: JSON.parse keeps the last, another reader may keep the
 * first.
 */

import { ENV_NAMES } from "../config/config.js";

export interface JsonLimits {
  /** Deepest nesting of objects and arrays; an event object alone is depth 1. */
  readonly maxDepth: number;
  /** Most members in one object (an event's top-level fields, or any nested object). */
  readonly maxFields: number;
}

/** A JSON text breaks a shape limit; the caller adds where (line, index). */
export class JsonShapeError extends Error {
  constructor(
    message: string,
    /** With `arrayOfItems`, the index of the top-level array's element at fault. */
    readonly item?: number,
  ) {
    super(message);
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;

/** members[d]: members seen so far in the container open at depth d (reused: scans never nest). */
let members = new Int32Array(66);

/**
 * Hot path: one pass over `bytes[start, end)` that needs no valid JSON (JSON.parse judges that
 * afterwards) and allocates nothing. UTF-8 continuation bytes are never ASCII, so a byte scan
 * cannot mistake part of a character for a quote or a brace. Every member has exactly one colon
 * outside strings, so colons count members. Returns the text's shape: the number of members in
 * the whole text times two, plus one when some container sits inside another, which
 * `checkNoDuplicates` compares with what JSON.parse kept; or -1 when the text cannot be one JSON
 * value (brackets unbalanced, a string unterminated, a comma outside any container): JSON.parse
 * refuses such a text, and parseNdjson must not join it with its neighbours into one array. With
 * `arrayOfItems`, a top-level array does not count as a level: its elements (a batch of events)
 * are measured as if alone.
 */
export function scanShape(
  bytes: Uint8Array,
  start: number,
  end: number,
  limits: JsonLimits,
  arrayOfItems = false,
): number {
  const items = arrayOfItems && firstToken(bytes, start, end) === OPEN_ARRAY;
  const maxDepth = items ? limits.maxDepth + 1 : limits.maxDepth;
  const maxFields = limits.maxFields;
  if (members.length < maxDepth + 2) members = new Int32Array(maxDepth + 2);
  const counts = members;
  let depth = 0;
  let total = 0;
  let item = 0;
  let single = true;
  let nested = false;
  for (let i = start; i < end; i++) {
    const c = bytes[i]!;
    if (c === QUOTE) {
      for (i++; i < end; i++) {
        const s = bytes[i]!;
        if (s === QUOTE) break;
        if (s === BACKSLASH) i++;
      }
      if (i >= end) single = false;
    } else if (c === COLON) {
      total++;
      if (++counts[depth]! > maxFields) {
        throw new JsonShapeError(
          `an object has more than ${maxFields} fields (${ENV_NAMES.maxJsonFields})`,
          items ? item : undefined,
        );
      }
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > maxDepth) {
        throw new JsonShapeError(
          `nesting is deeper than ${limits.maxDepth} levels (${ENV_NAMES.maxJsonDepth})`,
          items ? item : undefined,
        );
      }
      counts[depth] = 0;
      if (depth > 1) nested = true;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      if (depth === 0) single = false;
      else depth--;
    } else if (c === COMMA) {
      if (depth === 1) item++;
      else if (depth === 0) single = false;
    }
  }
  if (!single || depth !== 0) return -1;
  return total * 2 + (nested ? 1 : 0);
}

/**
 * JSON.parse keeps one member per name, so fewer members in the parsed value than colons in the
 * text means a name was repeated; only then is the text read again to name it. A flat event (the
 * common case) costs one Object.keys; a nested one a walk of the parsed value.
 */
export function checkNoDuplicates(
  value: unknown,
  shape: number,
  bytes: Uint8Array,
  start: number,
  end: number,
  arrayOfItems = false,
): void {
  // No members (or not one value, which JSON.parse has refused): no name can repeat.
  if (shape < 2) return;
  const flat = (shape & 1) === 0 && typeof value === "object" && value !== null;
  if ((flat ? Object.keys(value).length : countMembers(value)) === shape >>> 1) return;
  const found = firstDuplicate(bytes, start, end);
  throw new JsonShapeError(
    `duplicate field ${JSON.stringify(found?.name ?? "")}: field names must be unique (I-JSON, RFC 7493)`,
    arrayOfItems && Array.isArray(value) ? found?.item : undefined,
  );
}

/** The shape checks and JSON.parse of `bytes[start, end)`, whose text is `text`. */
export function parseShaped(
  bytes: Uint8Array,
  start: number,
  end: number,
  text: string,
  limits: JsonLimits,
  arrayOfItems = false,
): unknown {
  const shape = scanShape(bytes, start, end, limits, arrayOfItems);
  const value: unknown = JSON.parse(text);
  checkNoDuplicates(value, shape, bytes, start, end, arrayOfItems);
  return value;
}

/** `parseShaped` for a text that arrived as a string (a source's record). */
export function parseShapedText(text: string, limits: JsonLimits): unknown {
  const bytes = Buffer.from(text, "utf8");
  return parseShaped(bytes, 0, bytes.byteLength, text, limits);
}

function firstToken(bytes: Uint8Array, start: number, end: number): number | undefined {
  for (let i = start; i < end; i++) {
    const c = bytes[i]!;
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return c;
  }
  return undefined;
}

/** Members in all objects of a parsed value, walked without recursion (the depth is bounded anyway). */
function countMembers(value: unknown): number {
  if (typeof value !== "object" || value === null) return 0;
  let total = 0;
  const pending: object[] = [value];
  while (pending.length > 0) {
    const node = pending.pop() as Record<string, unknown>;
    if (Array.isArray(node)) {
      for (const item of node) if (typeof item === "object" && item !== null) pending.push(item);
      continue;
    }
    for (const key in node) {
      total++;
      const item = node[key];
      if (typeof item === "object" && item !== null) pending.push(item);
    }
  }
  return total;
}

/**
 * The first name repeated within one object, read with a stack of seen names per open container,
 * and which element of a top-level array holds it.
 */
function firstDuplicate(bytes: Uint8Array, start: number, end: number): { name: string; item: number } | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // One entry per open container: the names seen so far, or undefined for an array.
  const open: (Set<string> | undefined)[] = [];
  let expectName = false;
  let item = 0;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c === QUOTE) {
      const from = i;
      for (i++; i < end; i++) {
        if (buf[i] === QUOTE) break;
        if (buf[i] === BACKSLASH) i++;
      }
      const names = open[open.length - 1];
      if (expectName && names !== undefined) {
        // Decoded, so "a" and "\u0061" are the same name, as every reader sees them.
        const name = JSON.parse(buf.toString("utf8", from, i + 1)) as string;
        if (names.has(name)) return { name, item };
        names.add(name);
      }
      expectName = false;
    } else if (c === OPEN_OBJECT) {
      open.push(new Set());
      expectName = true;
    } else if (c === OPEN_ARRAY) {
      open.push(undefined);
      expectName = false;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      open.pop();
    } else if (c === COMMA) {
      if (open.length === 1) item++;
      expectName = open[open.length - 1] !== undefined;
    }
  }
  return undefined;
}
