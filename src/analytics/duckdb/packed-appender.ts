/**
 * Appends packed log records (./packed-records.ts) to a stream table by reading each record's
 * JSON bytes straight into the column buffers, with no JavaScript object per event: ingest has
 * already parsed every event once, and parsing it again into objects (JSON.parse, its string
 * internalising and garbage, then a pass of planSchema over the fields) was the analytics
 * worker's largest cost (issue 17, docs/ingestion.md).
 *
 * It takes only records the general path (unpackRecords → planSchema → appendRows) would write
 * without changing the table: a JSON object whose every field is a column of the table, typed as
 * the registry types it, holding a value that fits (`fits`), each column at most once. Each
 * value becomes the same JavaScript value JSON.parse gives (strings and numbers decoded from the
 * bytes, where the decoding is exact; escaped strings and nested values through JSON.parse of
 * the value alone) and goes through the same `setCell`, so both paths store the same cells
 * (test/analytics/packed-appender.test.ts compares them). Anything else (a new field, a value
 * that widens or does not fit, bytes that are not one JSON object) makes it answer false: the
 * caller rolls back and takes the general path, which registers, widens or dead-letters.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import type { ColumnBuffer } from "./column-buffers.js";
import { BASE_COLUMNS, type ColumnType, columnKey, fits, isBaseColumn } from "./column-types.js";
import type { PackedRecords } from "./packed-records.js";
import { chunkAppender, type FieldColumns, setCell, setMicros } from "./table-writer.js";

export interface PackedPartitionRecords {
  readonly partition: number;
  readonly packed: PackedRecords;
}

/** Exact powers of ten (10^0 … 10^22 are exact doubles). */
const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);
/** Significant digits whose integer stays exact in a double (below 2^53). */
const EXACT_DIGITS = 15;
/** DuckDB's `string_t` keeps strings of up to this many bytes inline. */
const INLINE_BYTES = 12;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

function isDigit(b: number): boolean {
  return b >= ZERO && b <= NINE;
}

/** Give-up signal of the scanner: a position no record reaches. */
const FAIL = -1;

/**
 * Reads records of one table's rows. Positions are byte offsets into `bytes`; every method
 * returns the position after what it read, or FAIL.
 */
class RecordScanner {
  /** The JavaScript value of the last number, string or nested value read. */
  value: unknown = undefined;
  /** Where the last plain string's bytes are (between its quotes) when it had no escape and only ASCII. */
  plainStart = 0;
  plainEnd = 0;
  plain = false;

  constructor(readonly bytes: Buffer) {}

  skipSpace(at: number, end: number): number {
    const b = this.bytes;
    while (at < end && isSpace(b[at]!)) at++;
    return at;
  }

