/**
 * The container image's recipe (Dockerfile), checked without a Docker engine: hadolint reports
 * nothing (scripts/hadolint.sh installs it), and its steps are the ones test/package/pack.test.ts
 * proves work (npm ci, npm run build, npm pack, npm install <tarball>, runnel start).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

const ROOT = join(import.meta.dirname, "..", "..");
/** Both stages start from the NODE_IMAGE argument (a mirror can stand in for Docker Hub). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own ARG syntax
const FROM_BASE = "FROM ${NODE_IMAGE}";
const DOCKERFILE = readFileSync(join(ROOT, "Dockerfile"), "utf8");

/** The instructions, continuation lines joined, comments dropped. */
const INSTRUCTIONS = DOCKERFILE.replace(/\\\n\s*/g, " ")
  .split("\n")
  .map((line) => line.trim())
  .filter((line) => line !== "" && !line.startsWith("#"));

test("hadolint finds nothing in the Dockerfile", { timeout: 120_000 }, () => {
  const hadolint = execFileSync("bash", [join(ROOT, "scripts/hadolint.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  const run = spawnSync(hadolint, ["--format", "json", "Dockerfile"], { cwd: ROOT, encoding: "utf8" });
  assert.deepEqual(JSON.parse(run.stdout), [], run.stdout);
  assert.equal(run.status, 0, run.stderr);
});

test("the image builds and installs the package the way the packed-tarball test does", () => {
  const runs = INSTRUCTIONS.filter((i) => i.startsWith("RUN ")).join(" && ");
  for (const command of ["npm ci", "npm run build", "npm pack", "npm install --omit=dev"]) {
    assert.ok(runs.includes(command), `the Dockerfile runs ${command}`);
  }
  assert.match(runs, /npm install [^&]*runnel-\*\.tgz/);
  assert.deepEqual(
    INSTRUCTIONS.filter((i) => i.startsWith("FROM ")),
    [`${FROM_BASE} AS build`, FROM_BASE],
    "two stages on one base",
  );
  assert.ok(INSTRUCTIONS.includes("ARG NODE_IMAGE=node:24-slim"));
});

test("the runtime stage: non-root, data on a volume, health from /readyz, runnel start as the entry point", () => {
  const runtime = INSTRUCTIONS.slice(INSTRUCTIONS.lastIndexOf(FROM_BASE));
  const one = (keyword: string): string => {
    const found = runtime.filter((i) => i.startsWith(`${keyword} `));
    assert.equal(found.length, 1, `one ${keyword}: ${found.join(" | ")}`);
    return found[0]!.slice(keyword.length + 1);
  };
  assert.doesNotMatch(one("USER"), /^(0|root)\b/);
  assert.equal(one("VOLUME"), '["/data"]');
  assert.match(one("ENV"), /RUNNEL_DATA_DIR=\/data/);
  assert.match(one("HEALTHCHECK"), /CMD .*\/readyz/);
  assert.equal(one("STOPSIGNAL"), "SIGTERM");
  assert.deepEqual(JSON.parse(one("ENTRYPOINT")), ["/opt/runnel/node_modules/.bin/runnel", "start"]);
});

test(".dockerignore keeps out local state but nothing the build stage needs", () => {
  const ignored = new Set(
    readFileSync(join(ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#")),
  );
  for (const kept of ["src", "bin", "web", "scripts", "docs", "package.json", "package-lock.json", "tsconfig.json"]) {
    assert.ok(!ignored.has(kept), `${kept} reaches the build`);
  }
  for (const local of ["node_modules", "dist", "web/dist", "data", ".runnel", ".git"]) {
    assert.ok(ignored.has(local), `${local} stays out`);
  }
});
