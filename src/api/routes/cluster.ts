/**
 * `GET /api/v1/cluster` (admin): the installation's instances, where to reach each, the slots and
 * partitions each owns, the lag of each task and the last rebalance (docs/cluster.md).
 *
 * @example
 *   curl -H "authorization: Bearer $TOKEN" localhost:8080/api/v1/cluster
 *   // {"installation":"runnel","mode":"cluster","instanceId":"runnel-0","slots":4,"instances":[…]}
 */
import type { FastifyInstance } from "fastify";
import { INSTANCE_SIGNATURE_HEADER } from "../../cluster/queries/instance-auth.js";
import type { QueryRouter, ShareRequest } from "../../cluster/queries/router.js";
import { RunnelError } from "../../core/errors.js";
import type { ApiServices } from "../services.js";

export function registerClusterRoutes(app: FastifyInstance, services: ApiServices): void {
  app.get("/cluster", { config: { access: ["admin"] } }, async () => {
    if (services.cluster === undefined) throw new RunnelError("not_ready", "the cluster status is not available");
    return services.cluster.status();
  });
  // Another instance's query over a share of the partitions this one owns (src/cluster/queries/router.ts).
  app.post<{ Body: ShareRequest }>(
    "/cluster/query",
    {
      config: { access: "instance" },
      schema: { body: SHARE_REQUEST_SCHEMA },
      // The signature before the body's shape: a caller that is no instance learns nothing of it.
      preValidation: async (request) => {
        if (services.queryRouter === undefined) {
          throw new RunnelError("not_found", "this instance is not part of a cluster");
        }
        services.queryRouter.verify(
          request.headers[INSTANCE_SIGNATURE_HEADER],
          request.rawBody?.toString("utf8") ?? "",
        );
      },
    },
    async (request) => (services.queryRouter as QueryRouter).answerShare(request.body),
  );
}

const SHARE_REQUEST_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["sql", "params", "scope", "slots", "tables"],
  properties: {
    sql: { type: "string", minLength: 1, maxLength: 200_000 },
    params: { type: "array", maxItems: 100, items: { type: ["string", "number", "boolean", "null"] } },
    scope: {
      oneOf: [
        {
          type: "object",
          additionalProperties: false,
          required: ["kind"],
          properties: { kind: { const: "all" } },
        },
        {
          type: "object",
          additionalProperties: false,
          required: ["kind", "userId"],
          properties: { kind: { const: "user" }, userId: { type: "string", minLength: 1 } },
        },
      ],
    },
    slots: { type: "array", minItems: 1, maxItems: 4096, items: { type: "integer", minimum: 0 } },
    tables: { type: "array", maxItems: 1000, items: { type: "string", minLength: 1, maxLength: 200 } },
  },
} as const;
