/**
 * Alerts and blocks (API.md "Alerts and blocks"): the alert list and its live SSE feed, both
 * scoped so a `user` sees only alerts about their own events, and only those events; blocks for
 * admins.
 */
import type { FastifyInstance } from "fastify";
import type { RuleManager } from "../../cep/manager.js";
import type { AlertRecord } from "../../control/types.js";
import { RunnelError } from "../../core/errors.js";
import type { Principal } from "../../ingest/types.js";
import { principalOf } from "../app.js";
import type { ApiServices } from "../services.js";
import { openEventStream } from "../sse.js";

type PublicAlert = Omit<AlertRecord, "matchId">;

/**
 * The alert as `viewer` may see it, or undefined when it is none of theirs. Admins and analysts
 * see every alert whole. A `user` sees an alert that holds any of their events, with only those
 * events and only themselves named: a rule keyed by a device or a card matches several users'
 * events, and none of the others' (their card numbers, their usernames) may reach this user.
 */
export function alertSeenBy(viewer: Principal, a: AlertRecord): PublicAlert | undefined {
  const { matchId: _matchId, ...whole } = a;
  if (viewer.role !== "user") return whole;
  const me = viewer.username;
  if (!a.userIds.includes(me)) return undefined;
  const events = a.events.filter((e) => isObject(e) && e.user_id === me);
  return { ...whole, userId: me, userIds: [me], events };
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null;
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
      // A user's own alerts only, whatever `user` says; `user` finds every alert holding the user's events.
      const userId = principal.role === "user" ? principal.username : q.user;
      const alerts = await services.control.listAlerts({
        ...(q.rule !== undefined ? { ruleId: q.rule } : {}),
        ...(userId !== undefined ? { userId } : {}),
        ...(q.since !== undefined ? { since: new Date(q.since).toISOString() } : {}),
        limit,
      });
      return { alerts: alerts.flatMap((a) => alertSeenBy(principal, a) ?? []) };
    },
  );

  app.get("/alerts/stream", { config: { access: ["admin", "analyst", "user"] } }, async (request, reply) => {
    const principal = await principalOf(request, services);
    let unsubscribe = (): void => {};
    const sse = openEventStream(request, reply, "alerts", () => unsubscribe());
    unsubscribe = rules.onAlert((a) => {
      const seen = alertSeenBy(principal, a);
      if (seen !== undefined) sse.write(`id: ${a.id}\nevent: alert\ndata: ${JSON.stringify(seen)}\n\n`);
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
