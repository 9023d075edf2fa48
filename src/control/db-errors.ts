/**
 * Turns database errors a caller can act on into RunnelErrors with messages that name the field,
 * keyed by constraint name so the words stay right as migrations add tables. Errors that mean the
 * database is out of reach become `not_ready` (503, retryable), not a 500.
 */
import { RunnelError } from "../core/errors.js";
import { isDatabaseError } from "./driver.js";

/** Unique violations (23505). */
const CONFLICTS: Readonly<Record<string, string>> = {
  users_username_key: "username already taken",
  users_username_fold_key: "username already taken (names differing only in case or width are one name)",
  users_email_key: "email already registered",
  api_keys_key_hash_key: "api key already exists",
  streams_pkey: "stream already exists",
  pipelines_pkey: "pipeline already exists",
  archive_files_range_key: "archive file already committed",
  archive_files_start_key: "an archive file already starts at this offset",
  archive_files_path_key: "an archive file already has this path",
  archive_imports_path_key: "an archive file already has this path",
};

/** Foreign key violations (23503): the row referred to is missing. */
const MISSING: Readonly<Record<string, string>> = {
  api_keys_user_id_fkey: "user not found",
  settings_user_id_fkey: "user not found",
  archive_files_stream_fkey: "stream not found",
  archive_imports_stream_fkey: "stream not found",
};

/** Check violations (23514). */
const CHECKS: Readonly<Record<string, string>> = {
  users_role_check: "role must be one of admin, analyst, user, service",
  api_keys_role_check: "role must be one of admin, analyst, user, service",
  streams_partitions_check: "partitions must be at least 1",
  streams_retention_ms_check: "retention must be positive",
  pipelines_start_from_check: 'startFrom must be "earliest" or "now"',
  archive_files_range_check: "an archive file's offset range must not be empty",
};

/** SQLSTATEs for values PostgreSQL cannot take: bad syntax for the type, out of range, NUL in text. */
const BAD_VALUE = new Set(["22P02", "22003", "22021", "22P05", "22001"]);

/** Node socket errors, SQLSTATE classes 08 (connection) and 57P (shutdown), and pg's pool timeouts. */
const UNREACHABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH", "EPIPE"]);
const UNREACHABLE_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

export function translateDatabaseError(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  if (isUnreachable(e)) return new RunnelError("not_ready", "control database is unavailable", { cause: e });
  if (!isDatabaseError(e)) return e;
  const constraint = e.constraint ?? "";
  switch (e.code) {
    case "23505":
      return new RunnelError("conflict", CONFLICTS[constraint] ?? "already exists", { cause: e });
    case "23503":
      return new RunnelError("not_found", MISSING[constraint] ?? "a referenced record does not exist", { cause: e });
    case "23514":
      return new RunnelError("invalid_input", CHECKS[constraint] ?? "a value is out of range", { cause: e });
    default:
      if (BAD_VALUE.has(e.code))
        return new RunnelError("invalid_input", badValueMessage(e.code, e.message), { cause: e });
      return e;
  }
}

function isUnreachable(e: Error): boolean {
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && (UNREACHABLE_CODES.has(code) || code.startsWith("08") || code.startsWith("57P"))) {
    return true;
  }
  return UNREACHABLE_MESSAGES.test(e.message);
}

function badValueMessage(code: string, message: string): string {
  // PostgreSQL text cannot hold U+0000 at all, in columns or inside jsonb strings.
  if (code === "22021" || code === "22P05") return "text must not contain the NUL character (\\u0000)";
  return message;
}
