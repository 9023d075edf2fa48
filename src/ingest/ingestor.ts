/**
 * The one ingest path every source goes through: shape, size, schema, event time, user stamping
 * and authorisation, block check, then one atomic durable append. All or nothing: any invalid
 * event refuses the whole batch before anything is written.
 */
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import type { StreamDefinition } from "../control/types.js";
import type { Clock } from "../core/clock.js";
import { RunnelError } from "../core/errors.js";
import type { AppendRecord, EventLog } from "../log/types.js";
import type { Metrics } from "../monitoring/metrics.js";
import type { Backpressure } from "./backpressure.js";
import { ColumnCheck, type ColumnSource } from "./column-check.js";
import { eventTimeOf } from "./event-time.js";
import type { IngestMeta, Ingestor, IngestResult, Principal } from "./types.js";

/** Whether a user's events on a stream are refused (CEP `block` actions fill this in). */
export interface BlockList {
  isBlocked(userId: string, stream: string): boolean;
}

export interface StreamLookup {
  getStream(name: string): Promise<StreamDefinition | undefined>;
}

export interface IngestorOptions {
  /** Where accepted events go: the log, or an import's chunk (src/archive/import/). */
  readonly log: Pick<EventLog, "append">;
  readonly streams: StreamLookup;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly maxEventBytes: number;
  readonly blocks?: BlockList;
  /** Refuses batches with 429 while the log or processing is behind. */
  readonly backpressure?: Backpressure;
  /** Column types of analytics streams: values that do not fit are refused (./column-check.ts). */
  readonly columns?: ColumnSource;
}

interface EventProblem {
  readonly index: number;
  readonly message: string;
  /** The credential may not write this event (403), rather than the event being malformed (400). */
  readonly forbidden?: boolean;
}

const MAX_REPORTED_PROBLEMS = 100;
const encoder = new TextEncoder();
// ajv-formats is CommonJS with a default export; under NodeNext its namespace is what we get.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

export class StreamIngestor implements Ingestor {
  private readonly ajv = addFormats(new Ajv({ allErrors: false, strict: false }));
  private readonly validators = new Map<string, { schema: unknown; validate: ValidateFunction }>();

  constructor(private readonly options: IngestorOptions) {}

  async ingest(
    streamName: string,
    events: readonly unknown[],
    principal: Principal,
    meta: IngestMeta = {},
  ): Promise<IngestResult> {
    const { log, clock, metrics, maxEventBytes, blocks, backpressure } = this.options;
    const stream = await this.options.streams.getStream(streamName);
    if (!stream) throw new RunnelError("stream_not_found", `stream "${streamName}" does not exist`);
    if (stream.derivedFrom !== undefined) {
      throw new RunnelError("forbidden", `stream "${streamName}" is written by pipeline "${stream.derivedFrom}" only`);
    }
    if (principal.role === "analyst") {
      throw new RunnelError("forbidden", "analyst credentials cannot ingest events");
    }
    const validate = this.validatorFor(stream);
    const columns = await ColumnCheck.begin(this.options.columns, stream);
    const ingestTime = clock.now();
    const problems: EventProblem[] = [];
    const records: AppendRecord[] = [];
    let bytes = 0;
    const raw = meta.raw;
    let userPrefix: Uint8Array | undefined;

    for (let index = 0; index < events.length; index++) {
      const event = events[index];
      if (typeof event !== "object" || event === null || Array.isArray(event)) {
        problems.push({ index, message: "an event must be a JSON object" });
        continue;
      }
      const fields = event as Record<string, unknown>;
      const badName = unusableFieldName(fields);
      if (badName !== undefined) {
        problems.push({
          index,
          message: `field name ${JSON.stringify(badName)} cannot be a column (empty or with NUL)`,
        });
        continue;
      }
      const userId = this.userOf(fields, principal, index, problems);
      if (userId === undefined) continue;
      if (validate && !validate(fields)) {
        const err = validate.errors?.[0];
        problems.push({ index, message: `schema: ${err?.instancePath || "/"} ${err?.message ?? "is invalid"}` });
        continue;
      }
      const time = eventTimeOf(fields[stream.timestampField], ingestTime, stream);
      if (typeof time === "object") {
        problems.push({ index, message: `${stream.timestampField}: ${time.error}` });
        continue;
      }
      // Reusing the event's own bytes is the common case (a service names user_id; a user
      // leaves it out and gets it spliced in front), and saves a stringify and an encode.
      const source = raw?.[index];
      let value: Uint8Array;
      if (source !== undefined && fields.user_id === userId) {
        value = source;
      } else if (source !== undefined && fields.user_id === undefined && !isEmptyObject(source)) {
        userPrefix ??= encoder.encode(`{"user_id":${JSON.stringify(userId)},`);
        value = spliceAfterBrace(userPrefix, source);
      } else {
        value = encoder.encode(JSON.stringify({ ...fields, user_id: userId }));
      }
      if (value.byteLength > maxEventBytes) {
        metrics.ingestRefusals.inc({ reason: "event_too_large" });
        throw new RunnelError(
          "event_too_large",
          `event ${index} is ${value.byteLength} bytes; the limit is ${maxEventBytes}`,
          {
            details: [{ index, message: `event is larger than ${maxEventBytes} bytes` }],
          },
        );
      }
      if (blocks?.isBlocked(userId, stream.name)) {
        metrics.ingestRefusals.inc({ reason: "user_blocked" });
        throw new RunnelError("user_blocked", `user "${userId}" is blocked on stream "${stream.name}" pending review`, {
          details: [{ index, userId }],
        });
      }
      bytes += value.byteLength;
      records.push({ key: userId, timestamp: time ?? ingestTime, value });
      columns?.check(fields, index);
    }
    if (columns !== undefined && problems.length === 0) await columns.settle(events);

    if (problems.length > 0) {
      const forbidden = problems.find((p) => p.forbidden);
      if (forbidden) {
        metrics.ingestRefusals.inc({ reason: "forbidden" });
        throw new RunnelError("forbidden", forbidden.message, {
          details: [{ index: forbidden.index, message: forbidden.message }],
        });
      }
      metrics.ingestRefusals.inc({ reason: "invalid" });
      throw new RunnelError(
        "invalid_events",
        `${problems.length} of ${events.length} events are invalid; nothing was appended`,
        { details: problems.slice(0, MAX_REPORTED_PROBLEMS) },
      );
    }

    if (meta.headers !== undefined && records.length > 0) {
      const last = records[records.length - 1]!;
      records[records.length - 1] = { ...last, headers: { ...last.headers, ...meta.headers } };
    }
    let positions: Awaited<ReturnType<EventLog["append"]>>;
    if (backpressure) {
      backpressure.admit(bytes);
      try {
        positions = await log.append(stream.name, records);
      } finally {
        backpressure.release(bytes);
      }
    } else {
      positions = await log.append(stream.name, records);
    }
    const source = meta.source ?? "http";
    metrics.ingestEvents.inc({ stream: stream.name, source }, records.length);
    metrics.ingestBytes.inc({ stream: stream.name, source }, meta.bytes ?? bytes);
    return { accepted: records.length, positions };
  }

