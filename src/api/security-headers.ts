/**
 * Headers on every answer (OWASP Secure Headers): the API serves JSON, never pages, so browsers
 * are told not to sniff, frame, cache or leak referrers. No CORS headers are sent unless origins
 * are configured (src/api/cors.ts): a browser on another origin cannot read any answer otherwise.
 */
import type { FastifyInstance } from "fastify";

const HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
};

export function addSecurityHeaders(app: FastifyInstance): void {
  app.addHook("onSend", async (request, reply, payload) => {
    for (const [name, value] of Object.entries(HEADERS)) {
      if (!reply.hasHeader(name)) reply.header(name, value);
    }
    // Answers carry tokens, keys and users' data: no shared or browser cache may keep them.
    if (request.url.startsWith("/api/") && !reply.hasHeader("cache-control")) reply.header("cache-control", "no-store");
    return payload;
  });
}

export const SECURITY_HEADERS = HEADERS;
