/**
 * Source specifications (what a config file or the admin API declares) and the state every
 * running source reports. Each source turns outside data into events and hands them to the one
 * Ingestor, so the guarantees of API.md hold whichever way an event arrives.
 */

/** Takes a field of the event from a level of the MQTT topic: `{ device_id: 1 }` for `devices/<id>/telemetry`. */
export type TopicFields = Readonly<Record<string, number>>;

export interface MqttTopicSpec {
  readonly filter: string;
  readonly stream: string;
  readonly fields?: TopicFields;
}

interface CommonSpec {
  readonly name: string;
  /**
   * The user every event belongs to, when the data does not say. Otherwise each event must carry
   * `user_id` (sources ingest with a service credential).
   */
  readonly userId?: string;
}

export interface MqttSourceSpec extends CommonSpec {
  readonly type: "mqtt";
  readonly url: string;
  /** 5 (default) or 4 (MQTT 3.1.1). */
  readonly protocolVersion?: 4 | 5;
  readonly clientId?: string;
  readonly username?: string;
  readonly password?: string;
  /** 1 (default): a message is acknowledged to the broker only once durable. */
  readonly qos?: 0 | 1;
  readonly topics: readonly MqttTopicSpec[];
}

export type LineParser = "json" | "logfmt" | { readonly regex: string };

export interface FileSourceSpec extends CommonSpec {
  readonly type: "file";
  readonly path: string;
  readonly stream: string;
  /** ndjson (default): one JSON object per line; lines: plain lines through `parser`. */
  readonly format?: "ndjson" | "lines";
  readonly parser?: LineParser;
  /** Where a file seen for the first time is read from (default beginning). */
  readonly startAt?: "beginning" | "end";
  /** How often the file is checked for growth, rotation and truncation (default 250ms). */
  readonly pollInterval?: string;
}

export interface KafkaSourceSpec extends CommonSpec {
  readonly type: "kafka";
  readonly brokers: readonly string[];
  readonly topic: string;
  readonly stream: string;
  /** Consumer group whose committed offsets record progress (default runnel-source-<name>). */
  readonly group?: string;
  /** Where a group without committed offsets starts (default earliest). */
  readonly startAt?: "earliest" | "latest";
}

export type SourceSpec = MqttSourceSpec | FileSourceSpec | KafkaSourceSpec;

export type SourceStateName = "starting" | "running" | "lagging" | "failed" | "stopped";

export interface SourceStatus {
  readonly name: string;
  readonly type: SourceSpec["type"];
  readonly state: SourceStateName;
  /** Why the source failed or lags, in one sentence. */
  readonly reason?: string;
  /** Where the spec came from: the config file or the admin API. */
  readonly origin: "file" | "api";
  readonly metrics: SourceCounters;
  readonly since: string;
}

export interface SourceCounters {
  /** Events appended to their stream. */
  accepted: number;
  /** Records sent to the dead-letter stream. */
  deadLettered: number;
  /** Records waiting to be appended (a backlog the source has read but not yet made durable). */
  backlog: number;
  lastEventAt?: string;
}

/** A running source as the manager sees it. */
export interface RunningSource {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Lag or trouble the source noticed while running; undefined when all is well. */
  health(): { state: "running" | "lagging" | "failed"; reason?: string };
}
