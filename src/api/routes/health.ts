import type { FastifyInstance } from "fastify";
import type { ApiServices } from "../services.js";

export function registerHealthRoutes(app: FastifyInstance, services: ApiServices): void {
  app.get("/healthz", { config: { access: "public" } }, async () => ({ status: "ok" }));

  app.get("/readyz", { config: { access: "public" } }, async (_request, reply) => {
    const components = await services.readiness();
    for (const [component, ready] of Object.entries(components)) {
      services.metrics.componentReady.set({ component }, ready ? 1 : 0);
    }
    // Consumers that keep failing (these make `processing` false) or recently dead-lettered records.
    const consumers = services.consumers?.() ?? [];
    const failing = Object.keys(components).filter((c) => !components[c]);
    if (failing.length === 0) return { status: "ready", components, ...(consumers.length > 0 && { consumers }) };
    const named = consumers.filter((c) => c.state === "failing").map((c) => `${c.consumer} (${c.error})`);
    return reply.status(503).send({
      error: "not_ready",
      message: `not ready: ${failing.join(", ")}${named.length > 0 ? `; failing: ${named.join(", ")}` : ""}`,
      details: { components, ...(consumers.length > 0 && { consumers }) },
    });
  });

  app.get("/metrics", { config: { access: "public" } }, async (_request, reply) => {
    const registry = services.metrics.registry;
    return reply.type(registry.contentType).send(await registry.metrics());
  });
}
