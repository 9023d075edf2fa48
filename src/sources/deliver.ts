/**
 * Hands a source's records to the Ingestor and sends what it refuses to the stream's dead-letter
 * stream (`<stream>_dead_letter`), so one bad record never holds back or loses its good
 * neighbours. Resolves once everything is durable (good events in the stream, bad records in the
 * dead-letter stream); throws only for trouble that is not the record's fault (the stream is
 * missing, the log is overloaded), which the source retries without acknowledging.
 */
import type { StreamDefinition } from "../control/types.js";
import { RunnelError } from "../core/errors.js";
import type { Ingestor, Principal } from "../ingest/types.js";
import type { SourceCounters } from "./types.js";

export const DEAD_LETTER_SUFFIX = "_dead_letter";
/** Dead letters keep at most this much of the refused payload. */
const MAX_PAYLOAD_CHARS = 16_384;

/** One record read by a source: a parsed event, or the reason it could not be parsed. */
export interface Candidate {
  readonly event?: Record<string, unknown>;
  readonly error?: string;
  /** The record as received, kept for the dead letter. */
  readonly payload: string;
  /** Where it came from (topic, file and line, partition and offset), copied into the dead letter. */
  readonly origin: Readonly<Record<string, string | number>>;
}

export interface StreamAccess {
  get(name: string): Promise<StreamDefinition | undefined>;
  create(spec: { name: string; partitions: number; timestampField: string }): Promise<StreamDefinition>;
}

export interface DeliveryOptions {
  readonly source: string;
  readonly ingestor: Ingestor;
  readonly streams: StreamAccess;
  readonly principal: Principal;
  readonly counters: SourceCounters;
  readonly metricLabel: string;
  readonly now: () => number;
  /** Counts records by outcome (the source's metrics). */
  readonly record?: (outcome: "accepted" | "dead_letter", n: number) => void;
}

export class Delivery {
  private readonly deadLetterStreams = new Set<string>();
  /** Records already dead-lettered, so a retried delivery (same candidates) does not repeat them. */
  private readonly deadLettered = new WeakSet<Candidate>();

  constructor(private readonly options: DeliveryOptions) {}

  /**
   * Appends the good events of `candidates` to `stream` and dead-letters the rest. `tag`, when
   * given, marks the last append (see IngestMeta.headers).
   */
  async deliver(stream: string, candidates: readonly Candidate[], tag?: Record<string, string>): Promise<void> {
    const { ingestor, principal, counters, metricLabel } = this.options;
    // The usual reason a delivery fails is a missing stream: find out before dead-lettering anything.
    if (!(await this.options.streams.get(stream))) {
      throw new RunnelError("stream_not_found", `stream "${stream}" does not exist`);
    }
    const refused: { candidate: Candidate; reason: string }[] = [];
    let good: Candidate[] = [];
    for (const c of candidates) {
      if (c.event === undefined) refused.push({ candidate: c, reason: c.error ?? "unreadable record" });
      else good.push(c);
    }
    // The validator refuses a whole batch and names the culprits: drop them and try the rest.
    for (;;) {
      if (good.length === 0) break;
      try {
        if (refused.length > 0) await this.deadLetter(stream, refused, undefined);
        refused.length = 0;
        await ingestor.ingest(
          stream,
          good.map((c) => c.event),
          principal,
          { source: metricLabel, ...(tag !== undefined && { headers: tag }) },
        );
        counters.accepted += good.length;
        this.options.record?.("accepted", good.length);
        counters.lastEventAt = new Date(this.options.now()).toISOString();
        return;
      } catch (e) {
        const culprits = culpritsOf(e);
        if (culprits === undefined) throw e;
        const drop = new Set(culprits.keys());
        for (const [index, reason] of culprits) refused.push({ candidate: good[index]!, reason });
        good = good.filter((_, i) => !drop.has(i));
      }
    }
    if (refused.length > 0) await this.deadLetter(stream, refused, tag);
  }

  private async deadLetter(
    stream: string,
    refused: readonly { candidate: Candidate; reason: string }[],
    tag: Record<string, string> | undefined,
  ): Promise<void> {
    const pending = refused.filter((r) => !this.deadLettered.has(r.candidate));
    if (pending.length === 0) return;
    const name = `${stream}${DEAD_LETTER_SUFFIX}`;
    await this.ensureStream(name);
    const receivedAt = new Date(this.options.now()).toISOString();
    const events = pending.map(({ candidate, reason }) => ({
      ...candidate.origin,
      // Not a user's event: an account name cannot contain ":", so role `user` never sees these.
      user_id: this.options.principal.userId,
      source: this.options.source,
      stream,
      reason,
      payload:
        candidate.payload.length > MAX_PAYLOAD_CHARS
          ? candidate.payload.slice(0, MAX_PAYLOAD_CHARS)
          : candidate.payload,
      received_at: receivedAt,
    }));
    await this.options.ingestor.ingest(name, events, this.options.principal, {
      source: this.options.metricLabel,
      ...(tag !== undefined && { headers: tag }),
    });
    for (const r of pending) this.deadLettered.add(r.candidate);
    this.options.counters.deadLettered += events.length;
    this.options.record?.("dead_letter", events.length);
  }

  private async ensureStream(name: string): Promise<void> {
    if (this.deadLetterStreams.has(name)) return;
    if (!(await this.options.streams.get(name))) {
      try {
        await this.options.streams.create({ name, partitions: 1, timestampField: "received_at" });
      } catch (e) {
        if (!(e instanceof RunnelError && e.code === "conflict")) throw e;
      }
    }
    this.deadLetterStreams.add(name);
  }
}

/** Index → reason for the records the validator blamed, or undefined when the refusal is not theirs. */
function culpritsOf(e: unknown): Map<number, string> | undefined {
  if (!(e instanceof RunnelError)) return undefined;
  if (
    e.code !== "invalid_events" &&
    e.code !== "column_type_mismatch" &&
    e.code !== "too_many_columns" &&
    e.code !== "event_too_large" &&
    e.code !== "user_blocked" &&
    e.code !== "forbidden"
  ) {
    return undefined;
  }
  const details = Array.isArray(e.details) ? (e.details as { index?: unknown; message?: unknown }[]) : [];
  const out = new Map<number, string>();
  for (const d of details) {
    if (typeof d.index !== "number") continue;
    const message = typeof d.message === "string" ? d.message : e.message;
    out.set(d.index, `${e.code}: ${message}`);
  }
  return out.size > 0 ? out : undefined;
}
