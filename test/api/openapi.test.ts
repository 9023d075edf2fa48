/**
 * The OpenAPI document, the routes and the error catalogue kept in step (STYLE.md habit 3): every
 * registered route is documented and every documented route exists; every error code of
 * src/core/errors.ts is in the document's Error schema and in docs/api.md.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import type { HTTPMethods } from "fastify";
import { DOCS, routeKey } from "../../src/api/routes/openapi.js";
import { ERROR_CATALOGUE, ERROR_CODES } from "../../src/core/errors.js";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

type Operation = { summary: string; responses: Record<string, unknown>; security?: unknown[] };
type Document = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: { Error: { properties: { error: { enum: string[] } } } } };
};

let t: TestRunnel;
let doc: Document;

before(async () => {
  t = await startTestRunnel();
  const res = await t.app.inject({ method: "GET", url: "/api/v1/openapi.json" });
  assert.equal(res.statusCode, 200);
  doc = JSON.parse(res.body) as Document;
});
after(() => t.close());

function documented(): { method: string; url: string }[] {
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((m) => ({ method: m.toUpperCase(), url: path.replace(/\{([^}]+)\}/g, ":$1") })),
  );
}

describe("OpenAPI document", () => {
  it("is OpenAPI 3, served without credentials", () => {
    assert.match(doc.openapi, /^3\./);
  });

  it("documents every registered route, each with a written summary", () => {
    const keys = new Set(documented().map(routeKey));
    for (const route of t.app.runnelRoutes) {
      assert.ok(keys.has(routeKey(route)), `${routeKey(route)} is not in the document`);
      assert.ok(
        DOCS[routeKey(route)] !== undefined,
        `${routeKey(route)} has no entry in DOCS (src/api/routes/openapi.ts)`,
      );
    }
  });

  it("documents nothing that does not exist", () => {
    for (const op of documented()) {
      assert.ok(t.app.hasRoute({ method: op.method as HTTPMethods, url: op.url }), `${routeKey(op)} is not a route`);
    }
    for (const key of Object.keys(DOCS)) {
      assert.ok(
        t.app.runnelRoutes.some((r) => routeKey(r) === key),
        `DOCS has "${key}", which is not registered`,
      );
    }
  });

  it("gives every operation its success and error responses", () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const statuses = Object.keys(op.responses);
        assert.ok(
          statuses.some((s) => s.startsWith("2")),
          `${method} ${path}`,
        );
        assert.ok(statuses.includes("4XX") && statuses.includes("5XX"), `${method} ${path}`);
      }
    }
  });
});

describe("the error catalogue, the document and docs/api.md agree", () => {
  it("every code is in the document's Error schema", () => {
    assert.deepEqual([...doc.components.schemas.Error.properties.error.enum].sort(), [...ERROR_CODES].sort());
  });

  it("every code is listed in docs/api.md with its status, and nothing else is", async () => {
    const text = await readFile(new URL("../../docs/api.md", import.meta.url), "utf8");
    const table = new Map<string, number>();
    for (const m of text.matchAll(/^\| `([a-z0-9_]+)` \| (\d{3}) \|/gm)) table.set(m[1]!, Number(m[2]));
    for (const code of ERROR_CODES) {
      assert.equal(table.get(code), ERROR_CATALOGUE[code].status, `docs/api.md: error code ${code}`);
    }
    for (const code of table.keys()) assert.ok(code in ERROR_CATALOGUE, `docs/api.md lists unknown code ${code}`);
  });
});
