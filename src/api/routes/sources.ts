/**
 * Sources (admin only): `GET /api/v1/sources` and `GET /api/v1/sources/{name}` report each
 * source's state (starting, running, lagging, failed with the reason, stopped) and counters;
 * `POST /api/v1/sources` adds one (same fields as the sources file); `DELETE` removes one added
 * through the API; `POST /api/v1/sources/{name}/restart` starts one again. Refused records are in
 * `<stream>_dead_letter`, queryable with SQL like any stream.
 */
import type { FastifyInstance } from "fastify";
import { RunnelError } from "../../core/errors.js";
import type { SourceManager } from "../../sources/manager.js";
import type { ApiServices } from "../services.js";

export function registerSourceRoutes(app: FastifyInstance, services: ApiServices): void {
  const manager = (): SourceManager => {
    if (services.sources === undefined) throw new RunnelError("not_ready", "sources are not running in this process");
    return services.sources;
  };

  const admins = { config: { access: ["admin"] } } as const;

  app.get("/sources", admins, async () => ({ sources: manager().list() }));

  app.get<{ Params: { name: string } }>("/sources/:name", admins, async (request) => {
    const status = manager().get(request.params.name);
    if (!status) throw new RunnelError("not_found", `source "${request.params.name}" does not exist`);
    return { ...status, spec: redact(manager().specOf(request.params.name)) };
  });

  app.post("/sources", admins, async (request, reply) => {
    const status = await manager().create(request.body);
    return reply.status(201).send(status);
  });

  app.delete<{ Params: { name: string } }>("/sources/:name", admins, async (request, reply) => {
    await manager().delete(request.params.name);
    return reply.status(204).send();
  });

  app.post<{ Params: { name: string } }>("/sources/:name/restart", admins, async (request) =>
    manager().restart(request.params.name),
  );
}

/** Specs may hold broker passwords: never echo them. */
function redact(spec: object | undefined): object | undefined {
  if (spec === undefined || !("password" in spec)) return spec;
  return { ...spec, password: "***" };
}
