/**
 * Operator alerts (docs/api.md, docs/monitoring.md): unusual traffic found by the anomaly
 * detector, for admins only. Kept apart from rule alerts (`/api/v1/alerts`), which are about
 * users' events and are visible to those users.
 */
import type { FastifyInstance } from "fastify";
import { RunnelError } from "../../core/errors.js";
import type { OperatorAlertKind } from "../../monitoring/anomaly.js";
import type { OperatorAlertLog } from "../../monitoring/operator-alerts.js";
import type { ApiServices } from "../services.js";
import { openEventStream } from "../sse.js";

export function registerOperatorAlertRoutes(app: FastifyInstance, services: ApiServices): void {
  const log = (): OperatorAlertLog => {
    if (services.operatorAlerts === undefined) throw new RunnelError("not_ready", "operator alerting is not running");
    return services.operatorAlerts;
  };

  app.get<{ Querystring: { active?: boolean; kind?: OperatorAlertKind; limit?: number } }>(
    "/operator-alerts",
    {
      config: { access: ["admin"] },
      schema: {
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            active: { type: "string", enum: ["true", "false"] },
            kind: { type: "string", enum: ["spike", "drop", "lag_growth", "dead_letter", "consumer_failing"] },
            limit: { type: "string", pattern: "^[0-9]{1,4}$" },
          },
        },
      },
    },
    async (request) => {
      // The app does not coerce query types (coerceTypes: false), so they arrive as strings.
      const q = request.query as { active?: string; kind?: OperatorAlertKind; limit?: string };
      const limit = q.limit === undefined ? 100 : Math.min(1000, Math.max(1, Number(q.limit)));
      return {
        alerts: log().list({
          ...(q.active !== undefined && { active: q.active === "true" }),
          ...(q.kind !== undefined && { kind: q.kind }),
          limit,
        }),
      };
    },
  );

  app.get("/operator-alerts/stream", { config: { access: ["admin"] } }, async (request, reply) => {
    const alerts = log();
    let unsubscribe = (): void => {};
    const sse = openEventStream(request, reply, "operator alerts", () => unsubscribe());
    unsubscribe = alerts.subscribe((update) => {
      sse.write(`event: ${update.type}\nid: ${update.alert.id}\ndata: ${JSON.stringify(update.alert)}\n\n`);
    });
  });
}
