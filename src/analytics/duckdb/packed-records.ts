/**
 * Log records packed by the event loop for the analytics worker (./worker-store.ts →
 * ./store-worker.ts): one transferred buffer of values plus typed arrays, turned into rows there.
 *
 * The values are laid out as one JSON array, each followed by a sentinel number chosen at random
 * per pack: `[v0\n,S\n,v1\n,S\n,…,vN-1\n,S]`, so the worker decodes the buffer once and calls
 * JSON.parse once per batch instead of once per record (about 40% less CPU per record on ~90-byte
 * events than a decode and a parse each). One parse is only trusted when it yields exactly
 * [value, S] pairs: a record that is not one whole JSON value (another writer's bytes) shifts or
 * swallows a sentinel, which it cannot reproduce without knowing S, and the batch is then parsed
 * record by record as before. Either way every record gets exactly the fields `fieldsOf` gives it.
 */
import { randomInt } from "node:crypto";
import type { LogRecord } from "../../log/types.js";
import { fieldsOfText } from "../rows.js";
import type { AnalyticsRow } from "../types.js";

export interface PackedRecords {
  /** `[`, then each value followed by `\n,S\n,` (the last by `\n,S]`), S the sentinel's digits. */
  readonly values: Uint8Array;
  /** ends[i]: where record i's value ends in `values`. */
  readonly ends: Uint32Array;
  /** The number written after every value; 16 digits, so its text has a fixed length. */
  readonly sentinel: number;
  readonly keys: string[];
  /** offset, timestamp, ingestTime of record i at 3i, 3i+1, 3i+2. */
  readonly numbers: Float64Array;
}

/** 16 digits whatever the random part (48 bits, randomInt's limit), and below 2^53, so it parses back exactly. */
const SENTINEL_BASE = 1e15;
const SENTINEL_RANDOM = 2 ** 48 - 1;
/** "\n," + 16 digits + "\n,": the bytes between two values. */
const SEPARATOR_BYTES = 20;

export function packRecords(records: readonly LogRecord[]): PackedRecords {
  const sentinel = SENTINEL_BASE + randomInt(SENTINEL_RANDOM);
  // A raw newline on either side: no string token can run across it unnoticed (JSON strings
  // may not hold a raw control character), and no number or literal can join it.
  const separator = Buffer.from(`\n,${sentinel}\n,`, "latin1");
  let size = 1 + Math.max(2, records.length * SEPARATOR_BYTES);
  for (const r of records) size += r.value.byteLength;
  const values = new Uint8Array(size);
  const ends = new Uint32Array(records.length);
  const keys: string[] = new Array(records.length);
  const numbers = new Float64Array(records.length * 3);
  values[0] = 0x5b; // [
  let at = 1;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    values.set(r.value, at);
    at += r.value.byteLength;
    ends[i] = at;
    values.set(separator, at);
    at += SEPARATOR_BYTES;
    keys[i] = r.key;
    numbers[3 * i] = r.offset;
    numbers[3 * i + 1] = r.timestamp;
    numbers[3 * i + 2] = r.ingestTime;
  }
  // The last separator's trailing "\n," becomes "]\n", the array's end ("[]\n" for no records).
  values[size - 2] = 0x5d; // ]
  values[size - 1] = 0x0a;
  return { values, ends, sentinel, keys, numbers };
}

export function unpackRecords(partition: number, packed: PackedRecords): AnalyticsRow[] {
  const { ends, keys, numbers } = packed;
  const n = ends.length;
  // One Buffer over all values: no view object per record.
  const bytes = Buffer.from(packed.values.buffer, packed.values.byteOffset, packed.values.byteLength);
  const fields = parsedAtOnce(bytes, packed.sentinel, n);
  const rows: AnalyticsRow[] = new Array(n);
  for (let i = 0; i < n; i++) {
    rows[i] = {
      partition,
      offset: numbers[3 * i]!,
      userId: keys[i]!,
      time: numbers[3 * i + 1]!,
      ingestTime: numbers[3 * i + 2]!,
      fields:
        fields === undefined
          ? fieldsOfText(bytes.toString("utf8", i === 0 ? 1 : ends[i - 1]! + SEPARATOR_BYTES, ends[i]!))
          : asFields(fields[2 * i]),
    };
  }
  return rows;
}

/** The parsed array when it holds exactly n values each followed by the sentinel; else undefined. */
function parsedAtOnce(bytes: Buffer, sentinel: number, n: number): unknown[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 * n) return undefined;
  for (let i = 1; i < parsed.length; i += 2) if (parsed[i] !== sentinel) return undefined;
  return parsed;
}

/** As fieldsOfText: a value that is not a JSON object has no fields. */
function asFields(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}
