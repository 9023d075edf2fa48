/**
 * Keeps long-lived connections (Server-Sent Events, WebSocket producers) honest after they were
 * authorised: a connection re-checks the credential it opened with
 *  - at once, on a Revocation that concerns its user (./revocations.ts), bypassing the cache, and
 *  - every `recheckMs` (the credential cache's TTL), through the cache, which catches changes made
 *    by another instance on a shared PostgreSQL (they publish nothing here).
 * So a revoked or demoted credential loses its connections at once on this instance and within
 * twice the TTL (2 s by default) on another. A failed check, or a role other than the one the
 * connection was opened with (its scope was chosen for that role), ends the connection through
 * `onRevoked` with the reason as a RunnelError (unauthorized, token_expired or forbidden).
 *
 * @example
 * const stop = guard.watch(request, (err) => socket.close(closeCodeOf(err), err.message));
 * socket.on("close", stop);
 */
import type { FastifyRequest } from "fastify";
import { RunnelError } from "../../core/errors.js";
import { toRunnelError } from "../errors.js";
import type { Authenticator } from "./authenticate.js";
import type { Revocations } from "./revocations.js";

export class ConnectionGuard {
  constructor(
    private readonly auth: Pick<Authenticator, "authenticate">,
    private readonly revocations: Revocations,
    private readonly recheckMs: number,
  ) {}

  /**
   * Watches the connection `request` opened (its principal and credential were set by the access
   * hook, ./access.ts); returns the function that stops watching. `onRevoked` is called at most once.
   */
  watch(request: FastifyRequest, onRevoked: (reason: RunnelError) => void): () => void {
    const principal = request.principal;
    const credential = request.credential;
    if (principal === undefined) return () => {};
    let stopped = false;
    let checking = false;
    // A revocation that arrives during a check (which may have read the cache) needs a fresh one after it.
    let again = false;
    const check = async (fresh: boolean): Promise<void> => {
      if (stopped) return;
      if (checking) {
        again ||= fresh;
        return;
      }
      checking = true;
      let reason: RunnelError | undefined;
      try {
        const now = await this.auth.authenticate(credential, { fresh });
        if (now.role !== principal.role) {
          reason = new RunnelError(
            "forbidden",
            `the role changed from ${principal.role} to ${now.role}; this connection was opened for ${principal.role}`,
          );
        }
      } catch (e) {
        const err = toRunnelError(e);
        // A control store that is briefly out of reach (503) revokes nothing: the next check decides.
        if (err.status === 401 || err.status === 403) reason = err;
      } finally {
        checking = false;
      }
      if (reason !== undefined) {
        if (stopped) return;
        stop();
        onRevoked(reason);
      } else if (again) {
        again = false;
        await check(true);
      }
    };
    const unsubscribe = this.revocations.subscribe((revocation) => {
      if (revocation.userId === principal.userId) void check(true);
    });
    const timer = setInterval(() => void check(false), this.recheckMs);
    timer.unref();
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      unsubscribe();
    };
    return stop;
  }
}

/**
 * The WebSocket close code for a revocation: 4401 and 4403 mirror HTTP 401 and 403 in the
 * application range (RFC 6455 §7.4.2), as several WebSocket APIs do.
 */
export function closeCodeOf(reason: RunnelError): number {
  return reason.status === 403 ? 4403 : reason.status === 401 ? 4401 : 1008;
}

/** A close frame's reason holds at most 123 bytes of UTF-8. */
export function closeReasonOf(reason: RunnelError): string {
  let text = `${reason.code}: ${reason.message}`;
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -1);
  return text;
}
