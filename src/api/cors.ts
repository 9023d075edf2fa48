/**
 * Cross-origin access, off unless configured (RUNNEL_CORS_ORIGINS): only the listed origins get
 * CORS headers, so a page elsewhere can call the API with a bearer token but never read answers
 * from an origin nobody allowed. No cookies are used, so credentials are never allowed.
 */
import type { FastifyInstance } from "fastify";

const ALLOWED_HEADERS = "authorization, content-type, idempotency-key, x-request-id";
const EXPOSED_HEADERS = "retry-after, x-request-id";
const METHODS = "GET, POST, PUT, PATCH, DELETE";

export function allowCors(app: FastifyInstance, origins: readonly string[]): void {
  if (origins.length === 0) return;
  const allowed = new Set(origins);
  app.addHook("onRequest", async (request, reply) => {
    const origin = request.headers.origin;
    reply.header("vary", "origin");
    if (origin === undefined || !allowed.has(origin)) return;
    reply.header("access-control-allow-origin", origin);
    reply.header("access-control-expose-headers", EXPOSED_HEADERS);
    if (request.method === "OPTIONS" && request.headers["access-control-request-method"] !== undefined) {
      reply.header("access-control-allow-methods", METHODS);
      reply.header("access-control-allow-headers", ALLOWED_HEADERS);
      reply.header("access-control-max-age", "600");
      return reply.status(204).send();
    }
    return undefined;
  });
}
