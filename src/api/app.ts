/**
 * The HTTP API of API.md as a Fastify instance, built apart from listen() so tests can use
 * inject() and the composition root decides where it listens.
 */
import { randomUUID } from "node:crypto";
import fastifyWebsocket from "@fastify/websocket";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest, LogController } from "fastify";
import type { Config } from "../config/config.js";
import { RunnelError } from "../core/errors.js";
import { parseJsonBody, parseNdjson } from "../ingest/body.js";
import { createLogger, requestIdFrom } from "../monitoring/logging.js";
import { checkRouteAccess } from "./auth/access.js";
import type { AuthPrincipal } from "./auth/authenticate.js";
import { allowCors } from "./cors.js";
import { sendError } from "./errors.js";
import { registerAccountRoutes } from "./routes/accounts.js";
import { registerAlertRoutes } from "./routes/alerts.js";
import { registerClusterRoutes } from "./routes/cluster.js";
import { registerHealthRoutes } from "./routes/health.js";
import { registerImportRoutes } from "./routes/imports.js";
import { collectRoutes, registerOpenApiRoute } from "./routes/openapi.js";
import { registerOperatorAlertRoutes } from "./routes/operator-alerts.js";
import { registerPipelineRoutes } from "./routes/pipelines.js";
import { registerQueryRoutes } from "./routes/query.js";
import { registerRuleRoutes } from "./routes/rules.js";
import { registerSourceRoutes } from "./routes/sources.js";
import { registerStatsRoutes } from "./routes/stats.js";
import { registerStreamRoutes } from "./routes/streams.js";
import { webFallback } from "./routes/web.js";
import { registerWebSocketIngest } from "./routes/ws.js";
import { addSecurityHeaders } from "./security-headers.js";
import type { ApiServices } from "./services.js";

declare module "fastify" {
  interface FastifyRequest {
    principal?: AuthPrincipal;
    /** Size of the raw body in bytes, for ingest metrics. */
    bodyBytes: number;
    /** The body as received, for Idempotency-Key hashing. */
    rawBody: Buffer | undefined;
  }
}

/** An NDJSON body, parsed: kept apart from JSON so the ingest route knows which form arrived. */
export class NdjsonBody {
  constructor(
    readonly events: unknown[],
    /** Each event's own bytes, which the ingestor stores as is when it changes nothing. */
    readonly raw?: Uint8Array[],
  ) {}
}

