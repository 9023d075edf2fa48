/**
 * The package as a user gets it: `npm pack` of the built project, `npm install <tarball>` into an
 * empty directory (dependencies from the registry, or npm's cache when it has them), then
 * `npx runnel start` on a fresh data dir. The Dockerfile runs the same three commands.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Client } from "../helpers/http.js";
import { until } from "../helpers/poll.js";
import { untilListening } from "../helpers/server-process.js";

const ROOT = join(import.meta.dirname, "..", "..");
const PASSWORD = "package-test-password";

let dir = "";
let runnel: ChildProcess | undefined;

function npm(args: readonly string[], cwd: string): string {
  return execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
}

before(async () => {
  // scripts/test.sh builds before the suite; alone, this test builds what it packs.
  if (!existsSync(join(ROOT, "dist/bin/runnel.js")) || !existsSync(join(ROOT, "web/dist/index.html"))) {
    execFileSync("bash", ["scripts/build.sh"], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
  }
  dir = await mkdtemp(join(tmpdir(), "runnel-package-"));
  await mkdir(join(dir, "app"));
  await writeFile(join(dir, "app", "package.json"), `${JSON.stringify({ private: true })}\n`);
});

/** Stops runnel as `docker stop` does (SIGTERM) and waits until it has exited. */
async function stop(): Promise<void> {
  if (runnel === undefined || runnel.exitCode !== null || runnel.signalCode !== null) return;
  // "close": every holder of the pipes, runnel under npx included, has exited.
  const closed = new Promise((resolve) => runnel!.once("close", resolve));
  // npx does not pass SIGTERM on to runnel: signal the whole process group it leads.
  process.kill(-runnel.pid!, "SIGTERM");
  await closed;
}

after(async () => {
  await stop();
  await rm(dir, { recursive: true, force: true });
});

/** Runs `npx runnel start` in `app` on `dataDir`; resolves once it listens. */
async function start(app: string, dataDir: string): Promise<{ url: string; stderr: () => string }> {
  runnel = spawn("npx", ["--no-install", "runnel", "start", "--port", "0", "--data-dir", dataDir], {
    cwd: app,
    env: { ...process.env, RUNNEL_ADMIN_PASSWORD: PASSWORD, RUNNEL_LOG_LEVEL: "warn" },
    stdio: ["ignore", "ignore", "pipe"],
    detached: true,
  });
  return untilListening(runnel);
}

test("the packed tarball installs into an empty directory and runs: ready, dashboard, ingest, query", {
  timeout: 180_000,
}, async () => {
  const [packed] = JSON.parse(npm(["pack", "--ignore-scripts", "--json", "--pack-destination", dir], ROOT)) as {
    filename: string;
    files: { path: string }[];
  }[];
  const shipped = packed!.files.map((f) => f.path);
  assert.ok(shipped.includes("dist/bin/runnel.js"), "the compiled bin is packed");
  assert.ok(shipped.includes("dist/src/index.d.ts"), "declarations are packed");
  assert.ok(shipped.includes("web/dist/index.html"), "the dashboard is packed");
  assert.ok(!shipped.some((p) => p.startsWith("src/") || p.startsWith("test/")), "sources and tests stay out");

  const app = join(dir, "app");
  // --prefer-offline: what npm's cache holds is not fetched again; the rest comes from the registry.
  npm(["install", "--prefer-offline", join(dir, packed!.filename)], app);
  assert.ok(!existsSync(join(app, "node_modules", "tsx")), "tsx is a development tool, not installed with the package");

  // The image mounts its root read-only: Runnel must write nowhere in its installation.
  const installed = await readdir(app, { recursive: true });
  const { url } = await start(app, join(dir, "data"));
  const ready = await until(
    () => fetch(`${url}/readyz`).then((r) => r.status),
    (status) => status === 200,
    "/readyz",
  );
  assert.equal(ready, 200);

  const page = await fetch(`${url}/`);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /<title>Runnel/);
  const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  assert.ok(script !== undefined, html);
  assert.equal((await fetch(`${url}${script}`)).status, 200, script);

  const login = await new Client(url).post<{ token: string }>("/api/v1/auth/login", {
    username: "admin",
    password: PASSWORD,
  });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  const admin = new Client(url).as(login.body.token);
  assert.equal((await admin.post("/api/v1/streams", { name: "orders" })).status, 201);
  const ingested = await admin.post("/api/v1/streams/orders/events", [
    { user_id: "a", amount: 2 },
    { user_id: "b", amount: 40 },
  ]);
  assert.equal(ingested.status, 200, JSON.stringify(ingested.body));
  const answer = await until(
    () => admin.post<{ rows: unknown[][] }>("/api/v1/query", { sql: "SELECT sum(amount) AS total FROM orders" }),
    (r) => r.status === 200 && r.body.rows[0]?.[0] === 42,
    "the query to see both events",
  );
  assert.deepEqual(answer.body.rows, [[42]]);

  await stop();
  assert.deepEqual((await readdir(app, { recursive: true })).sort(), installed.sort());
});
