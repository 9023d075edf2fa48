/**
 * Ingestion seams. Every source (HTTP today; WebSocket, MQTT, Kafka topics and files later)
 * hands raw events to the one `Ingestor`, which validates, stamps and appends them; a `Source`
 * is anything that produces events and can be started and stopped.
 */
import type { Role } from "../control/types.js";
import type { RecordPosition } from "../log/types.js";

/** Who is ingesting. */
export interface Principal {
  readonly userId: string;
  readonly username: string;
  readonly role: Role;
}

export interface IngestResult {
  readonly accepted: number;
  readonly positions: RecordPosition[];
}

export interface Ingestor {
  /**
   * Validates every event and appends all of them or none (RunnelError invalid_events with
   * details [{index, message}], event_too_large, user_blocked, forbidden, stream_not_found).
   * Resolves once the batch is durable.
   */
  ingest(stream: string, events: readonly unknown[], principal: Principal, meta?: IngestMeta): Promise<IngestResult>;
}

export interface IngestMeta {
  /** Size of what arrived on the wire, for metrics (defaults to the appended bytes). */
  readonly bytes?: number;
  /** Metric label: http, ws, mqtt, kafka, file. */
  readonly source?: string;
  /**
   * raw[i], when given, is the exact JSON text of events[i]: stored as is when the validator
   * changes nothing, so the hot path does not stringify what it has just parsed.
   */
  readonly raw?: readonly (Uint8Array | undefined)[];
  /**
   * Headers for the batch's last record. Batches are atomic, so a source can find out after a
   * crash whether its batch made it by looking for its tag in the log.
   */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface Source {
  readonly name: string;
  start(ingestor: Ingestor): Promise<void>;
  stop(): Promise<void>;
}
