/**
 * Helpers of the tests where several runners share one log, each owning some slots (issue 19):
 * what a stream holds, as a hash independent of which runner wrote it, and waiting for it.
 */
import { createHash, randomBytes } from "node:crypto";
import { Admin } from "@platformatic/kafka";
import type { EventLog, LogRecord } from "../../src/log/types.js";
import { kafkaBrokers } from "./kafka.js";
import { until } from "./poll.js";
import { onServer, postgresServerUrl, withDatabase } from "./postgres.js";

const decoder = new TextDecoder();

/** Every record of `stream`, partition by partition. */
export async function readStream(log: EventLog, stream: string): Promise<LogRecord[]> {
  const ends = await log.endOffsets(stream);
  const starts = await log.startOffsets(stream);
  const out: LogRecord[] = [];
  for (let p = 0; p < ends.length; p++) {
    for (let at = starts[p] ?? 0; at < (ends[p] as number); ) {
      const records = await log.read(stream, p, at, { maxRecords: 5000 });
      if (records.length === 0) break;
      out.push(...records);
      at = (records[records.length - 1] as LogRecord).offset + 1;
    }
  }
  return out;
}

/** The records' partitions, keys, timestamps and values, sorted, hashed: equal for equal contents, whoever appended them. */
export function contentHash(records: readonly LogRecord[]): { hash: string; count: number } {
  const lines = records.map((r) => JSON.stringify([r.partition, r.key, r.timestamp, decoder.decode(r.value)])).sort();
  return { hash: createHash("sha256").update(lines.join("\n")).digest("hex"), count: lines.length };
}

/** Resolves once `stream` holds `count` records (gives up after 15 s); then checks for a while that no more arrive. */
export async function settleAt(log: EventLog, stream: string, count: number): Promise<void> {
  // Records, not end offsets: on Kafka, transaction markers take offsets too.
  const total = async () => (await readStream(log, stream)).length;
  await until(total, (n) => n >= count, `${stream} to hold ${count} records`);
  await new Promise((r) => setTimeout(r, 300));
  const now = await total();
  if (now !== count) throw new Error(`${stream} holds ${now} records, expected ${count}`);
}

/** A fresh database on the test PostgreSQL server, dropped by the returned function. */
export async function scratchDatabase(prefix: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const server = postgresServerUrl();
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  await onServer(server, `CREATE DATABASE ${name}`);
  return {
    url: withDatabase(server, name),
    drop: () => onServer(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/** Deletes every topic of the test broker whose name starts with `prefix` (a run's, internal ones included). */
export async function deleteTopics(prefix: string): Promise<void> {
  const admin = new Admin({ clientId: "runnel-test-cleanup", bootstrapBrokers: kafkaBrokers().split(",") });
  try {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } finally {
    await admin.close();
  }
}
