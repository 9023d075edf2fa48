/**
 * The OpenAPI 3.1 document at GET /api/v1/openapi.json, generated from the routes as Fastify
 * registers them (an onRoute hook), so a route cannot exist without appearing in it: paths and
 * methods, path parameters, query and body schemas come from the route definitions; summaries,
 * success statuses and the bodies of routes that parse their input by hand come from DOCS below.
 *
 * Hand-rolled rather than @fastify/swagger: the route schemas are already plain JSON Schema, the
 * generator is ~150 lines, and the document stays a pure function of what is registered, which
 * is what test/api/openapi.test.ts and the isolation matrix compare against.
 */
import type { FastifyInstance, FastifySchema, HTTPMethods } from "fastify";
import { ERROR_CATALOGUE, ERROR_CODES } from "../../core/errors.js";
import { PACKAGE_VERSION } from "../../core/package.js";
import type { RouteAccess } from "../auth/access.js";

export interface RegisteredRoute {
  readonly method: HTTPMethods;
  /** As registered, with the prefix: `/api/v1/users/:username`. */
  readonly url: string;
  readonly schema?: FastifySchema;
  /** Who may call it, as declared with the route (src/api/auth/access.ts). */
  readonly access?: RouteAccess;
}

declare module "fastify" {
  interface FastifyInstance {
    /** Every route registered so far (HEAD twins of GET routes left out). */
    readonly runnelRoutes: readonly RegisteredRoute[];
  }
}

/** Starts collecting routes; call before any route is registered. */
export function collectRoutes(app: FastifyInstance): void {
  const routes: RegisteredRoute[] = [];
  app.decorate("runnelRoutes", routes);
  app.addHook("onRoute", (options) => {
    const methods = Array.isArray(options.method) ? options.method : [options.method];
    for (const method of methods as HTTPMethods[]) {
      // Fastify adds a HEAD for every GET; it answers like the GET, so it is documented there.
      if (method === "HEAD") continue;
      routes.push({
        method,
        url: options.url,
        ...(options.schema !== undefined && { schema: options.schema }),
        ...(options.config?.access !== undefined && { access: options.config.access }),
      });
    }
  });
}

/** `GET /api/v1/users/:username` → the key used by DOCS and the isolation matrix. */
export function routeKey(route: { method: string; url: string }): string {
  return `${route.method} ${route.url}`;
}

type Json = Record<string, unknown>;

interface RouteDoc {
  readonly summary: string;
  readonly tag: string;
  /** Default 200. */
  readonly success?: 200 | 201 | 202 | 204;
  /** For routes that validate their body by hand. */
  readonly body?: Json;
  /** Default application/json. */
  readonly produces?: "application/json" | "text/plain" | "text/event-stream";
}

const EVENT = { type: "object", additionalProperties: true } as const;
const NAME = { type: "string", pattern: "^[a-z][a-z0-9_]{0,63}$" } as const;

/** A CEP rule as POST takes it (API.md "Complex event processing rules"). */
const RULE = {
  type: "object",
  required: ["name", "stream", "pattern"],
  properties: {
    name: { type: "string" },
    stream: NAME,
    key: { type: "string" },
    pattern: { type: "array", minItems: 1, items: { type: "object" } },
    within: { type: "string" },
    lateness: { type: "string" },
    skip: { type: "string" },
    onTimeout: { type: "string" },
    enabled: { type: "boolean" },
    actions: { type: "array", items: { type: "object" } },
  },
};

/** One entry per route; test/api/openapi.test.ts fails when a registered route has none. */
/** One rollup declaration (docs/rollups.md). */
const ROLLUP: Json = {
  type: "object",
  additionalProperties: false,
  required: ["name", "granularity", "metrics"],
  properties: {
    name: NAME,
    granularity: { type: "string", description: 'time bucket, a duration from "1s" to "366d"' },
    dimensions: { type: "array", maxItems: 16, items: { type: "string" } },
    metrics: {
      type: "object",
      minProperties: 1,
      maxProperties: 32,
      additionalProperties: {
        type: "string",
        description: '"count", "sum(f)", "min(f)", "max(f)" or "approx_count_distinct(f)"',
      },
    },
  },
};

