/**
 * An EventLog decorator that times every append, so append latency is measured the same way for
 * every log implementation (local or Kafka) without the log knowing about metrics.
 */
import type {
  AppendRecord,
  EventLog,
  EventLogCapabilities,
  LogRecord,
  ReadOptions,
  RecordPosition,
  StreamLogOptions,
} from "../log/types.js";

/** Told the duration (seconds) and outcome of each append. */
export type AppendObserver = (seconds: number, outcome: "ok" | "error") => void;

export class TimedEventLog implements EventLog {
  constructor(
    private readonly inner: EventLog,
    private readonly observe: AppendObserver,
  ) {}

  get capabilities(): EventLogCapabilities | undefined {
    return this.inner.capabilities;
  }

  ping(): Promise<boolean> {
    return this.inner.ping?.() ?? Promise.resolve(true);
  }

  async append(stream: string, records: readonly AppendRecord[]): Promise<RecordPosition[]> {
    // hrtime, not the injected Clock: this measures real latency, which a test clock cannot fake.
    const start = process.hrtime.bigint();
    try {
      const positions = await this.inner.append(stream, records);
      this.observe(elapsed(start), "ok");
      return positions;
    } catch (e) {
      this.observe(elapsed(start), "error");
      throw e;
    }
  }

  open(): Promise<void> {
    return this.inner.open();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  createStream(stream: string, options: StreamLogOptions): Promise<void> {
    return this.inner.createStream(stream, options);
  }
  deleteStream(stream: string): Promise<void> {
    return this.inner.deleteStream(stream);
  }
  hasStream(stream: string): boolean {
    return this.inner.hasStream(stream);
  }
  partitionCount(stream: string): number {
    return this.inner.partitionCount(stream);
  }
  read(stream: string, partition: number, offset: number, options?: ReadOptions): Promise<LogRecord[]> {
    return this.inner.read(stream, partition, offset, options);
  }
  startOffsets(stream: string): Promise<number[]> {
    return this.inner.startOffsets(stream);
  }
  endOffsets(stream: string): Promise<number[]> {
    return this.inner.endOffsets(stream);
  }
  offsetsForTime(stream: string, timestamp: number): Promise<number[]> {
    return this.inner.offsetsForTime(stream, timestamp);
  }
  commitOffsets(group: string, stream: string, offsets: ReadonlyMap<number, number>): Promise<void> {
    return this.inner.commitOffsets(group, stream, offsets);
  }
  committedOffsets(group: string, stream: string): Promise<Map<number, number>> {
    return this.inner.committedOffsets(group, stream);
  }
  onAppend(stream: string, listener: () => void): () => void {
    return this.inner.onAppend(stream, listener);
  }
}

function elapsed(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}