  /** Drops the cached validator, e.g. after a stream is deleted and recreated with another schema. */
  forget(stream: string): void {
    this.validators.delete(stream);
  }

  private userOf(
    fields: Record<string, unknown>,
    principal: Principal,
    index: number,
    problems: EventProblem[],
  ): string | undefined {
    const named = fields.user_id;
    if (principal.role === "user") {
      if (named !== undefined && named !== principal.username) {
        problems.push({
          index,
          message: `a user may only ingest their own events (user_id "${principal.username}")`,
          forbidden: true,
        });
        return undefined;
      }
      return principal.username;
    }
    if (typeof named !== "string" || named === "") {
      problems.push({ index, message: "user_id is required (a non-empty string) with a service or admin credential" });
      return undefined;
    }
    if (named.length > 256) {
      problems.push({ index, message: "user_id is longer than 256 characters" });
      return undefined;
    }
    return named;
  }

  private validatorFor(stream: StreamDefinition): ValidateFunction | undefined {
    if (stream.schema === undefined) return undefined;
    const cached = this.validators.get(stream.name);
    if (cached && cached.schema === stream.schema) return cached.validate;
    const validate = this.ajv.compile(stream.schema);
    this.validators.set(stream.name, { schema: stream.schema, validate });
    return validate;
  }
}

/** Top-level names become table columns; SQL cannot name a column "" or one holding NUL. */
function unusableFieldName(fields: Record<string, unknown>): string | undefined {
  for (const name in fields) {
    if (name === "" || name.includes("\u0000")) return name;
  }
  return undefined;
}

function isBlankByte(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

/** `{ }`: splicing `"user_id":…,` into it would leave a trailing comma. */
function isEmptyObject(source: Uint8Array): boolean {
  let i = 1;
  while (i < source.length && isBlankByte(source[i]!)) i++;
  return source[i] === 0x7d;
}

/** `{"user_id":"…",` followed by the source without its opening brace. */
function spliceAfterBrace(prefix: Uint8Array, source: Uint8Array): Uint8Array {
  const out = new Uint8Array(prefix.length + source.length - 1);
  out.set(prefix, 0);
  out.set(source.subarray(1), prefix.length);
  return out;
}

/** Checks that a stream's JSON Schema compiles, so a bad schema is refused when the stream is created. */
export function checkSchema(schema: unknown): string | undefined {
  try {
    addFormats(new Ajv({ strict: false })).compile(schema as object);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