  /** A string starting at its opening quote; `plain` tells whether its bytes are its text. */
  string(at: number, end: number, decode: boolean): number {
    const b = this.bytes;
    const start = at + 1;
    let plain = true;
    let i = start;
    for (; i < end; i++) {
      const c = b[i]!;
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        plain = false;
        i++;
      } else if (c >= 0x80 || c < 0x20) plain = false;
    }
    if (i >= end) return FAIL;
    this.plain = plain;
    this.plainStart = start;
    this.plainEnd = i;
    if (decode && !plain) {
      // Escapes, control characters or non-ASCII: the value exactly as JSON.parse gives it (the
      // quotes are ASCII, so decoding this slice alone decodes the same characters).
      try {
        this.value = JSON.parse(b.toString("utf8", at, i + 1));
      } catch {
        return FAIL;
      }
    } else if (decode) this.value = b.toString("latin1", start, i);
    return i + 1;
  }

  /** A number, validated as JSON's grammar; its value as JSON.parse gives it. */
  number(at: number, end: number): number {
    const b = this.bytes;
    const start = at;
    let negative = false;
    if (b[at] === MINUS) {
      negative = true;
      at++;
    }
    let mantissa = 0;
    let digits = 0;
    if (at < end && b[at] === ZERO) {
      at++;
      digits = 1;
    } else {
      while (at < end && isDigit(b[at]!)) {
        mantissa = mantissa * 10 + (b[at]! - ZERO);
        digits++;
        at++;
      }
      if (digits === 0) return FAIL;
    }
    let fraction = 0;
    if (at < end && b[at] === DOT) {
      at++;
      while (at < end && isDigit(b[at]!)) {
        mantissa = mantissa * 10 + (b[at]! - ZERO);
        fraction++;
        at++;
      }
      if (fraction === 0) return FAIL;
    }
    let exponent = false;
    if (at < end && (b[at] === 0x65 || b[at] === 0x45)) {
      exponent = true;
      at++;
      if (at < end && (b[at] === 0x2b || b[at] === MINUS)) at++;
      const first = at;
      while (at < end && isDigit(b[at]!)) at++;
      if (at === first) return FAIL;
    }
    if (!exponent && digits + fraction <= EXACT_DIGITS) {
      // Both operands exact, so the one division is correctly rounded: the double nearest the
      // decimal, as JSON.parse gives (Clinger's fast path).
      const magnitude = fraction === 0 ? mantissa : mantissa / POW10[fraction]!;
      this.value = negative ? -magnitude : magnitude;
    } else {
      // A valid JSON number: Number() rounds it as JSON.parse does.
      this.value = Number(b.toString("latin1", start, at));
    }
    return at;
  }

  /** An object or array starting at its bracket: parsed alone, as JSON.parse gives it. */
  nested(at: number, end: number): number {
    const b = this.bytes;
    let depth = 0;
    let i = at;
    for (; i < end; i++) {
      const c = b[i]!;
      if (c === QUOTE) {
        i = this.string(i, end, false) - 1;
        if (i < 0) return FAIL;
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
      else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        depth--;
        if (depth === 0) break;
      }
    }
    if (i >= end) return FAIL;
    try {
      this.value = JSON.parse(b.toString("utf8", at, i + 1));
    } catch {
      return FAIL;
    }
    return i + 1;
  }

  /** `true`, `false` or `null`. */
  literal(at: number, end: number): number {
    const b = this.bytes;
    const c = b[at];
    if (c === 0x74 && at + 4 <= end && b[at + 1] === 0x72 && b[at + 2] === 0x75 && b[at + 3] === 0x65) {
      this.value = true;
      return at + 4;
    }
    if (
      c === 0x66 &&
      at + 5 <= end &&
      b[at + 1] === 0x61 &&
      b[at + 2] === 0x6c &&
      b[at + 3] === 0x73 &&
      b[at + 4] === 0x65
    ) {
      this.value = false;
      return at + 5;
    }
    if (c === 0x6e && at + 4 <= end && b[at + 1] === 0x75 && b[at + 2] === 0x6c && b[at + 3] === 0x6c) {
      this.value = null;
      return at + 4;
    }
    return FAIL;
  }

  /**
   * Any value, decoded into `value` when `keep` (else only checked: a base column's field, whose
   * value is not stored, must still be valid JSON as the general path's parse requires).
   */
  any(at: number, end: number, keep: boolean): number {
    const c = this.bytes[at];
    this.plain = false;
    if (c === QUOTE) {
      const after = this.string(at, end, false);
      return after === FAIL || (this.plain && !keep) ? after : this.string(at, end, true);
    }
    if (c === MINUS || (c !== undefined && isDigit(c))) return this.number(at, end);
    if (c === OPEN_BRACE || c === OPEN_BRACKET) return this.nested(at, end);
    return this.literal(at, end);
  }
}

/** A field name's column: its buffer's index, or SKIP for a base column's name, or UNUSABLE. */
const SKIP = -1;
const UNUSABLE = -2;

/**
 * Appends the records of `parts` at offsets from `applied` (per partition, the next offset to
 * apply) on, inside the connection's open transaction; false, with rows possibly appended, when
 * a record needs the general path (the caller rolls back). `usable` holds the table's columns
 * that records may fill as they are (keyed by lower-cased name, in table order: `columns`).
 */