export const DOCS: Readonly<Record<string, RouteDoc>> = {
  "GET /healthz": { summary: "The process is up", tag: "health" },
  "GET /readyz": {
    summary: "Every component is ready (503 naming the failing ones otherwise)",
    tag: "health",
  },
  "GET /metrics": { summary: "Prometheus text exposition", tag: "health", produces: "text/plain" },
  "GET /api/v1/openapi.json": { summary: "This document", tag: "meta" },
  "POST /api/v1/auth/signup": {
    summary: "Create an account with role user (rate-limited per address: 429 with Retry-After)",
    tag: "accounts",
    success: 201,
  },
  "POST /api/v1/auth/login": {
    summary: "Exchange username and password for a token (throttled: 429 with Retry-After)",
    tag: "accounts",
  },
  "GET /api/v1/me": { summary: "The caller's account", tag: "accounts" },
  "PATCH /api/v1/me": { summary: "Change the caller's email", tag: "accounts" },
  "POST /api/v1/me/password": { summary: "Change the caller's password; revokes every earlier token", tag: "accounts" },
  "GET /api/v1/me/settings": { summary: "The caller's settings", tag: "accounts" },
  "PUT /api/v1/me/settings": { summary: "Replace the caller's settings (any JSON object)", tag: "accounts" },
  "GET /api/v1/me/activity": { summary: "The caller's activity, newest first, paginated", tag: "accounts" },
  "POST /api/v1/api-keys": {
    summary: "Create an API key (shown once; rate-limited per user and address: 429 with Retry-After)",
    tag: "accounts",
    success: 201,
  },
  "GET /api/v1/api-keys": { summary: "The caller's API keys (prefixes, never the keys)", tag: "accounts" },
  "DELETE /api/v1/api-keys/:id": { summary: "Delete one of the caller's API keys", tag: "accounts", success: 204 },
  "GET /api/v1/users": { summary: "All users (admin)", tag: "users" },
  "POST /api/v1/users": { summary: "Create a user with any role (admin)", tag: "users", success: 201 },
  "PATCH /api/v1/users/:username": { summary: "Change a user's role or disabled flag (admin)", tag: "users" },
  "DELETE /api/v1/users/:username": {
    summary: "Delete a user; their events stay, the username stays reserved (admin)",
    tag: "users",
    success: 204,
  },
  "GET /api/v1/users/:username/activity": { summary: "Any user's activity (admin)", tag: "users" },
  "POST /api/v1/streams": {
    summary: "Create a stream (admin)",
    tag: "streams",
    success: 201,
    body: {
      type: "object",
      additionalProperties: false,
      required: ["name"],
      properties: {
        name: NAME,
        partitions: { type: "integer", minimum: 1, maximum: 1024 },
        schema: { type: "object" },
        timestampField: { type: "string" },
        retention: { type: "string" },
        analytics: {
          oneOf: [
            { type: "boolean" },
            {
              type: "object",
              additionalProperties: false,
              properties: {
                hot: { type: "string", description: 'hot window by event time, a duration (default "7d")' },
                archive: {
                  type: "string",
                  description: "how long archived rows are kept, by event time (default: for ever)",
                },
              },
            },
          ],
          description:
            'false: log only, no analytics table (default true); {"hot": "7d"}: indexed, rows older than 7 days move to the archive',
        },
        maxFutureSkew: {
          type: "string",
          description: 'how far ahead of ingest time an event\'s time may be, a duration (default "1h")',
        },
        rollups: {
          type: "array",
          maxItems: 16,
          description: "rollup tables kept as events are loaded, queried by name (docs/rollups.md)",
          items: ROLLUP,
        },
      },
    },
  },
  "GET /api/v1/streams": { summary: "All streams", tag: "streams" },
  "GET /api/v1/streams/:name": {
    summary: "One stream; each of its rollups with rowsIn and rowsKept (the rollup ratio)",
    tag: "streams",
  },
  "DELETE /api/v1/streams/:name": { summary: "Delete a stream (admin)", tag: "streams", success: 204 },
  "POST /api/v1/streams/:name/rollups": {
    summary:
      "Add a rollup to a stream that has data (admin): 202 with state building; backfilled from both tiers, then kept",
    tag: "streams",
    success: 202,
    body: ROLLUP,
  },
  "DELETE /api/v1/streams/:name/rollups/:rollup": {
    summary: "Remove a rollup (admin): 202 with state dropping; its table and files are deleted, then its declaration",
    tag: "streams",
    success: 202,
  },
  "POST /api/v1/streams/:name/events": {
    summary: "Ingest one event, an array, or NDJSON; all or nothing, durable on 200",
    tag: "streams",
    body: { oneOf: [EVENT, { type: "array", items: EVENT }] },
  },
  "POST /api/v1/streams/:name/imports": {
    summary:
      "Import a file (the body: NDJSON, CSV or Parquet) into the stream's archive (admin); 202 once stored, then a job",
    tag: "streams",
    success: 202,
  },
  "GET /api/v1/streams/:name/imports/:id": {
    summary: "An import's progress: running, done or failed with its error; stored after a restart (admin)",
    tag: "streams",
  },
  "GET /api/v1/streams/:name/columns": {
    summary: "The stream's event-field columns and their types, in the order they came in",
    tag: "streams",
  },
  "PATCH /api/v1/streams/:name/columns": {
    summary: "Widen columns (admin): BIGINT → DOUBLE → VARCHAR, any type → VARCHAR; never narrower",
    tag: "streams",
    body: {
      type: "object",
      minProperties: 1,
      additionalProperties: { type: "string", enum: ["BIGINT", "DOUBLE", "BOOLEAN", "VARCHAR", "JSON", "TIMESTAMPTZ"] },
    },
  },
  "GET /api/v1/streams/:name/tail": {
    summary: "Server-Sent Events of new events, scoped like queries",
    tag: "streams",
    produces: "text/event-stream",
  },
  "GET /api/v1/streams/:name/ws": {
    summary:
      "WebSocket producer: each text frame is a batch (object, array or NDJSON), answered in order by an ack once durable or an error frame",
    tag: "streams",
  },
  "GET /api/v1/sources": { summary: "Configured sources with state and counters (admin)", tag: "sources" },
  "GET /api/v1/sources/:name": { summary: "One source: state, reason, counters, spec (admin)", tag: "sources" },
  "POST /api/v1/sources": {
    summary: "Add an MQTT, Kafka topic or file source (admin)",
    tag: "sources",
    success: 201,
    body: { type: "object", required: ["name", "type"], additionalProperties: true },
  },
  "DELETE /api/v1/sources/:name": {
    summary: "Remove a source added through the API (admin)",
    tag: "sources",
    success: 204,
  },
  "POST /api/v1/sources/:name/restart": { summary: "Stop and start a source again (admin)", tag: "sources" },
  "POST /api/v1/query": {
    summary:
      "One read-only SELECT, scoped to the caller; bounded in rows, bytes and time (400 result_too_large, " +
      "query_timeout), admitted fairly across users (429 overloaded with Retry-After past the caller's queue)",
    tag: "query",
  },
  "POST /api/v1/pipelines": { summary: "Create a continuous query (admin)", tag: "pipelines", success: 201 },
  "GET /api/v1/pipelines": { summary: "All pipelines (admin, analyst)", tag: "pipelines" },
  "GET /api/v1/pipelines/:name": { summary: "One pipeline (admin, analyst)", tag: "pipelines" },
  "PATCH /api/v1/pipelines/:name": {
    summary: "Enable or disable a pipeline; re-enabling resumes where it stopped (admin)",
    tag: "pipelines",
    body: { type: "object", required: ["enabled"], properties: { enabled: { type: "boolean" } } },
  },
  "DELETE /api/v1/pipelines/:name": { summary: "Delete a pipeline (admin)", tag: "pipelines", success: 204 },
  "POST /api/v1/rules": {
    summary: "Create a CEP rule, active for every event ingested after the answer (admin)",
    tag: "rules",
    success: 201,
    body: RULE,
  },
  "GET /api/v1/rules": { summary: "All rules with their state (admin, analyst)", tag: "rules" },
  "GET /api/v1/rules/:id": { summary: "One rule (admin, analyst)", tag: "rules" },
  "PATCH /api/v1/rules/:id": {
    summary:
      "Change the fields given ({enabled} enables or disables); the whole result is validated and in effect before the answer (admin)",
    tag: "rules",
    body: { ...RULE, required: [] },
  },
  "PUT /api/v1/rules/:id": {
    summary: "Replace a rule's definition (enabled absent: unchanged), in effect before the answer (admin)",
    tag: "rules",
    body: RULE,
  },
  "DELETE /api/v1/rules/:id": { summary: "Delete a rule (admin)", tag: "rules", success: 204 },
  "GET /api/v1/alerts": { summary: "Alerts, newest first; a user sees only alerts about themselves", tag: "alerts" },
  "GET /api/v1/alerts/stream": {
    summary: "Server-Sent Events of new alerts, scoped like the list",
    tag: "alerts",
    produces: "text/event-stream",
  },
  "GET /api/v1/blocks": { summary: "Users blocked by rules, pending review (admin)", tag: "alerts" },
  "DELETE /api/v1/blocks/:userId": {
    summary: "Lift a block after review, recorded in the activity of both users (admin)",
    tag: "alerts",
    success: 204,
  },
  "GET /api/v1/operator-alerts": {
    summary: "Operator alerts on unusual traffic: spikes, drops to zero, lag growth (admin)",
    tag: "monitoring",
  },
  "GET /api/v1/stats": {
    summary: "Cumulative counters, gauges and latency histograms for the dashboard's live charts (admin, analyst)",
    tag: "monitoring",
  },
  "GET /api/v1/cluster": {
    summary:
      "The installation's instances, their endpoints, the slots and partitions each owns, lag per task, the last rebalance (admin)",
    tag: "monitoring",
  },
  "POST /api/v1/cluster/query": {
    summary:
      "Between the instances of a cluster only (signed with the installation's key): a query over the share of partitions this instance owns",
    tag: "monitoring",
  },
  "GET /api/v1/operator-alerts/stream": {
    summary: "Server-Sent Events of operator alerts as they are raised and resolved (admin)",
    tag: "monitoring",
    produces: "text/event-stream",
  },
};

