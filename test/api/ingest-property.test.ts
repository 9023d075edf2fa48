/**
 * Property: whatever body arrives at the HTTP ingest endpoint, the request is either fully
 * accepted (200, `accepted` equal to its number of events, all of them stored) or fully refused
 * (4xx with API.md's JSON error, nothing stored), and the server stays up.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

let t: TestRunnel;
let userToken: string;

before(async () => {
  t = await startTestRunnel({ env: { RUNNEL_MAX_BODY_BYTES: "64KiB", RUNNEL_MAX_EVENT_BYTES: "4KiB" } });
  assert.equal(
    (await t.call("POST", "/api/v1/streams", { token: t.adminToken, body: { name: "anything" } })).status,
    201,
  );
  const signup = await t.call("POST", "/api/v1/auth/signup", {
    body: { username: "prop", email: "prop@example.com", password: "password-1" },
  });
  assert.equal(signup.status, 201);
  userToken = await t.login("prop", "password-1");
});
after(() => t.close());

const HOSTILE_KEYS = ["__proto__", "constructor", "prototype", "user_id", "timestamp", "", "\u0000", "é", "💥"];
const key = fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 12 }));
const scalar = fc.oneof(
  fc.string({ maxLength: 40, unit: "grapheme" }),
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom("2026-11-28T12:00:00Z", "not a date", "9999-99-99", 1e300, -1),
);
const value = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small" }, scalar, tie("array"), tie("object")),
  array: fc.array(tie("value"), { maxLength: 4 }),
  object: fc.dictionary(key, tie("value"), { maxKeys: 5 }),
})).value;
const event = fc.dictionary(key, value, { maxKeys: 6 });

/** Bodies as sent on the wire, with the number of events a 200 must report (undefined: any). */
interface Body {
  readonly bytes: Uint8Array;
  readonly contentType: string | undefined;
  readonly events?: number;
}

const enc = new TextEncoder();
const body: fc.Arbitrary<Body> = fc.oneof(
  event.map((e) => ({ bytes: enc.encode(JSON.stringify(e)), contentType: "application/json", events: 1 })),
  fc.array(event, { maxLength: 20 }).map((es) => ({
    bytes: enc.encode(JSON.stringify(es)),
    contentType: "application/json",
    ...(es.length > 0 && { events: es.length }),
  })),
  fc.array(event, { minLength: 1, maxLength: 20 }).map((es) => ({
    bytes: enc.encode(es.map((e) => JSON.stringify(e)).join("\n")),
    contentType: "application/x-ndjson",
    events: es.length,
  })),
  fc
    .array(
      fc.oneof(
        event.map((e) => JSON.stringify(e)),
        fc.string({ maxLength: 30 }),
      ),
      { maxLength: 10 },
    )
    .map((ls) => ({
      bytes: enc.encode(ls.join("\n")),
      contentType: "application/x-ndjson",
    })),
  fc.jsonValue().map((v) => ({ bytes: enc.encode(JSON.stringify(v)), contentType: "application/json" })),
  fc.string({ maxLength: 200, unit: "binary" }).map((s) => ({ bytes: enc.encode(s), contentType: "application/json" })),
  fc.uint8Array({ maxLength: 300 }).map((b) => ({ bytes: b, contentType: "application/x-ndjson" })),
  fc
    .tuple(fc.constantFrom("text/plain", "application/xml", "multipart/form-data", undefined), fc.string())
    .map(([contentType, s]) => ({ bytes: enc.encode(s), contentType })),
  fc.integer({ min: 1, max: 100_000 }).map((n) => ({
    bytes: enc.encode(JSON.stringify({ pad: "x".repeat(n) })),
    contentType: "application/json",
  })),
  fc.integer({ min: 1, max: 2000 }).map((depth) => ({
    bytes: enc.encode(`${"[".repeat(depth)}${"]".repeat(depth)}`),
    contentType: "application/json",
  })),
);

test("every ingest request is fully accepted or fully refused with a JSON error; the server stays up", async () => {
  let stored = 0;
  await fc.assert(
    fc.asyncProperty(body, fc.option(fc.string({ minLength: 1, maxLength: 20 })), async (b, idem) => {
      const res = await t.app.inject({
        method: "POST",
        url: "/api/v1/streams/anything/events",
        headers: {
          authorization: `Bearer ${userToken}`,
          ...(b.contentType !== undefined && { "content-type": b.contentType }),
          ...(idem !== null && { "idempotency-key": `${idem}-${Math.random()}` }),
        },
        payload: Buffer.from(b.bytes),
      });
      const answer = JSON.parse(res.body) as Record<string, unknown>;
      if (res.statusCode === 200) {
        assert.equal(typeof answer.accepted, "number");
        if (b.events !== undefined) assert.equal(answer.accepted, b.events);
        stored += answer.accepted as number;
        return;
      }
      assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${res.statusCode} ${res.body}`);
      assert.equal(typeof answer.error, "string");
      assert.equal(typeof answer.message, "string");
      assert.ok(!String(answer.message).includes("    at "), "no stack trace");
      assert.match(String(res.headers["content-type"]), /^application\/json/);
    }),
    { numRuns: 400 },
  );

  assert.equal((await t.call("GET", "/healthz")).status, 200);
  // All or nothing: exactly the accepted events are stored, none from refused requests.
  let n = -1;
  for (let i = 0; i < 100 && n !== stored; i++) {
    const res = await t.call("POST", "/api/v1/query", {
      token: t.adminToken,
      body: { sql: "SELECT count(*) FROM anything" },
    });
    n = Number((res.body.rows as unknown[][])[0]![0]);
    if (n !== stored) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(n, stored);
});
