/**
 * Kafka client errors → Runnel's catalogue. The mapping is by meaning, not by message: an
 * unreachable broker is not_ready (503, retryable) so ingestion answers quickly instead of
 * hanging; an unknown topic is stream_not_found; everything else stays internal with the cause kept.
 */
import { GenericError } from "@platformatic/kafka";
import { RunnelError } from "../../core/errors.js";

interface Searchable {
  findBy(property: string, value: unknown): unknown;
}

/** The client's own lookup through an error and the errors it aggregates (or null). */
function searchable(e: unknown): Searchable | null {
  return e instanceof Error && GenericError.isGenericError(e) ? (e as Searchable) : null;
}

/** True when the client error (or one it aggregates) is the Kafka protocol error `apiId`. */
export function hasKafkaError(e: unknown, apiId: string): boolean {
  return (searchable(e)?.findBy("apiId", apiId) ?? null) !== null;
}

/** True when the client lost, or could not open, a connection to a broker. */
export function isNetworkError(e: unknown): boolean {
  return (searchable(e)?.findBy("code", "PLT_KFK_NETWORK") ?? null) !== null;
}

function isUnreachable(error: Error): boolean {
  const e = searchable(error);
  if (e === null) return false;
  return (
    e.findBy("code", "PLT_KFK_NETWORK") !== null ||
    e.findBy("code", "PLT_KFK_TIMEOUT") !== null ||
    e.findBy("apiId", "COORDINATOR_NOT_AVAILABLE") !== null ||
    e.findBy("apiId", "NOT_COORDINATOR") !== null ||
    e.findBy("apiId", "COORDINATOR_LOAD_IN_PROGRESS") !== null ||
    e.findBy("apiId", "NOT_ENOUGH_REPLICAS") !== null ||
    e.findBy("apiId", "NOT_ENOUGH_REPLICAS_AFTER_APPEND") !== null ||
    e.findBy("apiId", "LEADER_NOT_AVAILABLE") !== null ||
    e.findBy("apiId", "REQUEST_TIMED_OUT") !== null
  );
}

export function toRunnelError(e: unknown, what: string, stream?: string): RunnelError {
  if (e instanceof RunnelError) return e;
  const cause = e instanceof Error ? e : new Error(String(e));
  if (
    stream !== undefined &&
    (hasKafkaError(cause, "UNKNOWN_TOPIC_OR_PARTITION") || hasKafkaError(cause, "UNKNOWN_TOPIC_ID"))
  ) {
    return new RunnelError("stream_not_found", `stream "${stream}" does not exist`, { cause });
  }
  if (hasKafkaError(cause, "INVALID_TIMESTAMP") || hasKafkaError(cause, "MESSAGE_TOO_LARGE")) {
    return new RunnelError("invalid_input", `Kafka refused to ${what}: ${cause.message}`, { cause });
  }
  // A shared lane's producer fenced under it: the client initialised its transactional id again
  // while a transaction was open (on the fault rig, during a broker's failover), so the broker
  // aborted that transaction. The next producer works; the caller tries again, as for a broker that
  // is away (a commit whose answer was lost is in doubt either way: Idempotency-Key covers both).
  if (hasKafkaError(cause, "PRODUCER_FENCED") || hasKafkaError(cause, "INVALID_PRODUCER_EPOCH")) {
    return new RunnelError("not_ready", `Kafka fenced the producer while trying to ${what}: ${cause.message}`, {
      cause,
      retryAfter: 1,
    });
  }
  // The transaction coordinator is still writing the previous transaction's markers (slow while a
  // partition's leader is being replaced) and the client's few retries ran out: busy, not broken.
  if (hasKafkaError(cause, "CONCURRENT_TRANSACTIONS")) {
    return new RunnelError("not_ready", `Kafka is still completing a transaction while trying to ${what}`, {
      cause,
      retryAfter: 1,
    });
  }
  // A partition's leader moved, or is not yet known to the broker asked: a topic created a moment
  // ago (a new stream) answers so until its leaders reach every broker, for longer than the produce
  // retries under load (seen in CI). Kafka's own producer retries it; the caller comes back.
  if (hasKafkaError(cause, "NOT_LEADER_OR_FOLLOWER")) {
    return new RunnelError("not_ready", `a Kafka partition's leader is moving while trying to ${what}`, {
      cause,
      retryAfter: 1,
    });
  }
  if (isUnreachable(cause)) {
    return new RunnelError("not_ready", `Kafka is unreachable while trying to ${what}: ${cause.message}`, {
      cause,
      retryAfter: 1,
    });
  }
  return new RunnelError("internal", `Kafka failed to ${what}: ${describe(cause)}`, { cause });
}

/** The client wraps broker errors in aggregates; the operator needs the innermost Kafka codes. */
function describe(e: Error): string {
  const inner: string[] = [];
  const walk = (x: unknown) => {
    if (!(x instanceof Error)) return;
    const fields = x as Error & { apiId?: unknown; serverErrorMessage?: unknown; errors?: unknown };
    if (typeof fields.apiId === "string") {
      inner.push(
        typeof fields.serverErrorMessage === "string" ? `${fields.apiId} (${fields.serverErrorMessage})` : fields.apiId,
      );
    }
    if (Array.isArray(fields.errors)) for (const child of fields.errors) walk(child);
    if (x.cause !== undefined) walk(x.cause);
  };
  walk(e);
  return inner.length === 0 ? e.message : `${e.message} ${[...new Set(inner)].join("; ")}`;
}
