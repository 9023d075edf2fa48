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
import { principalOf } from "../app.js";
import { requireRole } from "../auth/authenticate.js";
import type { ApiServices } from "../services.js";

export function registerSourceRoutes(app: FastifyInstance, services: ApiServices): void {
  const manager = async (request: Parameters<typeof principalOf>[0]): Promise<SourceManager> => {
    requireRole(await principalOf(request, services), "admin");
    if (services.sources === undefined) throw new RunnelError("not_ready", "sources are not running in this process");
    return services.sources;
  };

  app.get("/sources", async (request) => ({ sources: (await manager(request)).list() }));

  app.get<{ Params: { name: string } }>("/sources/:name", async (request) => {
    const status = (await manager(request)).get(request.params.name);
    if (!status) throw new RunnelError("not_found", `source "${request.params.name}" does not exist`);
    return { ...status, spec: redact((await manager(request)).specOf(request.params.name)) };
  });

  app.post("/sources", async (request, reply) => {
    const status = await (await manager(request)).create(request.body);
    return reply.status(201).send(status);
  });

  app.delete<{ Params: { name: string } }>("/sources/:name", async (request, reply) => {
    await (await manager(request)).delete(request.params.name);
    return reply.status(204).send();
  });

  app.post<{ Params: { name: string } }>("/sources/:name/restart", async (request) =>
    (await manager(request)).restart(request.params.name),
  );
}

/** Specs may hold broker passwords: never echo them. */
function redact(spec: object | undefined): object | undefined {
  if (spec === undefined || !("password" in spec)) return spec;
  return { ...spec, password: "***" };
}
