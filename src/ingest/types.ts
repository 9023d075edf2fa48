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
  ingest(
    stream: string,
    events: readonly unknown[],
    principal: Principal,
    meta?: { bytes?: number; source?: string },
  ): Promise<IngestResult>;
}

export interface Source {
  readonly name: string;
  start(ingestor: Ingestor): Promise<void>;
  stop(): Promise<void>;
}
