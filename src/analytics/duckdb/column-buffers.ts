/**
 * Column values of one DuckDB data chunk, built in plain typed arrays and copied into the chunk's
 * vectors with one native copy per column (plus one call per string too long to inline).
 *
 * Hot path of the analytics loader. The node-api vector classes cost several native calls and
 * BigInt allocations per cell: every VARCHAR cell is a native call at flush, every BIGINT and
 * TIMESTAMPTZ cell a BigInt, every validity update two more (bench/analytics-apply.ts). Here a
 * cell is a few typed-array stores: 64-bit integers are written as two 32-bit halves, and ASCII
 * strings of up to 12 bytes are written in DuckDB's inlined `string_t` layout (a little-endian
 * uint32 length then the bytes, zero-padded to 16), which is how DuckDB itself stores them.
 * Longer or non-ASCII strings go through `vector_assign_string_element` after the copy, so
 * DuckDB owns (and checks) their bytes.
 */

import type { DuckDBDataChunk } from "@duckdb/node-api";
import duckdb from "@duckdb/node-bindings";

/** How a column's cells are laid out in the vector. */
export type CellKind = "varchar" | "int32" | "int64" | "double" | "boolean";

const WIDTH: Readonly<Record<CellKind, number>> = { varchar: 16, int32: 4, int64: 8, double: 8, boolean: 1 };

const TWO_32 = 4_294_967_296;
const INT64_LIMIT = 2 ** 63;
/** DuckDB's `string_t` keeps strings of up to this many bytes inline, with no heap pointer. */
const INLINE_BYTES = 12;

export class ColumnBuffer {
  private readonly bytes: Uint8Array;
  private readonly u32: Uint32Array;
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly i64: BigInt64Array;
  /** One bit per row, set when the row holds a value (DuckDB's validity mask layout on little-endian hosts). */
  private readonly validity: Uint32Array;
  private hasNull = false;
  /** Strings not inlined: row → string, assigned through DuckDB after the copy. */
  private readonly longRows: number[] = [];
  private readonly longStrings: string[] = [];

  constructor(
    readonly kind: CellKind,
    readonly capacity: number,
  ) {
    const buffer = new ArrayBuffer(Math.ceil((capacity * WIDTH[kind]) / 8) * 8);
    this.bytes = new Uint8Array(buffer);
    this.u32 = new Uint32Array(buffer, 0, buffer.byteLength >> 2);
    this.i32 = new Int32Array(buffer, 0, buffer.byteLength >> 2);
    this.f64 = new Float64Array(buffer, 0, buffer.byteLength >> 3);
    this.i64 = new BigInt64Array(buffer, 0, buffer.byteLength >> 3);
    this.validity = new Uint32Array(Math.ceil(capacity / 64) * 2);
  }

  /** Empties the buffer for the next chunk: every row valid, string slots zeroed. */
  reset(): void {
    if (this.hasNull) this.validity.fill(0xffffffff);
    this.hasNull = false;
    if (this.kind === "varchar") this.bytes.fill(0);
    this.longRows.length = 0;
    this.longStrings.length = 0;
  }

  setNull(row: number): void {
    if (!this.hasNull) {
      this.validity.fill(0xffffffff);
      this.hasNull = true;
    }
    this.validity[row >>> 5]! &= ~(1 << (row & 31));
  }

  setString(row: number, s: string): void {
    const n = s.length;
    if (n <= INLINE_BYTES) {
      const at = row * 16;
      const bytes = this.bytes;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        bytes[at + 4 + i] = c;
      }
      if (i === n) {
        this.u32[row * 4] = n;
        return;
      }
      bytes.fill(0, at + 4, at + 4 + i);
    }
    this.longRows.push(row);
    this.longStrings.push(s);
  }

  /**
   * `setString` for a string of at most 12 ASCII bytes given as bytes (a JSON string's text with
   * no escape): copied as they are, with no JavaScript string made.
   */
  setInlineAscii(row: number, source: Uint8Array, start: number, length: number): void {
    const at = row * 16 + 4;
    const bytes = this.bytes;
    this.u32[row * 4] = length;
    for (let i = 0; i < length; i++) bytes[at + i] = source[start + i]!;
  }

  setInt32(row: number, v: number): void {
    this.i32[row] = v;
  }

  /** An integral number as int64; throws when out of range, as DuckDB's own vectors do. */
  setInt64(row: number, v: number): void {
    if (v >= INT64_LIMIT || v < -INT64_LIMIT) throw new RangeError(`${v} is out of int64 range`);
    // Exact for every integral double: the low half modulo 2^32, the high half by floor division.
    this.u32[row * 2] = v >>> 0;
    this.i32[row * 2 + 1] = Math.floor(v / TWO_32);
  }

  setBigInt64(row: number, v: bigint): void {
    if (BigInt.asIntN(64, v) !== v) throw new RangeError(`${v} is out of int64 range`);
    this.i64[row] = v;
  }

  setDouble(row: number, v: number): void {
    this.f64[row] = v;
  }

  setBoolean(row: number, v: boolean): void {
    this.bytes[row] = v ? 1 : 0;
  }

  /** Copies the first `count` rows into the chunk's vector `column`. */
  copyTo(chunk: DuckDBDataChunk, column: number, count: number): void {
    const vector = duckdb.data_chunk_get_vector(chunk.chunk, column);
    duckdb.copy_data_to_vector(vector, 0, this.bytes.buffer as ArrayBuffer, 0, count * WIDTH[this.kind]);
    if (this.hasNull) {
      duckdb.vector_ensure_validity_writable(vector);
      duckdb.copy_data_to_vector_validity(vector, 0, this.validity.buffer as ArrayBuffer, 0, Math.ceil(count / 64) * 8);
    }
    const rows = this.longRows;
    const strings = this.longStrings;
    for (let i = 0; i < rows.length; i++) duckdb.vector_assign_string_element(vector, rows[i]!, strings[i]!);
  }
}
