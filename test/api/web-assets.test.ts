/** The dashboard's files at `/` (src/api/routes/web.ts): client routes get index.html, the API keeps its JSON 404s. */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { dashboardBuilt, PAGE_CSP, WEB_DIST, webFallback } from "../../src/api/routes/web.js";

let dir = "";
let app: FastifyInstance;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "runnel-web-"));
  await mkdir(join(dir, "assets"));
  await writeFile(join(dir, "index.html"), "<!doctype html><title>Runnel</title>");
  await writeFile(join(dir, "assets", "main-abc123.js"), "console.log(1)");
  await writeFile(join(dir, "..", "secret.txt"), "not served");
  app = Fastify();
  const web = webFallback(dir);
  app.get("/api/v1/me", async () => ({ user: {} }));
  app.setNotFoundHandler(async (request, reply) => {
    if (await web(request, reply)) return reply;
    return reply.status(404).send({ error: "not_found", message: "no route" });
  });
});
after(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
  await rm(join(dir, "..", "secret.txt"), { force: true });
});

describe("dashboard assets", () => {
  it("serves index.html at / and at client routes, with a same-origin CSP", async () => {
    for (const url of ["/", "/streams", "/alerts/live?x=1"]) {
      const res = await app.inject({ method: "GET", url });
      assert.equal(res.statusCode, 200, url);
      assert.match(res.headers["content-type"] as string, /^text\/html/);
      assert.equal(res.headers["content-security-policy"], PAGE_CSP);
      assert.equal(res.headers["cache-control"], "no-cache");
      assert.match(res.body, /<title>Runnel/);
    }
  });

  it("serves hashed assets for a year with their type", async () => {
    const res = await app.inject({ method: "GET", url: "/assets/main-abc123.js" });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers["content-type"] as string, /^text\/javascript/);
    assert.match(res.headers["cache-control"] as string, /immutable/);
    assert.equal(res.body, "console.log(1)");
  });

  it("leaves the API, missing files, other methods and escapes to the JSON 404", async () => {
    for (const [method, url] of [
      ["GET", "/api/v1/nothing"],
      ["GET", "/api"],
      ["GET", "/metrics"],
      ["GET", "/assets/missing.js"],
      ["GET", "/../secret.txt"],
      ["GET", "/assets/..%2f..%2fsecret.txt"],
      ["POST", "/streams"],
    ] as const) {
      const res = await app.inject({ method, url });
      assert.equal(res.statusCode, 404, `${method} ${url}`);
      assert.equal(res.json().error, "not_found", `${method} ${url}`);
    }
  });
});

describe("dashboard assets missing", () => {
  let bare: FastifyInstance;
  before(async () => {
    bare = Fastify();
    const web = webFallback(join(dir, "not-built"));
    bare.setNotFoundHandler(async (request, reply) => {
      if (await web(request, reply)) return reply;
      return reply.status(404).send({ error: "not_found", message: "no route" });
    });
  });
  after(() => bare.close());

  it("answers pages with one that says how to build the dashboard, never a bare 404", async () => {
    assert.equal(dashboardBuilt(join(dir, "not-built")), false);
    for (const url of ["/", "/streams"]) {
      const res = await bare.inject({ method: "GET", url });
      assert.equal(res.statusCode, 503, url);
      assert.match(res.headers["content-type"] as string, /^text\/html/);
      assert.match(res.body, /dashboard is not built/);
      assert.match(res.body, /npm run build/);
    }
    const head = await bare.inject({ method: "HEAD", url: "/" });
    assert.equal(head.statusCode, 503);
    assert.equal(head.body, "");
  });

  it("still answers a missing asset with the JSON 404", async () => {
    const res = await bare.inject({ method: "GET", url: "/assets/main.js" });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error, "not_found");
  });

  it("looks for the build under the package root, from the sources and the compiled package alike", () => {
    assert.equal(WEB_DIST, join(import.meta.dirname, "..", "..", "web", "dist"));
  });
});
