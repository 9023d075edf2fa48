/**
 * `GET /api/v1/cluster` (admin): the installation's instances, where to reach each, the slots and
 * partitions each owns, the lag of each task and the last rebalance (docs/cluster.md).
 *
 * @example
 *   curl -H "authorization: Bearer $TOKEN" localhost:8080/api/v1/cluster
 *   // {"installation":"runnel","mode":"cluster","instanceId":"runnel-0","slots":4,"instances":[…]}
 */
import type { FastifyInstance } from "fastify";
import { RunnelError } from "../../core/errors.js";
import type { ApiServices } from "../services.js";

export function registerClusterRoutes(app: FastifyInstance, services: ApiServices): void {
  app.get("/cluster", { config: { access: ["admin"] } }, async () => {
    if (services.cluster === undefined) throw new RunnelError("not_ready", "the cluster status is not available");
    return services.cluster.status();
  });
}
