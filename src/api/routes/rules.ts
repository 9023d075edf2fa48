/** CEP rules (API.md "Complex event processing rules"): admin-only CRUD; reads for admins and analysts. */
import type { FastifyInstance } from "fastify";
import type { RuleManager } from "../../cep/manager.js";

export function registerRuleRoutes(app: FastifyInstance, rules: RuleManager): void {
  const admins = { config: { access: ["admin"] } } as const;
  const staff = { config: { access: ["admin", "analyst"] } } as const;

  // The body is validated by the rule compiler, which names the offending field precisely.
  app.post("/rules", admins, async (request, reply) => {
    return reply.status(201).send(await rules.create(request.body));
  });

  app.get("/rules", staff, async () => {
    return { rules: await rules.list() };
  });

  app.get<{ Params: { id: string } }>("/rules/:id", staff, async (request) => {
    return rules.get(request.params.id);
  });

  // PATCH replaces the fields it names ({enabled} alone as before), PUT the whole definition;
  // either way the resulting rule is validated whole and takes effect before the response.
  app.patch<{ Params: { id: string } }>("/rules/:id", admins, async (request) => {
    return rules.update(request.params.id, request.body, "merge");
  });

  app.put<{ Params: { id: string } }>("/rules/:id", admins, async (request) => {
    return rules.update(request.params.id, request.body, "replace");
  });

  app.delete<{ Params: { id: string } }>("/rules/:id", admins, async (request, reply) => {
    await rules.delete(request.params.id);
    return reply.status(204).send();
  });
}
