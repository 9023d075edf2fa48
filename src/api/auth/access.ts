/**
 * Who may call a route is declared where the route is declared, and checked here, once, in an
 * onRequest hook: before the body is read or parsed, so a request with a bad credential costs no
 * parsing (an ingest body with a bad credential answers 401, never 400).
 *
 * @example
 * app.get("/rules", { config: { access: ["admin", "analyst"] } }, handler);
 * app.post("/auth/login", { config: { access: "public" } }, handler);
 * app.post("/cluster/query", { config: { access: "instance" } }, handler); // signed by another instance
 *
 * Finer checks that depend on the resource ("your own key", "only an admin mints service keys")
 * stay in the handlers. A route that declares nothing is refused at runtime (fail closed), and
 * test/api/route-access.test.ts fails for it.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { INSTANCE_SIGNATURE_HEADER } from "../../cluster/queries/instance-auth.js";
import { ROLES, type Role } from "../../control/types.js";
import { RunnelError } from "../../core/errors.js";
import type { Authenticator } from "./authenticate.js";

/**
 * "public": no credential; "authenticated": any role; "instance": only the installation's other
 * instances, whose signature of the body the route checks (src/cluster/queries/instance-auth.ts);
 * else the roles allowed.
 */
export type RouteAccess = "public" | "authenticated" | "instance" | readonly Role[];

declare module "fastify" {
  interface FastifyContextConfig {
    access?: RouteAccess;
    /**
     * The credential may also come as `?access_token=` (browsers cannot set headers on a
     * WebSocket or an EventSource). Off unless a route asks for it: query strings end up in logs.
     */
    queryToken?: boolean;
  }
  interface FastifyRequest {
    /** The Authorization header value the principal was resolved from, for re-checks. */
    credential?: string;
  }
}

/** The roles `access` admits; empty for "public" and "instance" (no user may call those). */
export function rolesOf(access: RouteAccess): readonly Role[] {
  if (access === "public" || access === "instance") return [];
  return access === "authenticated" ? ROLES : access;
}

export function checkRouteAccess(app: FastifyInstance, auth: Pick<Authenticator, "authenticate">): void {
  app.decorateRequest("credential", undefined);
  app.addHook("onRequest", async (request) => {
    // Unmatched requests (404s, the dashboard's files) are answered by the not-found handler.
    if (request.is404) return;
    // routeOptions is built afresh on every read (Fastify 5): read it once per request.
    const { config } = request.routeOptions;
    const access = config.access;
    if (access === "public") return;
    if (access === undefined) {
      throw new RunnelError("forbidden", `${request.method} ${request.routeOptions.url} declares no access`);
    }
    // The signature covers the body, so the route checks it once the body is read; a request
    // without one goes no further.
    if (access === "instance") {
      if (request.headers[INSTANCE_SIGNATURE_HEADER] === undefined) {
        throw new RunnelError("unauthorized", "only the installation's instances may call this");
      }
      return;
    }
    const header = credentialOf(request, config.queryToken === true);
    const principal = await auth.authenticate(header);
    request.principal = principal;
    request.credential = header;
    const roles = rolesOf(access);
    if (!roles.includes(principal.role)) {
      throw new RunnelError("forbidden", `this needs the ${roles.join(" or ")} role; you act as ${principal.role}`);
    }
  });
}

function credentialOf(request: FastifyRequest, queryToken: boolean): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined || !queryToken) return header;
  const token = (request.query as Record<string, unknown> | undefined)?.access_token;
  return typeof token === "string" ? `Bearer ${token}` : undefined;
}
