/** Processing pipelines (API.md): continuous queries whose results form a new stream. */
import type { FastifyInstance } from "fastify";
import { RunnelError } from "../../core/errors.js";
import type { ApiServices } from "../services.js";

export function registerPipelineRoutes(app: FastifyInstance, services: ApiServices): void {
  const { pipelines } = services;
  const admins = { config: { access: ["admin"] } } as const;
  const staff = { config: { access: ["admin", "analyst"] } } as const;

  app.post<{ Body: { name: string; sql: string; startFrom?: "earliest" | "now"; options?: unknown } }>(
    "/pipelines",
    {
      ...admins,
      schema: {
        body: {
          type: "object",
          additionalProperties: false,
          required: ["name", "sql"],
          properties: {
            name: { type: "string" },
            sql: { type: "string", minLength: 1, maxLength: 100_000 },
            startFrom: { type: "string", enum: ["earliest", "now"] },
            // Event-time options of windowed pipelines: durations ("5s") or milliseconds.
            options: {
              type: "object",
              additionalProperties: false,
              properties: {
                outOfOrderness: { type: ["string", "integer"] },
                idleTimeout: { type: ["string", "integer"] },
                allowedLateness: { type: ["string", "integer"] },
                checkpointInterval: { type: ["string", "integer"] },
              },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const created = await pipelines.create(request.body);
      return reply.status(201).send(created);
    },
  );

  app.get("/pipelines", staff, async () => {
    return { pipelines: await pipelines.list() };
  });

  app.get<{ Params: { name: string } }>("/pipelines/:name", staff, async (request) => {
    const pipeline = await pipelines.get(request.params.name);
    if (!pipeline) throw new RunnelError("not_found", `pipeline "${request.params.name}" does not exist`);
    return pipeline;
  });

  // Validated here, like PATCH /rules/:id, so the 400 names the offending field.
  app.patch<{ Params: { name: string }; Body: unknown }>("/pipelines/:name", admins, async (request) => {
    const body: unknown = request.body;
    if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new RunnelError("invalid_input", "the body must be a JSON object {enabled}");
    }
    const fields = body as Record<string, unknown>;
    for (const k of Object.keys(fields)) {
      if (k !== "enabled") throw new RunnelError("invalid_input", `/${k}: unknown field (only enabled can change)`);
    }
    if (typeof fields.enabled !== "boolean") throw new RunnelError("invalid_input", "/enabled: must be true or false");
    return pipelines.setEnabled(request.params.name, fields.enabled);
  });

  app.delete<{ Params: { name: string } }>("/pipelines/:name", admins, async (request, reply) => {
    await pipelines.delete(request.params.name);
    return reply.status(204).send();
  });
}