export async function appendPacked(
  connection: DuckDBConnection,
  table: string,
  columns: FieldColumns,
  usable: ReadonlySet<string>,
  parts: readonly PackedPartitionRecords[],
  applied: ReadonlyMap<number, number>,
): Promise<boolean> {
  const base = BASE_COLUMNS.length;
  const fieldTypes: ColumnType[] = [];
  const index = new Map<string, number>();
  for (const [key, column] of columns) {
    index.set(key, usable.has(key) ? base + fieldTypes.length : UNUSABLE);
    fieldTypes.push(column.type);
  }
  let total = 0;
  for (const { packed, partition } of parts) {
    const next = applied.get(partition) ?? 0;
    for (let i = 0; i < packed.ends.length; i++) if (packed.numbers[3 * i]! >= next) total++;
  }
  if (total === 0) return true;
  const { appender, buffers, emit } = await chunkAppender(connection, table, fieldTypes, total);
  try {
    const writer = new ChunkWriter(buffers, fieldTypes, index, emit);
    for (const { partition, packed } of parts) {
      if (!writer.partition(partition, packed, applied.get(partition) ?? 0)) return false;
    }
    writer.flush();
    appender.flushSync();
    return true;
  } finally {
    appender.closeSync();
  }
}

/** Fills the buffers one chunk at a time and hands each full chunk to `emit`. */
class ChunkWriter {
  private row = 0;
  /** written[c] === row once the row has a value in column c; the others are set to NULL. */
  private readonly written: Int32Array;
  /** Names met (as text) → their buffer index, SKIP or UNUSABLE. */
  private readonly slots = new Map<string, number>();

  constructor(
    private readonly buffers: readonly ColumnBuffer[],
    private readonly fieldTypes: readonly ColumnType[],
    private readonly index: ReadonlyMap<string, number>,
    private readonly emit: (count: number) => void,
  ) {
    this.written = new Int32Array(buffers.length).fill(-1);
  }

  /** Writes one partition's records from offset `next` on; false when one needs the general path. */
  partition(partition: number, packed: PackedRecords, next: number): boolean {
    const { ends, keys, numbers } = packed;
    const bytes = Buffer.from(packed.values.buffer, packed.values.byteOffset, packed.values.byteLength);
    const scanner = new RecordScanner(bytes);
    const [userId, time, ingestTime, partitionColumn, offset] = this.buffers as [
      ColumnBuffer,
      ColumnBuffer,
      ColumnBuffer,
      ColumnBuffer,
      ColumnBuffer,
    ];
    // The previous record's k-th name (where its bytes are) and its slot: records mostly list the
    // same names in the same order, so a name is matched by comparing bytes, without a string.
    const lastStart: number[] = [];
    const lastLength: number[] = [];
    const lastSlot: number[] = [];
    const separator = 20; // "\n,S\n," between values (./packed-records.ts)
    for (let i = 0; i < ends.length; i++) {
      if (numbers[3 * i]! < next) continue;
      const r = this.row;
      userId.setString(r, keys[i]!);
      setMicros(time, r, numbers[3 * i + 1]!);
      setMicros(ingestTime, r, numbers[3 * i + 2]!);
      partitionColumn.setInt32(r, partition);
      offset.setInt64(r, numbers[3 * i]!);
      const end = ends[i]!;
      let at = scanner.skipSpace(i === 0 ? 1 : ends[i - 1]! + separator, end);
      if (bytes[at] !== OPEN_BRACE) return false;
      at = scanner.skipSpace(at + 1, end);
      if (bytes[at] === CLOSE_BRACE) at++;
      else {
        for (let k = 0; ; k++) {
          if (bytes[at] !== QUOTE) return false;
          const keyAt = at;
          at = scanner.string(at, end, false);
          if (at === FAIL) return false;
          const nameStart = scanner.plainStart;
          const nameLength = scanner.plainEnd - nameStart;
          let c: number;
          if (scanner.plain && lastLength[k] === nameLength && sameBytes(bytes, lastStart[k]!, nameStart, nameLength)) {
            c = lastSlot[k]!;
          } else {
            const name = scanner.plain
              ? bytes.toString("latin1", nameStart, scanner.plainEnd)
              : keyText(bytes, keyAt, at);
            if (name === undefined) return false;
            c = this.slotOf(name);
            lastStart[k] = nameStart;
            lastLength[k] = scanner.plain ? nameLength : -1;
            lastSlot[k] = c;
          }
          if (c === UNUSABLE || (c >= 0 && this.written[c] === r)) return false;
          at = scanner.skipSpace(at, end);
          if (bytes[at] !== COLON) return false;
          at = scanner.skipSpace(at + 1, end);
          at = c === SKIP ? scanner.any(at, end, false) : this.cell(scanner, at, end, c, r);
          if (at === FAIL) return false;
          at = scanner.skipSpace(at, end);
          if (bytes[at] === COMMA) {
            at = scanner.skipSpace(at + 1, end);
            continue;
          }
          if (bytes[at] !== CLOSE_BRACE) return false;
          at++;
          break;
        }
      }
      if (scanner.skipSpace(at, end) !== end) return false;
      const buffers = this.buffers;
      const written = this.written;
      for (let c = BASE_COLUMNS.length; c < buffers.length; c++) if (written[c] !== r) buffers[c]!.setNull(r);
      this.row++;
      if (this.row === buffers[0]!.capacity) this.flush();
    }
    return true;
  }

