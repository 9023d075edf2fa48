import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { translateDatabaseError } from "../../src/control/db-errors.js";
import { RunnelError } from "../../src/core/errors.js";

function dbError(code: string, message = "boom", constraint?: string): Error {
  return Object.assign(new Error(message), { code, ...(constraint !== undefined && { constraint }) });
}

function codeOf(e: unknown): string | undefined {
  return e instanceof RunnelError ? e.code : undefined;
}

describe("database error translation", () => {
  it("names the field of a unique violation", () => {
    const e = translateDatabaseError(dbError("23505", "dup", "users_email_key"));
    assert.ok(e instanceof RunnelError);
    assert.equal(e.code, "conflict");
    assert.equal(e.message, "email already registered");
    assert.equal(e.status, 409);
  });

  it("keeps a generic message for constraints it does not know", () => {
    const e = translateDatabaseError(dbError("23505", "dup", "future_table_key"));
    assert.equal(codeOf(e), "conflict");
  });

  it("reports an unreachable database as not_ready, which is retryable", () => {
    for (const e of [
      dbError("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:5432"),
      dbError("57P01", "terminating connection due to administrator command"),
      dbError("08006", "connection failure"),
      new Error("Connection terminated unexpectedly"),
      new Error("timeout exceeded when trying to connect"),
    ]) {
      const t = translateDatabaseError(e);
      assert.equal(codeOf(t), "not_ready", e.message);
      assert.equal((t as RunnelError).retryable, true);
      assert.equal((t as RunnelError).cause, e);
    }
  });

  it("leaves other errors alone", () => {
    const syntax = dbError("42601", "syntax error");
    assert.equal(translateDatabaseError(syntax), syntax);
    const plain = new Error("something else");
    assert.equal(translateDatabaseError(plain), plain);
    assert.equal(translateDatabaseError("text"), "text");
  });
});