const ERROR_SCHEMA = {
  type: "object",
  required: ["error", "message"],
  properties: {
    error: { type: "string", enum: [...ERROR_CODES] },
    message: { type: "string" },
    details: {},
  },
} as const;

function errorResponse(description: string): Json {
  return { description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } };
}

function successResponse(doc: RouteDoc | undefined): Json {
  const status = doc?.success ?? 200;
  if (status === 204) return { 204: { description: "Done; no body" } };
  const produces = doc?.produces ?? "application/json";
  const schema = produces === "application/json" ? { type: "object" } : { type: "string" };
  return { [status]: { description: "Success", content: { [produces]: { schema } } } };
}

/** `/users/:username` → `/users/{username}`, and the parameter names in order. */
function openApiPath(url: string): { path: string; params: string[] } {
  const params: string[] = [];
  const path = url.replace(/:([A-Za-z0-9_]+)/g, (_m, name: string) => {
    params.push(name);
    return `{${name}}`;
  });
  return { path, params };
}

function parameters(route: RegisteredRoute, pathParams: string[]): Json[] {
  const schema = (route.schema ?? {}) as { params?: Json; querystring?: Json };
  const paramProps = (schema.params?.properties ?? {}) as Record<string, Json>;
  const out: Json[] = pathParams.map((name) => ({
    name,
    in: "path",
    required: true,
    schema: paramProps[name] ?? { type: "string", minLength: 1 },
  }));
  const query = schema.querystring;
  if (query !== undefined) {
    const required = new Set((query.required as string[] | undefined) ?? []);
    for (const [name, s] of Object.entries((query.properties ?? {}) as Record<string, Json>)) {
      out.push({ name, in: "query", required: required.has(name), schema: s });
    }
  }
  return out;
}

