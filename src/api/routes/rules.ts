/** CEP rules (API.md "Complex event processing rules"): admin-only CRUD; reads for admins and analysts. */
import type { FastifyInstance } from "fastify";
import type { RuleManager } from "../../cep/manager.js";
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

  // PATCH replaces the fields it names ({enabled} alone as before), PUT the whole definition;
  // either way the resulting rule is validated whole and takes effect before the response.
  app.patch<{ Params: { id: string } }>("/rules/:id", async (request) => {
    requireRole(await principalOf(request, services), "admin");
    return rules.update(request.params.id, request.body, "merge");
  });

  app.put<{ Params: { id: string } }>("/rules/:id", async (request) => {
    requireRole(await principalOf(request, services), "admin");
    return rules.update(request.params.id, request.body, "replace");
  });

  app.delete<{ Params: { id: string } }>("/rules/:id", async (request, reply) => {
    requireRole(await principalOf(request, services), "admin");
    await rules.delete(request.params.id);
    return reply.status(204).send();
  });
}
