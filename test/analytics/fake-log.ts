/** An in-memory EventLog with just enough behaviour for the analytics loader's tests. */
import type {
  AppendRecord,
  EventLog,
  LogRecord,
  ReadOptions,
  RecordPosition,
  StreamLogOptions,
} from "../../src/log/types.js";
import { partitionForKey } from "../../src/log/types.js";

export class FakeEventLog implements EventLog {
  private readonly streams = new Map<string, LogRecord[][]>();
  private readonly listeners = new Map<string, Set<() => void>>();
  /** Makes the next `read` calls fail, to exercise retries. */
  failReads = 0;
  reads = 0;

  async open(): Promise<void> {}
  async close(): Promise<void> {}

  async createStream(stream: string, options: StreamLogOptions): Promise<void> {
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
    return this.parts(stream).length;
  }

  async append(stream: string, records: readonly AppendRecord[]): Promise<RecordPosition[]> {
    const parts = this.parts(stream);
    const positions = records.map((r) => {
      const partition = partitionForKey(r.key, parts.length);
      const log = parts[partition]!;
      const offset = log.length;
      log.push({ partition, offset, key: r.key, timestamp: r.timestamp, ingestTime: Date.now(), value: r.value });
      return { partition, offset };
    });
    for (const l of this.listeners.get(stream) ?? []) queueMicrotask(l);
    return positions;
  }

  async read(stream: string, partition: number, offset: number, options: ReadOptions = {}): Promise<LogRecord[]> {
    this.reads++;
    if (this.failReads > 0) {
      this.failReads--;
      throw new Error("injected read failure");
    }
    const log = this.parts(stream)[partition] ?? [];
    return log.slice(offset, offset + (options.maxRecords ?? 1000));
  }

  async startOffsets(stream: string): Promise<number[]> {
    return this.parts(stream).map(() => 0);
  }
  async endOffsets(stream: string): Promise<number[]> {
    return this.parts(stream).map((p) => p.length);
  }
  async offsetsForTime(stream: string, timestamp: number): Promise<number[]> {
    return this.parts(stream).map((p) => {
      const i = p.findIndex((r) => r.timestamp >= timestamp);
      return i < 0 ? p.length : i;
    });
  }
  async commitOffsets(): Promise<void> {}
  async committedOffsets(): Promise<Map<number, number>> {
    return new Map();
  }

  onAppend(stream: string, listener: () => void): () => void {
    let set = this.listeners.get(stream);
    if (!set) {
      set = new Set();
      this.listeners.set(stream, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  private parts(stream: string): LogRecord[][] {
    const parts = this.streams.get(stream);
    if (!parts) throw new Error(`no stream ${stream}`);
    return parts;
  }
}

export function event(key: string, fields: Record<string, unknown>, timestamp = Date.now()): AppendRecord {
  return { key, timestamp, value: new TextEncoder().encode(JSON.stringify({ user_id: key, ...fields })) };
}
