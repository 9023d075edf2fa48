import { parseDuration } from "../config/units.js";
import { RunnelError } from "../core/errors.js";

/**
 * Per-pipeline options of the event-time engine, with defaults in human units (as Arroyo's
 * defaults file). Given at creation (`POST /api/v1/pipelines` `options`), validated here with the
 * offending field named, then frozen.
 */
export interface PipelineOptions {
  /** How far out of order events may arrive and still be on time (bounded out-of-orderness). */
  readonly outOfOrdernessMs: number;
  /** A partition silent this long stops holding event time back; 0 never. */
  readonly idleTimeoutMs: number;
  /** How long after a window fired it still accepts events, each one firing an updated result. */
  readonly allowedLatenessMs: number;
  /** How often state and input offsets are checkpointed (also on clean shutdown). */
  readonly checkpointIntervalMs: number;
}

export const DEFAULT_PIPELINE_OPTIONS_TEXT = {
  outOfOrderness: "5s",
  idleTimeout: "30s",
  allowedLateness: "0s",
  checkpointInterval: "10s",
} as const;

export type PipelineOptionsInput = Partial<Record<keyof typeof DEFAULT_PIPELINE_OPTIONS_TEXT, string | number>>;

const FIELDS = Object.keys(DEFAULT_PIPELINE_OPTIONS_TEXT) as (keyof typeof DEFAULT_PIPELINE_OPTIONS_TEXT)[];

function duration(field: string, v: string | number): number {
  const ms = typeof v === "number" ? v : parseDuration(v);
  if (ms === undefined || !Number.isSafeInteger(ms) || ms < 0) {
    throw new RunnelError(
      "invalid_input",
      `options.${field} must be a duration such as "500ms", "5s" or "1m" (or milliseconds)`,
    );
  }
  return ms;
}

export function parsePipelineOptions(input: unknown): PipelineOptions {
  if (input !== undefined && (typeof input !== "object" || input === null || Array.isArray(input))) {
    throw new RunnelError("invalid_input", "options must be an object");
  }
  const given = (input ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(given)) {
    if (!(FIELDS as string[]).includes(k)) {
      throw new RunnelError("invalid_input", `unknown field options.${k} (known: ${FIELDS.join(", ")})`);
    }
  }
  const pick = (f: (typeof FIELDS)[number]): number => {
    const v = given[f] ?? DEFAULT_PIPELINE_OPTIONS_TEXT[f];
    if (typeof v !== "string" && typeof v !== "number") {
      throw new RunnelError("invalid_input", `options.${f} must be a duration string or a number of milliseconds`);
    }
    return duration(f, v);
  };
  const options: PipelineOptions = {
    outOfOrdernessMs: pick("outOfOrderness"),
    idleTimeoutMs: pick("idleTimeout"),
    allowedLatenessMs: pick("allowedLateness"),
    checkpointIntervalMs: pick("checkpointInterval"),
  };
  if (options.checkpointIntervalMs < 100) {
    throw new RunnelError("invalid_input", "options.checkpointInterval must be at least 100ms");
  }
  return Object.freeze(options);
}

/** The options as the API shows them: the same human units they were given in. */
export function describeOptions(o: PipelineOptions): Record<keyof typeof DEFAULT_PIPELINE_OPTIONS_TEXT, string> {
  const text = (ms: number): string =>
    ms % 60_000 === 0 && ms > 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
  return {
    outOfOrderness: text(o.outOfOrdernessMs),
    idleTimeout: text(o.idleTimeoutMs),
    allowedLateness: text(o.allowedLatenessMs),
    checkpointInterval: text(o.checkpointIntervalMs),
  };
}
