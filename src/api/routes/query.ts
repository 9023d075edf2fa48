/** Real-time analytics (API.md "Querying"): one read-only SELECT, scoped to the caller. */
import type { FastifyInstance } from "fastify";
import type { QueryScope } from "../../analytics/types.js";
import { RunnelError } from "../../core/errors.js";
import { principalOf } from "../app.js";
import type { ApiServices } from "../services.js";

export function registerQueryRoutes(app: FastifyInstance, services: ApiServices): void {
  app.post<{ Body: { sql: string; params?: unknown[] } }>(
    "/query",
    {
      config: { access: ["admin", "analyst", "user"] },
      schema: {
        body: {
          type: "object",
          additionalProperties: false,
          required: ["sql"],
          properties: {
            sql: { type: "string", minLength: 1, maxLength: 100_000 },
            params: { type: "array", maxItems: 100, items: { type: ["string", "number", "boolean", "null"] } },
          },
        },
      },
    },
    async (request, reply) => {
      const principal = await principalOf(request, services);
      const scope: QueryScope =
        principal.role === "user" ? { kind: "user", userId: principal.username } : { kind: "all" };
      const { sql, params = [] } = request.body;
      const stopTimer = services.metrics.queryDuration.startTimer();
      // A query still waiting for its turn when the client hangs up is dropped from the queue.
      // (The response's "close", not the request's: that one fires once the body has been read.)
      const gone = new AbortController();
      const onClose = () => gone.abort(new RunnelError("invalid_input", "the client closed the connection"));
      reply.raw.once("close", onClose);
      try {
        // Charged to the user, whichever of their tokens or keys asked.
        const router = services.queryRouter;
        const result = await services.queries.run(
          principal.userId,
          () =>
            router === undefined ? services.analytics.query(sql, params, scope) : router.query(sql, params, scope),
          gone.signal,
        );
        stopTimer({ outcome: "ok" });
        return result;
      } catch (caught) {
        const e = await explainLogOnly(caught, services);
        const refused =
          e instanceof RunnelError &&
          (e.domain === "user" || e.code === "overloaded" || e.code === "cluster_rebalancing");
        stopTimer({ outcome: refused ? "refused" : "error" });
        if (refused) services.metrics.queryRefusals.inc({ reason: e.code });
        throw e;
      } finally {
        reply.raw.off("close", onClose);
      }
    },
  );
}

/**
 * A query naming a stream kept out of the analytics store fails as an unknown table would; say
 * why instead, and where its events can be read.
 */
async function explainLogOnly(e: unknown, services: ApiServices): Promise<unknown> {
  if (!(e instanceof RunnelError) || e.code !== "stream_not_found") return e;
  // The query checker names the table it did not find.
  const name = (e.details as { stream?: unknown } | undefined)?.stream;
  if (typeof name !== "string" || (await services.streams.get(name))?.analytics !== false) return e;
  return new RunnelError(
    "stream_not_found",
    `stream ${name} is not in the analytics store (created with "analytics": false): ` +
      "read it with the live tail, a pipeline or a rule, or query a stream a pipeline derives from it",
    { details: { stream: name } },
  );
}
