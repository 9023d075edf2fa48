/** The connection guard: which revocations end a watched connection, and when. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FastifyRequest } from "fastify";
import type { AuthPrincipal } from "../../../src/api/auth/authenticate.js";
import { ConnectionGuard, closeCodeOf, closeReasonOf } from "../../../src/api/auth/connection-guard.js";
import { Revocations } from "../../../src/api/auth/revocations.js";
import { RunnelError } from "../../../src/core/errors.js";
import { until } from "../../helpers/poll.js";

const ANN: AuthPrincipal = { userId: "ann-id", username: "ann", role: "analyst", credential: "token" };

/** An authenticator whose answer the test sets; counts fresh (uncached) checks. */
function fakeAuth() {
  const state = { answer: (): AuthPrincipal => ANN, fresh: 0, cached: 0 };
  const auth = {
    authenticate: async (_header: string | undefined, options: { fresh?: boolean } = {}) => {
      if (options.fresh === true) state.fresh++;
      else state.cached++;
      return state.answer();
    },
  };
  return { state, auth };
}

const request = { principal: ANN, credential: "Bearer t" } as unknown as FastifyRequest;

describe("connection guard", () => {
  it("a revocation of the connection's user re-checks at once, bypassing the cache, and ends it", async () => {
    const revocations = new Revocations();
    const { state, auth } = fakeAuth();
    const guard = new ConnectionGuard(auth, revocations, 60_000);
    const ended: RunnelError[] = [];
    guard.watch(request, (reason) => ended.push(reason));
    revocations.publish({ userId: "someone-else", reason: "disabled" });
    await new Promise((r) => setImmediate(r));
    assert.equal(state.fresh, 0);
    state.answer = () => {
      throw new RunnelError("unauthorized", "the token has been revoked; log in again");
    };
    revocations.publish({ userId: ANN.userId, reason: "disabled" });
    await until(
      async () => ended.length,
      (n) => n === 1,
      "the connection to end",
    );
    assert.equal(state.fresh, 1);
    assert.equal(ended[0]?.code, "unauthorized");
    assert.equal(revocations.size, 0, "the guard stops listening once it has ended the connection");
  });

  it("a key deletion that leaves the connection's credential valid does not end it", async () => {
    const revocations = new Revocations();
    const { state, auth } = fakeAuth();
    const ended: RunnelError[] = [];
    new ConnectionGuard(auth, revocations, 60_000).watch(request, (reason) => ended.push(reason));
    revocations.publish({ userId: ANN.userId, reason: "api_key_deleted", apiKeyId: "other-key" });
    await until(
      async () => state.fresh,
      (n) => n === 1,
      "the re-check",
    );
    assert.deepEqual(ended, []);
  });

  it("the periodic re-check catches a change made elsewhere: a new role ends the connection with forbidden", async () => {
    const revocations = new Revocations();
    const { state, auth } = fakeAuth();
    const ended: RunnelError[] = [];
    new ConnectionGuard(auth, revocations, 20).watch(request, (reason) => ended.push(reason));
    state.answer = () => ({ ...ANN, role: "user" });
    await until(
      async () => ended.length,
      (n) => n === 1,
      "the periodic re-check",
    );
    assert.equal(ended[0]?.code, "forbidden");
    assert.equal(closeCodeOf(ended[0]!), 4403);
  });

  it("a control store out of reach (503) ends nothing", async () => {
    const revocations = new Revocations();
    const { state, auth } = fakeAuth();
    state.answer = () => {
      throw new RunnelError("not_ready", "control database is unavailable");
    };
    const ended: RunnelError[] = [];
    const stop = new ConnectionGuard(auth, revocations, 20).watch(request, (reason) => ended.push(reason));
    await until(
      async () => state.cached,
      (n) => n >= 3,
      "several periodic re-checks",
    );
    assert.deepEqual(ended, []);
    stop();
    assert.equal(revocations.size, 0);
  });

  it("close reasons fit a WebSocket close frame", () => {
    const long = new RunnelError("unauthorized", "é".repeat(200));
    assert.ok(Buffer.byteLength(closeReasonOf(long)) <= 123);
    assert.equal(closeCodeOf(long), 4401);
  });
});
