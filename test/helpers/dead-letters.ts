/** A real DeadLetters on a test log, with the catalogue reduced to the log's own streams. */
import type { StreamDefinition } from "../../src/control/types.js";
import { DeadLetters } from "../../src/core/dead-letters.js";
import type { EventLog, LogRecord } from "../../src/log/types.js";

export interface TestDeadLetters {
  readonly sink: DeadLetters;
  /** The letters in `<stream>_dead_letter`, parsed, in order. */
  letters(stream: string): Promise<Record<string, unknown>[]>;
}

export function deadLettersOn(log: EventLog): TestDeadLetters {
  const definition = (name: string): StreamDefinition => ({
    name,
    partitions: 1,
    timestampField: "received_at",
    createdAt: new Date(0).toISOString(),
  });
  const sink = new DeadLetters({
    log,
    now: () => Date.now(),
    streams: {
      get: async (name) => (log.hasStream(name) ? definition(name) : undefined),
      create: async ({ name }) => {
        await log.createStream(name, { partitions: 1 });
        return definition(name);
      },
    },
  });
  return {
    sink,
    async letters(stream) {
      const name = `${stream}_dead_letter`;
      if (!log.hasStream(name)) return [];
      const records: LogRecord[] = await log.read(name, 0, 0, { maxRecords: 10_000 });
      return records.map((r) => JSON.parse(new TextDecoder().decode(r.value)) as Record<string, unknown>);
    },
  };
}

/** A JSON object nested `depth` levels deep under `d`, as a record value. */
export function deepValue(user: string, depth = 20_000): Uint8Array {
  return new TextEncoder().encode(`{"user_id":"${user}","d":${'{"a":'.repeat(depth)}1${"}".repeat(depth)}}`);
}
