/**
 * Alerts and blocks (API.md "Alerts and blocks"): the alert list and its live SSE feed, both
 * scoped so a `user` sees only alerts about themselves; blocks for admins.
 */
import type { FastifyInstance } from "fastify";
import type { RuleManager } from "../../cep/manager.js";
import type { AlertRecord } from "../../control/types.js";
import { RunnelError } from "../../core/errors.js";
import { principalOf } from "../app.js";
import type { ApiServices } from "../services.js";
import { openEventStream } from "../sse.js";

function publicAlert(a: AlertRecord): Omit<AlertRecord, "matchId"> {
  const { matchId: _matchId, ...rest } = a;
  return rest;
}

export function registerAlertRoutes(app: FastifyInstance, services: ApiServices, rules: RuleManager): void {
  app.get<{ Querystring: { rule?: string; user?: string; since?: string; limit?: string } }>(
    "/alerts",
    { config: { access: ["admin", "analyst", "user"] } },
    async (request) => {
      const principal = await principalOf(request, services);
      const q = request.query;
      const limit = q.limit === undefined ? 100 : Number(q.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw new RunnelError("invalid_input", "limit: must be an integer from 1 to 1000");
      }
      if (q.since !== undefined && Number.isNaN(Date.parse(q.since))) {
        throw new RunnelError("invalid_input", "since: must be an ISO-8601 time");
      }
      // A user's own alerts only, whatever `user` says.
      const userId = principal.role === "user" ? principal.username : q.user;
      const alerts = await services.control.listAlerts({
        ...(q.rule !== undefined ? { ruleId: q.rule } : {}),
        ...(userId !== undefined ? { userId } : {}),
        ...(q.since !== undefined ? { since: new Date(q.since).toISOString() } : {}),
        limit,
      });
      return { alerts: alerts.map(publicAlert) };
    },
  );

  app.get("/alerts/stream", { config: { access: ["admin", "analyst", "user"] } }, async (request, reply) => {
    const principal = await principalOf(request, services);
    const only = principal.role === "user" ? principal.username : undefined;
    let unsubscribe = (): void => {};
    const sse = openEventStream(request, reply, "alerts", () => unsubscribe());
    unsubscribe = rules.onAlert((a) => {
      if (only !== undefined && a.userId !== only) return;
      sse.write(`id: ${a.id}\nevent: alert\ndata: ${JSON.stringify(publicAlert(a))}\n\n`);
    });
  });

  app.get("/blocks", { config: { access: ["admin"] } }, async () => {
    return { blocks: await rules.listBlocks() };
  });

  app.delete<{ Params: { userId: string }; Querystring: { stream?: string } }>(
    "/blocks/:userId",
    { config: { access: ["admin"] } },
    async (request, reply) => {
      const principal = await principalOf(request, services);
      await rules.unblock(request.params.userId, request.query.stream, {
        id: principal.userId,
        username: principal.username,
      });
      return reply.status(204).send();
    },
  );
}