  /** Emits the rows written so far as one chunk and starts the next. */
  flush(): void {
    if (this.row === 0) return;
    this.emit(this.row);
    for (const b of this.buffers) b.reset();
    this.written.fill(-1);
    this.row = 0;
  }

  private slotOf(name: string): number {
    let slot = this.slots.get(name);
    if (slot === undefined) {
      slot = isBaseColumn(name) ? SKIP : (this.index.get(columnKey(name)) ?? UNUSABLE);
      this.slots.set(name, slot);
    }
    return slot;
  }

  /** Reads the value at `at` into column c of row r; FAIL when it does not fit the column as it is. */
  private cell(scanner: RecordScanner, at: number, end: number, c: number, r: number): number {
    const type = this.fieldTypes[c - BASE_COLUMNS.length]!;
    const buffer = this.buffers[c]!;
    this.written[c] = r;
    if (scanner.bytes[at] === QUOTE && type === "VARCHAR") {
      // The common string cell: short ASCII copied from the record's bytes, no string made.
      const after = scanner.string(at, end, false);
      if (after === FAIL) return FAIL;
      const length = scanner.plainEnd - scanner.plainStart;
      if (scanner.plain && length <= INLINE_BYTES) {
        buffer.setInlineAscii(r, scanner.bytes, scanner.plainStart, length);
        return after;
      }
      return scanner.string(at, end, true) === FAIL ? FAIL : this.set(buffer, r, scanner.value, type, after);
    }
    const after = scanner.any(at, end, true);
    return after === FAIL ? FAIL : this.set(buffer, r, scanner.value, type, after);
  }

  private set(buffer: ColumnBuffer, r: number, value: unknown, type: ColumnType, after: number): number {
    if (!fits(value, type)) return FAIL;
    setCell(buffer, r, value, type);
    return after;
  }
}

function sameBytes(bytes: Buffer, a: number, b: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (bytes[a + i] !== bytes[b + i]) return false;
  return true;
}

/** A name with escapes or non-ASCII, as JSON.parse gives it; undefined when it is not a valid string. */
function keyText(bytes: Buffer, from: number, to: number): string | undefined {
  try {
    return JSON.parse(bytes.toString("utf8", from, to)) as string;
  } catch {
    return undefined;
  }
}
