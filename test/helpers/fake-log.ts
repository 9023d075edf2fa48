import { RunnelError } from "../../src/core/errors.js";
import type {
  AppendRecord,
  EventLog,
  LogRecord,
  ReadOptions,
  RecordPosition,
  StreamLogOptions,
} from "../../src/log/types.js";
import { partitionForKey } from "../../src/log/types.js";

type StoredRecord = LogRecord;

/**
 * An in-memory EventLog for unit tests of the stream runtime, keeping record headers as both real
 * logs do. Faults are
 * injected by name: `failNext("commitOffsets")` makes the next call throw after nothing was done,
 * which is what a crash between "outputs durable" and "offsets committed" looks like.
 */
export class FakeLog implements EventLog {
  private readonly streams = new Map<string, StoredRecord[][]>();
  private readonly commits = new Map<string, Map<number, number>>();
  private readonly listeners = new Map<string, Set<() => void>>();
  /** Per method: how many calls still succeed before the next one fails, and how many fail then. */
  private readonly failures = new Map<string, { after: number; times: number }>();
  /** The append time stamped on records; undefined: the wall clock, as the real logs stamp it. */
  now: number | undefined;

  /** After `after` calls that succeed, the next `times` calls (default 1) fail. */
  failNext(method: "append" | "commitOffsets", options: { after?: number; times?: number } = {}): void {
    this.failures.set(method, { after: options.after ?? 0, times: options.times ?? 1 });
  }

  private maybeFail(method: string): void {
    const f = this.failures.get(method);
    if (f === undefined) return;
    if (f.after > 0) {
      f.after--;
      return;
    }
    if (--f.times === 0) this.failures.delete(method);
    throw new Error(`injected failure in ${method}`);
  }

  private partitions(stream: string): StoredRecord[][] {
    const s = this.streams.get(stream);
    if (s === undefined) throw new RunnelError("stream_not_found", `stream ${stream} does not exist`);
    return s;
  }

  async open(): Promise<void> {}
  async close(): Promise<void> {}

  async createStream(stream: string, options: StreamLogOptions): Promise<void> {
    if (this.streams.has(stream)) throw new RunnelError("conflict", `stream ${stream} exists`);
    this.streams.set(
      stream,
      Array.from({ length: options.partitions }, () => []),
    );
  }
  async deleteStream(stream: string): Promise<void> {
    this.streams.delete(stream);
  }
  hasStream(stream: string): boolean {
    return this.streams.has(stream);
  }
  partitionCount(stream: string): number {
    return this.partitions(stream).length;
  }

  async append(stream: string, records: readonly AppendRecord[]): Promise<RecordPosition[]> {
    this.maybeFail("append");
    const parts = this.partitions(stream);
    const positions = records.map((r) => {
      const partition = partitionForKey(r.key, parts.length);
      const log = parts[partition] as StoredRecord[];
      const headers = r.headers;
      const stored: StoredRecord = {
        partition,
        offset: log.length,
        key: r.key,
        timestamp: r.timestamp,
        ingestTime: this.now ?? Date.now(),
        value: r.value,
        ...(headers !== undefined && { headers }),
      };
      log.push(stored);
      return { partition, offset: stored.offset };
    });
    for (const l of this.listeners.get(stream) ?? []) queueMicrotask(l);
    return positions;
  }

  /** Reads so far, and how many of the next reads fail (a log that is briefly unavailable). */
  reads = 0;
  failReads = 0;

  async read(stream: string, partition: number, offset: number, options?: ReadOptions): Promise<LogRecord[]> {
    this.reads++;
    if (this.failReads > 0) {
      this.failReads--;
      throw new RunnelError("not_ready", "injected read failure");
    }
    const log = this.partitions(stream)[partition] ?? [];
    return log.slice(offset, offset + (options?.maxRecords ?? 1000));
  }
  async startOffsets(stream: string): Promise<number[]> {
    return this.partitions(stream).map(() => 0);
  }
  async endOffsets(stream: string): Promise<number[]> {
    return this.partitions(stream).map((p) => p.length);
  }
  async offsetsForTime(stream: string, timestamp: number): Promise<number[]> {
    return this.partitions(stream).map((p) => {
      const i = p.findIndex((r) => r.timestamp >= timestamp);
      return i === -1 ? p.length : i;
    });
  }
  async commitOffsets(group: string, stream: string, offsets: ReadonlyMap<number, number>): Promise<void> {
    this.maybeFail("commitOffsets");
    const key = `${group}\u0000${stream}`;
    const current = this.commits.get(key) ?? new Map<number, number>();
    for (const [p, o] of offsets) current.set(p, o);
    this.commits.set(key, current);
  }
  async committedOffsets(group: string, stream: string): Promise<Map<number, number>> {
    return new Map(this.commits.get(`${group}\u0000${stream}`) ?? []);
  }
  onAppend(stream: string, listener: () => void): () => void {
    const set = this.listeners.get(stream) ?? new Set();
    set.add(listener);
    this.listeners.set(stream, set);
    return () => set.delete(listener);
  }

  /** Every record of a stream, partition by partition, values decoded. */
  dump(stream: string): { partition: number; offset: number; key: string; timestamp: number; value: unknown }[] {
    return this.partitions(stream).flatMap((p) =>
      p.map((r) => ({
        partition: r.partition,
        offset: r.offset,
        key: r.key,
        timestamp: r.timestamp,
        value: JSON.parse(new TextDecoder().decode(r.value)),
      })),
    );
  }
}
