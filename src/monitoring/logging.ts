/**
 * Structured JSON logs (pino): one root logger, a child per component (`component` field), the
 * API's request id on every request line, and no secrets. Secrets are kept out twice: nothing
 * logs bodies or headers (the serializers below pick the fields that are safe), and the redact
 * paths blank any secret-named field that slips into a log call anyway.
 *
 * @example
 *   const logger = createLogger("info");
 *   const logLog = logger.child({ component: "log" });
 *   logLog.warn({ stream: "clicks", bytes: 120 }, "torn tail truncated");
 *   // {"level":40,"time":…,"component":"log","stream":"clicks","bytes":120,"msg":"torn tail truncated"}
 */
import { type DestinationStream, type Logger, type LoggerOptions, pino } from "pino";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "silent";
export type { Logger };

/** Field names that hold secrets, wherever they appear one level deep. */
const SECRET_FIELDS = [
  "password",
  "passwordHash",
  "current",
  "next",
  "token",
  "key",
  "secret",
  "tokenSecret",
  "adminPassword",
  "databaseUrl",
  "authorization",
  "cookie",
];

export const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  "req.headers",
  "headers.authorization",
  "headers.cookie",
  "body",
  "*.body",
];

/** What a request line says about the request: never headers, body or query string. */
export interface RequestLike {
  readonly id?: string;
  readonly method?: string;
  readonly url?: string;
  readonly routeOptions?: { readonly url?: string };
}

export function serializeRequest(req: RequestLike): Record<string, unknown> {
  return {
    method: req.method,
    // The query string may carry a credential (EventSource cannot send headers): drop it.
    url: req.url?.split("?")[0],
    route: req.routeOptions?.url,
  };
}

export function serializeReply(res: { readonly statusCode?: number }): Record<string, unknown> {
  return { statusCode: res.statusCode };
}

export function loggerOptions(level: LogLevel): LoggerOptions {
  return {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    serializers: { req: serializeRequest, res: serializeReply, err: pino.stdSerializers.err },
  };
}

/** The root logger; `destination` defaults to stdout (tests pass a stream to read the lines). */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return destination === undefined ? pino(loggerOptions(level)) : pino(loggerOptions(level), destination);
}

/** A request id taken from `X-Request-Id` when it is a sane token (so ids follow a request across proxies), else new. */
export function requestIdFrom(header: string | string[] | undefined, fresh: () => string): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && /^[A-Za-z0-9._:-]{1,64}$/.test(value) ? value : fresh();
}
