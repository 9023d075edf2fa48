/** CEP rules (API.md "Complex event processing rules"): admin-only CRUD; reads for admins and analysts. */
import type { FastifyInstance } from "fastify";
import type { RuleManager } from "../../cep/manager.js";
import { RunnelError } from "../../core/errors.js";
import { principalOf } from "../app.js";
import { requireRole } from "../auth/authenticate.js";
import type { ApiServices } from "../services.js";

export function registerRuleRoutes(app: FastifyInstance, services: ApiServices, rules: RuleManager): void {
  // The body is validated by the rule compiler, which names the offending field precisely.
  app.post("/rules", async (request, reply) => {
    requireRole(await principalOf(request, services), "admin");
    return reply.status(201).send(await rules.create(request.body));
  });

  app.get("/rules", async (request) => {
    requireRole(await principalOf(request, services), "admin", "analyst");
    return { rules: await rules.list() };
  });

  app.get<{ Params: { id: string } }>("/rules/:id", async (request) => {
    requireRole(await principalOf(request, services), "admin", "analyst");
    return rules.get(request.params.id);
  });

  app.patch<{ Params: { id: string }; Body: { enabled?: unknown } }>("/rules/:id", async (request) => {
    requireRole(await principalOf(request, services), "admin");
    const body = request.body as Record<string, unknown> | undefined;
    if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new RunnelError("invalid_input", "the body must be a JSON object {enabled}");
    }
    for (const k of Object.keys(body)) {
      if (k !== "enabled") throw new RunnelError("invalid_input", `/${k}: unknown field (only enabled can change)`);
    }
    if (typeof body.enabled !== "boolean") throw new RunnelError("invalid_input", "/enabled: must be true or false");
    return rules.setEnabled(request.params.id, body.enabled);
  });

  app.delete<{ Params: { id: string } }>("/rules/:id", async (request, reply) => {
    requireRole(await principalOf(request, services), "admin");
    await rules.delete(request.params.id);
    return reply.status(204).send();
  });
}