export async function buildApp(services: ApiServices): Promise<FastifyInstance> {
  // Typed as Fastify's logger so the instance keeps the FastifyInstance type routes are written against.
  const apiLogger: FastifyBaseLogger = (services.logger ?? createLogger(services.config.logLevel)).child({
    component: "api",
  });
  const app = Fastify({
    bodyLimit: services.config.limits.maxBodyBytes,
    // One redacting JSON logger for the process (src/monitoring/logging.ts); the API is its child.
    loggerInstance: apiLogger,
    // Request lines are written by the onResponse hook below: one per request, level by status.
    // Requests are logged once, by the onResponse hook below, with the redacting serializers.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: (req) => requestIdFrom(req.headers["x-request-id"], randomUUID),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false, allowUnionTypes: true } },
    return503OnClosing: true,
    // Slow bodies and idle connections are cut (docs/security.md, "Revocation, limits and timeouts").
    // None of these touches a stream once its request has arrived: SSE and WebSocket live on.
    ...serverTimeouts(services.config.http),
  });

  app.decorateRequest("principal", undefined);
  app.decorateRequest("bodyBytes", 0);
  app.decorateRequest("rawBody", undefined);
  app.decorate("connectionGuard", services.connections);

  // Bodies arrive as bytes so invalid UTF-8 is refused instead of being replaced, and so their
  // depth, width and duplicate names are checked before anything parses them (json-limits.ts).
  const jsonLimits = services.config.limits.json;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(["application/json"], { parseAs: "buffer" }, (request, body: Buffer, done) => {
    request.bodyBytes = body.byteLength;
    request.rawBody = body;
    if (body.byteLength === 0) return done(null, undefined);
    try {
      done(null, parseJsonBody(body, jsonLimits));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.addContentTypeParser(["application/x-ndjson"], { parseAs: "buffer" }, (request, body: Buffer, done) => {
    request.bodyBytes = body.byteLength;
    request.rawBody = body;
    try {
      const parsed = parseNdjson(body, jsonLimits);
      done(null, new NdjsonBody(parsed.events, parsed.raw));
    } catch (e) {
      done(e as Error, undefined);
    }
  });

  app.setErrorHandler((error, request, reply) => sendError(request, reply, error));
  // The dashboard's files (docs/dashboard.md) are served where no route matched: they are not API.
  const web = webFallback();
  app.setNotFoundHandler(async (request, reply) => {
    if (await web(request, reply)) return reply;
    const path = request.url.split("?")[0];
    return sendError(request, reply, new RunnelError("not_found", `no route ${request.method} ${path}`));
  });
  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });
  // Who may call each route, checked before any body is read (src/api/auth/access.ts).
  checkRouteAccess(app, services.auth);
  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "unmatched";
    services.metrics.httpRequests.inc({ route, status: `${Math.floor(reply.statusCode / 100)}xx` });
    // Successes at debug: ingest runs thousands of requests a second; refusals are worth seeing.
    const level = reply.statusCode >= 500 ? "warn" : reply.statusCode >= 400 ? "info" : "debug";
    request.log[level]({ req: request, res: reply, ms: Math.round(reply.elapsedTime) }, "request completed");
  });

  addSecurityHeaders(app);
  allowCors(app, services.config.corsOrigins);
  collectRoutes(app);
  registerHealthRoutes(app, services);
  // Before the routes: the WebSocket plugin must see them being added.
  await app.register(fastifyWebsocket, { options: { maxPayload: services.config.limits.maxBodyBytes } });
  await app.register(
    async (api) => {
      registerOpenApiRoute(api);
      registerAccountRoutes(api, services);
      registerStreamRoutes(api, services);
      registerImportRoutes(api, services);
      registerWebSocketIngest(api, services);
      registerSourceRoutes(api, services);
      registerQueryRoutes(api, services);
      registerPipelineRoutes(api, services);
      if (services.rules !== undefined) {
        registerRuleRoutes(api, services.rules);
        registerAlertRoutes(api, services, services.rules);
      }
      registerOperatorAlertRoutes(api, services);
      registerStatsRoutes(api, services);
      registerClusterRoutes(api, services);
    },
    { prefix: "/api/v1" },
  );
  return app;
}

/**
 * Fastify's and Node's timeouts from the configuration. Node checks request and header deadlines
 * only every `connectionsCheckingInterval` (30 s by default), which would let a short timeout run
 * long; a quarter of the shortest deadline, within 250 ms to 5 s, keeps the overshoot small.
 */
function serverTimeouts(http: Config["http"]) {
  const headersTimeout = Math.min(http.headersTimeoutMs, http.requestTimeoutMs);
  return {
    requestTimeout: http.requestTimeoutMs,
    keepAliveTimeout: http.keepAliveTimeoutMs,
    // No socket inactivity timeout: it would also cut a long query whose socket is quiet while the
    // server works. Idle sockets are covered by keepAliveTimeout (between requests) and the two
    // deadlines above (during one).
    connectionTimeout: 0,
    http: {
      requestTimeout: http.requestTimeoutMs,
      headersTimeout,
      connectionsCheckingInterval: Math.min(5000, Math.max(250, Math.floor(headersTimeout / 4))),
    },
  };
}

/** The caller, resolved from the Authorization header; throws 401 when there is none. */
export async function principalOf(request: FastifyRequest, services: ApiServices): Promise<AuthPrincipal> {
  if (request.principal) return request.principal;
  const principal = await services.auth.authenticate(request.headers.authorization);
  request.principal = principal;
  return principal;
}
