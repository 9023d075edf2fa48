/**
 * Where consumers put the records they can never process: the stream's dead-letter stream
 * (`<stream>_dead_letter`, the one sources use, src/sources/deliver.ts), one letter per record
 * with the error, the consumer and the record's position, then the consumer moves past it.
 *
 * Exactly once across restarts: a letter carries the id `<consumer>@<partition>:<offset>` as its
 * output-id header, and the ids already in the dead-letter stream are read back before the first
 * letter to it. A consumer that crashes after the letter is durable but before its own
 * checkpoint or offset covers the skip reads the record again, fails again, finds the letter
 * and moves on without a second one; a letter is written before the consumer moves past its
 * record, so none is lost.
 *
 * @example
 * const letters = new DeadLetters({ log, streams, now: () => Date.now() });
 * await letters.send([{ consumer: "rule/fraud", stream: "tx", record, error }]);
 */
import type { EventLog, FencedWriter, LogRecord } from "../log/types.js";
import { DEAD_LETTER_SUFFIX, type StreamAccess } from "../sources/deliver.js";
import { collectOutputIds, HEADER_OUTPUT_ID } from "../stream/headers.js";
import { errorText } from "./record-fault.js";
import { SerialQueue } from "./serial-queue.js";

/** Letters keep at most this much of the record (as deliver.ts keeps of a refused payload). */
const MAX_PAYLOAD_BYTES = 16_384;

export interface DeadLetter {
  /** `rule/<name>`, `pipeline/<name>`, `analytics/<stream>`. */
  readonly consumer: string;
  readonly stream: string;
  readonly record: LogRecord;
  readonly error: unknown;
}

/**
 * What a consumer is given: `send` resolves once every letter is durable (or was already), the
 * letters of one stream in one append. With `writer` (a task's fenced writer, cluster mode) they
 * are appended through it, so an instance that lost the task cannot write them late.
 */
export interface DeadLetterSink {
  send(letters: readonly DeadLetter[], writer?: FencedWriter): Promise<void>;
}

export interface DeadLettersOptions {
  readonly log: EventLog;
  /** Creates the dead-letter stream in the catalogue, so it is listed and queryable like the sources' ones. */
  readonly streams: StreamAccess;
  readonly now: () => number;
  /** A new letter was written (metrics, operator alert); not called for one found already written. */
  readonly onDeadLetter?: (letter: DeadLetter) => void;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

export class DeadLetters implements DeadLetterSink {
  /** Per dead-letter stream, the letter ids in it (read once, then kept up to date). */
  private readonly written = new Map<string, Promise<Set<string>>>();
  /** One send at a time, so the check and the append of an id cannot interleave. */
  private readonly queue = new SerialQueue();

  constructor(private readonly options: DeadLettersOptions) {}

  send(letters: readonly DeadLetter[], writer?: FencedWriter): Promise<void> {
    if (letters.length === 0) return Promise.resolve();
    return this.queue.run(() => this.write(letters, writer));
  }

  private async write(letters: readonly DeadLetter[], writer: FencedWriter | undefined): Promise<void> {
    const byStream = new Map<string, DeadLetter[]>();
    for (const letter of letters) {
      const name = `${letter.stream}${DEAD_LETTER_SUFFIX}`;
      const group = byStream.get(name);
      if (group === undefined) byStream.set(name, [letter]);
      else group.push(letter);
    }
    for (const [name, group] of byStream) await this.writeTo(name, group, writer);
  }

  private async writeTo(name: string, letters: readonly DeadLetter[], writer: FencedWriter | undefined): Promise<void> {
    const ids = await this.idsOf(name);
    const at = this.options.now();
    const fresh = new Map<string, DeadLetter>();
    for (const letter of letters) {
      const id = idOf(letter);
      if (!ids.has(id)) fresh.set(id, letter);
    }
    if (fresh.size === 0) return;
    await (writer ?? this.options.log).append(
      name,
      [...fresh].map(([id, letter]) => {
        const value = letterValue(letter, at);
        return {
          key: value.user_id,
          timestamp: at,
          value: encoder.encode(JSON.stringify(value)),
          headers: { [HEADER_OUTPUT_ID]: id },
        };
      }),
    );
    for (const [id, letter] of fresh) {
      ids.add(id);
      this.options.onDeadLetter?.(letter);
    }
  }

  private idsOf(name: string): Promise<Set<string>> {
    let ids = this.written.get(name);
    if (ids === undefined) {
      ids = this.load(name);
      this.written.set(name, ids);
      // A failed read is tried again by the next letter.
      ids.catch(() => this.written.delete(name));
    }
    return ids;
  }

  private async load(name: string): Promise<Set<string>> {
    const { log, streams } = this.options;
    if (!(await streams.get(name))) {
      try {
        await streams.create({ name, partitions: 1, timestampField: "received_at" });
      } catch (e) {
        // Created meanwhile (by a source or another instance).
        if (!(await streams.get(name))) throw e;
      }
    }
    const ids = new Set<string>();
    await collectOutputIds(log, name, await log.startOffsets(name), ids);
    return ids;
  }
}

function idOf({ consumer, record }: DeadLetter): string {
  return `${consumer}@${record.partition}:${record.offset}`;
}

function letterValue({ consumer, stream, record, error }: DeadLetter, at: number) {
  const payload = record.value.length > MAX_PAYLOAD_BYTES ? record.value.subarray(0, MAX_PAYLOAD_BYTES) : record.value;
  return {
    // Not a user's event: an account name cannot contain ":", so role `user` never sees these.
    user_id: `consumer:${consumer}`,
    consumer,
    stream,
    partition: record.partition,
    offset: record.offset,
    key: record.key,
    event_time: new Date(record.timestamp).toISOString(),
    reason: errorText(error),
    payload: decoder.decode(payload),
    received_at: new Date(at).toISOString(),
  };
}
