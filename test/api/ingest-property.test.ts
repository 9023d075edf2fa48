/**
 * Property: whatever body arrives at the HTTP ingest endpoint, the request is either fully
 * accepted (200, `accepted` equal to its number of events, all of them stored) or fully refused
 * (4xx with API.md's JSON error, nothing stored), and the server stays up. Bodies include the
 * shapes issue 14 found hostile: deep nesting, wide objects, duplicate names, extreme times; for
 * those the property also says which way the answer must go.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

const MAX_DEPTH = 8;
const MAX_FIELDS = 40;
let t: TestRunnel;
let userToken: string;

before(async () => {
  t = await startTestRunnel({
    env: {
      RUNNEL_MAX_BODY_BYTES: "64KiB",
      RUNNEL_MAX_EVENT_BYTES: "4KiB",
      RUNNEL_MAX_JSON_DEPTH: String(MAX_DEPTH),
      RUNNEL_MAX_JSON_FIELDS: String(MAX_FIELDS),
    },
  });
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

const enc = new TextEncoder();
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
  /** The answer this body must get: a refusal whose message matches, or acceptance. */
  readonly expect?: RegExp | "accepted";
}

/** An event whose field `v` holds `levels` nested arrays (the event itself is one more level). */
const nested = (levels: number) => `{"v":${"[".repeat(levels)}${"]".repeat(levels)}}`;
/** An object text with `n` fields, every name distinct. */
const wide = (n: number) => `{${Array.from({ length: n }, (_, i) => `"f${i}":${i}`).join(",")}}`;
const HOUR = 3_600_000;

/** Issue 14's hostile shapes, each on either side of its limit, as one event or a batch's last. */
const hostile: fc.Arbitrary<Body> = fc
  .tuple(
    fc.oneof(
      fc.integer({ min: 1, max: MAX_DEPTH - 1 }).map((l) => ({ text: nested(l), expect: "accepted" as const })),
      fc.integer({ min: MAX_DEPTH, max: 25_000 }).map((l) => ({ text: nested(l), expect: /RUNNEL_MAX_JSON_DEPTH/ })),
      fc.integer({ min: 1, max: MAX_FIELDS }).map((n) => ({ text: wide(n), expect: "accepted" as const })),
      fc
        .integer({ min: MAX_FIELDS + 1, max: 3 * MAX_FIELDS })
        .map((n) => ({ text: `{"o":${wide(n)}}`, expect: /RUNNEL_MAX_JSON_FIELDS/ })),
      fc
        .tuple(fc.constantFrom("user_id", "amount", "__proto__", "é"), fc.boolean(), fc.boolean())
        .map(([k, escaped, inner]) => {
          const second = escaped
            ? JSON.stringify(k).replace(/^"./, (m) => `"\\u${m.charCodeAt(1).toString(16).padStart(4, "0")}`)
            : JSON.stringify(k);
          const object = `{${JSON.stringify(k)}:1,${second}:2}`;
          return { text: inner ? `{"outer":${object}}` : object, expect: /duplicate field/ };
        }),
      fc
        .oneof(
          fc.constantFrom("9999-12-31T23:59:59Z", "2999-01-01", 253_402_300_799_999),
          fc.integer({ min: 2 * HOUR, max: 1000 * 86_400_000 }).map((ahead) => Date.now() + ahead),
        )
        .map((time) => ({ text: JSON.stringify({ timestamp: time }), expect: /maxFutureSkew/ })),
      fc.integer({ min: -10 * 86_400_000, max: HOUR / 2 }).map((offset) => ({
        text: JSON.stringify({ timestamp: new Date(Date.now() + offset).toISOString() }),
        expect: "accepted" as const,
      })),
    ),
    fc.constantFrom("application/json", "application/x-ndjson"),
    fc.nat({ max: 3 }),
  )
  .map(([{ text, expect }, contentType, neighbours]) => {
    // Good events before it: all or nothing means they are refused with it, or accepted with it.
    const lines = [...Array.from({ length: neighbours }, (_, n) => `{"n":${n}}`), text];
    const joined = contentType === "application/json" ? `[${lines.join(",")}]` : lines.join("\n");
    return { bytes: enc.encode(joined), contentType, expect, events: lines.length };
  });

const body: fc.Arbitrary<Body> = fc.oneof(
  { arbitrary: hostile, weight: 4 },
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
      const idemKey = idem === null ? undefined : `${idem}-${Math.random()}`;
      const res = await t.app.inject({
        method: "POST",
        url: "/api/v1/streams/anything/events",
        headers: {
          authorization: `Bearer ${userToken}`,
          ...(b.contentType !== undefined && { "content-type": b.contentType }),
          ...(idemKey !== undefined && { "idempotency-key": idemKey }),
        },
        payload: Buffer.from(b.bytes),
      });
      const answer = JSON.parse(res.body) as Record<string, unknown>;
      // A malformed Idempotency-Key is refused before the body is looked at.
      const expect = idemKey === undefined || /^[\x21-\x7e]{1,255}$/.test(idemKey) ? b.expect : undefined;
      if (expect === "accepted") assert.equal(res.statusCode, 200, res.body);
      if (expect instanceof RegExp) {
        assert.equal(res.statusCode, 400, res.body);
        assert.match(res.body, expect);
      }
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
