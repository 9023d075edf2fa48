/**
 * One error base class and one catalogue of stable codes. Every error the API can return is
 * defined here once, with its HTTP status, domain and retryability (test/core/errors.test.ts keeps
 * this list, API.md's codes and the OpenAPI document in step).
 */

export type ErrorDomain = "user" | "external" | "internal";

interface ErrorSpec {
  readonly status: number;
  readonly domain: ErrorDomain;
  readonly retryable: boolean;
}

export const ERROR_CATALOGUE = {
  invalid_input: { status: 400, domain: "user", retryable: false },
  invalid_json: { status: 400, domain: "user", retryable: false },
  invalid_utf8: { status: 400, domain: "user", retryable: false },
  invalid_events: { status: 400, domain: "user", retryable: false },
  /** A value does not fit its field's column type (src/catalog/columns.ts); an admin may widen the column. */
  column_type_mismatch: { status: 400, domain: "user", retryable: false },
  /** The events would give their stream more columns than RUNNEL_MAX_COLUMNS_PER_STREAM. */
  too_many_columns: { status: 400, domain: "user", retryable: false },
  invalid_query: { status: 400, domain: "user", retryable: false },
  unsupported_sql: { status: 400, domain: "user", retryable: false },
  /** A query result over the row or byte bound (src/analytics/duckdb/query-runner.ts); the message names it. */
  result_too_large: { status: 400, domain: "user", retryable: false },
  /** A query stopped at the per-query time limit; retrying the same query would be stopped again. */
  query_timeout: { status: 400, domain: "user", retryable: false },
  /**
   * A cluster cannot answer the query exactly from its instances' partial results
   * (src/analytics/distributed/plan.ts); the message names the construct that prevents it.
   */
  query_not_distributable: { status: 400, domain: "user", retryable: false },
  unauthorized: { status: 401, domain: "user", retryable: false },
  token_expired: { status: 401, domain: "user", retryable: false },
  forbidden: { status: 403, domain: "user", retryable: false },
  query_forbidden: { status: 403, domain: "user", retryable: false },
  not_found: { status: 404, domain: "user", retryable: false },
  stream_not_found: { status: 404, domain: "user", retryable: false },
  conflict: { status: 409, domain: "user", retryable: false },
  /**
   * The local log's directory is held by another process (src/log/local/dir-lock.ts). Met when a
   * server starts, never in a running server's answers; 409 because the two processes conflict.
   */
  storage_locked: { status: 409, domain: "user", retryable: false },
  payload_too_large: { status: 413, domain: "user", retryable: false },
  event_too_large: { status: 413, domain: "user", retryable: false },
  unsupported_media_type: { status: 415, domain: "user", retryable: false },
  user_blocked: { status: 423, domain: "user", retryable: false },
  overloaded: { status: 429, domain: "external", retryable: true },
  /** Login throttling (src/api/auth/throttle.ts): the caller's own doing, so domain "user"; Retry-After says when. */
  too_many_attempts: { status: 429, domain: "user", retryable: true },
  internal: { status: 500, domain: "internal", retryable: true },
  not_ready: { status: 503, domain: "external", retryable: true },
  /**
   * A query needs a partition that has no owner, or whose owner is not ready or failed while
   * answering (a rebalance, docs/cluster.md): never answered partially; Retry-After says when to try again.
   */
  cluster_rebalancing: { status: 503, domain: "external", retryable: true },
  storage_corrupt: { status: 500, domain: "internal", retryable: false },
  /**
   * The log's disk is full (ENOSPC, EDQUOT, EFBIG): nothing was acknowledged, reads still work, and
   * the same request succeeds once an operator frees space. 507 (RFC 4918) rather than 500, so
   * clients and alerts tell "out of space" from a bug, and rather than 429, which blames the caller.
   */
  storage_full: { status: 507, domain: "external", retryable: true },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

export class RunnelError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly domain: ErrorDomain;
  readonly retryable: boolean;
  readonly details?: unknown;
  /** Seconds a client should wait before retrying (sent as Retry-After with 429 and 503). */
  readonly retryAfter?: number;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: unknown; cause?: unknown; retryAfter?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RunnelError";
    const spec: ErrorSpec = ERROR_CATALOGUE[code];
    this.code = code;
    this.status = spec.status;
    this.domain = spec.domain;
    this.retryable = spec.retryable;
    if (options.details !== undefined) this.details = options.details;
    if (options.retryAfter !== undefined) this.retryAfter = options.retryAfter;
  }

  toJSON(): { error: ErrorCode; message: string; details?: unknown } {
    return this.details === undefined
      ? { error: this.code, message: this.message }
      : { error: this.code, message: this.message, details: this.details };
  }
}

export function isRunnelError(e: unknown): e is RunnelError {
  return e instanceof RunnelError;
}
