/**
 * Every failure leaves the API as API.md's JSON error shape: never a stack trace, never HTML.
 * Fastify's own errors (body too large, wrong content type, schema validation) are mapped onto
 * the catalogue in src/core/errors.ts.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { isRunnelError, RunnelError } from "../core/errors.js";

interface ValidationIssue {
  readonly instancePath?: string;
  readonly message?: string;
  readonly params?: Record<string, unknown>;
}

export function toRunnelError(error: unknown): RunnelError {
  if (isRunnelError(error)) return error;
  const fe = error as Partial<FastifyError> & { validation?: ValidationIssue[] };
  if (fe.validation && fe.validation.length > 0)
    return new RunnelError("invalid_input", describeValidation(fe.validation[0]!, fe.validationContext));
  switch (fe.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new RunnelError("payload_too_large", "the request body is larger than the limit");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new RunnelError(
        "unsupported_media_type",
        "the content type is not supported; use application/json or application/x-ndjson",
      );
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new RunnelError("invalid_json", "the request body is empty");
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new RunnelError("invalid_json", "the request body is not valid JSON");
  }
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new RunnelError("invalid_input", fe.message ?? "invalid request");
  }
  return new RunnelError("internal", "an internal error occurred; it has been logged", { cause: error });
}

function describeValidation(issue: ValidationIssue, context: string | undefined): string {
  const where = `${context ?? "body"}${issue.instancePath ? issue.instancePath.replaceAll("/", ".") : ""}`;
  const extra = issue.params?.additionalProperty;
  if (typeof extra === "string") return `${where}: unknown field "${extra}"`;
  const missing = issue.params?.missingProperty;
  if (typeof missing === "string") return `${where}.${missing} is required`;
  return `${where} ${issue.message ?? "is invalid"}`;
}

export function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  const e = toRunnelError(error);
  if (e.code === "internal") request.log.error({ err: e.cause ?? e }, "request failed");
  if (e.retryAfter !== undefined) reply.header("retry-after", String(e.retryAfter));
  return reply.status(e.status).type("application/json").send(e.toJSON());
}
