/**
 * What bench/ingest.ts checks its read-back with: an order-independent digest of a multiset of
 * events, the sum modulo 2^64 of a 64-bit hash of each event's canonical fields (with the
 * partition the log placed it in). A sum, not a xor, so an event written twice does not cancel
 * out; the count is kept beside it. Computed the same way, in JS, over what the bench sent and
 * got acknowledged, over the log's records and over the analytics table's rows, so a row lost,
 * duplicated, misplaced or with any field changed makes the digests differ.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import type { EventLog } from "../../src/log/types.js";

/** The fields of one benchmark event, as sent, as stored in the log, or as read from the table. */
export interface BenchEvent {
  readonly partition: number;
  readonly user_id: string;
  readonly event_type: string;
  readonly amount: number;
  readonly page: string;
  /** A JSON integer: a number from JSON, a bigint from DuckDB's BIGINT. */
  readonly ts: number | bigint;
}

const TWO_32 = 4_294_967_296;

/** The text every side hashes: numbers in their shortest round-trip form, fields split by NUL. */
export function canonicalEvent(e: BenchEvent): string {
  return `${e.partition}\u0000${e.user_id}\u0000${e.event_type}\u0000${String(e.amount)}\u0000${e.page}\u0000${String(e.ts)}`;
}

/**
 * A 64-bit hash of a string as two unsigned 32-bit halves (two multiplicative lanes mixed into
 * each other at the end, as cyrb53 does, keeping all 64 bits). Not cryptographic: it only has to
 * make an accidental corruption show.
 */
export function hash64(text: string): [hi: number, lo: number] {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return [h1 >>> 0, h2 >>> 0];
}

export class EventDigest {
  count = 0;
  private hi = 0;
  private lo = 0;

  add(event: BenchEvent): void {
    const [hi, lo] = hash64(canonicalEvent(event));
    this.addHash(hi, lo, 1);
  }

  /** Adds another digest's events (e.g. one per request body, summed per acknowledgement). */
  addDigest(other: EventDigest): void {
    this.addHash(other.hi, other.lo, other.count);
  }

  equals(other: EventDigest): boolean {
    return this.count === other.count && this.hi === other.hi && this.lo === other.lo;
  }

  /** e.g. "7103000 events, 0x1f…": what a failure message shows of each side. */
  toString(): string {
    const hex = (n: number) => n.toString(16).padStart(8, "0");
    return `${this.count} events, 0x${hex(this.hi)}${hex(this.lo)}`;
  }

  private addHash(hi: number, lo: number, count: number): void {
    const low = this.lo + lo;
    this.lo = low % TWO_32;
    this.hi = (this.hi + hi + Math.floor(low / TWO_32)) % TWO_32;
    this.count += count;
  }
}

/** A parsed event as the log holds it (its user_id spliced in or named), with its partition. */
export function benchEventOf(partition: number, value: unknown): BenchEvent {
  const v = value as Record<string, unknown>;
  return {
    partition,
    user_id: v.user_id as string,
    event_type: v.event_type as string,
    amount: v.amount as number,
    page: v.page as string,
    ts: v.ts as number,
  };
}

/** Every record of a stream in the log, parsed from its stored bytes. */
export async function digestOfLog(
  log: Pick<EventLog, "read" | "startOffsets" | "endOffsets">,
  stream: string,
): Promise<EventDigest> {
  const digest = new EventDigest();
  const [starts, ends] = [await log.startOffsets(stream), await log.endOffsets(stream)];
  for (const [partition, end] of ends.entries()) {
    let at = starts[partition] ?? 0;
    while (at < end) {
      const records = await log.read(stream, partition, at, { maxRecords: 50_000 });
      if (records.length === 0) break;
      for (const r of records) digest.add(benchEventOf(partition, JSON.parse(Buffer.from(r.value).toString("utf8"))));
      at = records[records.length - 1]!.offset + 1;
    }
  }
  return digest;
}

/** Every row of a stream's analytics table, read through DuckDB directly. */
export async function digestOfTable(connection: DuckDBConnection, table: string): Promise<EventDigest> {
  const digest = new EventDigest();
  const result = await connection.stream(
    `SELECT "_partition", user_id, event_type, amount, page, ts FROM "${table.replaceAll('"', '""')}"`,
  );
  for (;;) {
    const chunk = await result.fetchChunk();
    if (chunk === null || chunk.rowCount === 0) break;
    for (const [partition, user_id, event_type, amount, page, ts] of chunk.getRows()) {
      digest.add({
        partition: Number(partition),
        user_id: user_id as string,
        event_type: event_type as string,
        amount: amount as number,
        page: page as string,
        ts: ts as bigint,
      });
    }
  }
  return digest;
}