/** Builds the document from the registered routes. */
export function buildOpenApiDocument(routes: readonly RegisteredRoute[], version: string): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const route of routes) {
    const key = routeKey(route);
    const doc = DOCS[key];
    const { path, params } = openApiPath(route.url);
    const body = (route.schema as { body?: Json } | undefined)?.body ?? doc?.body;
    const operation: Json = {
      operationId: key.replace(/[^A-Za-z0-9]+/g, "_").replace(/_$/, ""),
      summary: doc?.summary ?? "Undocumented route",
      tags: [doc?.tag ?? "other"],
      parameters: parameters(route, params),
      responses: {
        ...successResponse(doc),
        "4XX": errorResponse("Refused: see the error code"),
        "5XX": errorResponse("Failed or not ready"),
      },
      ...(route.access === "public" && { security: [] }),
      ...(body !== undefined && {
        requestBody: { required: true, content: { "application/json": { schema: body } } },
      }),
    };
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = operation;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Runnel",
      version,
      description: `Errors: ${ERROR_CODES.map((c) => `${c} (${ERROR_CATALOGUE[c].status})`).join(", ")}.`,
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "A login token or an API key" } },
      schemas: { Error: ERROR_SCHEMA },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

export function registerOpenApiRoute(app: FastifyInstance, version: string = PACKAGE_VERSION): void {
  let cached: Json | undefined;
  app.get("/openapi.json", { config: { access: "public" } }, async () => {
    // Routes are all registered before the server answers anything, so one build serves for good.
    cached ??= buildOpenApiDocument(app.runnelRoutes, version);
    return cached;
  });
}
