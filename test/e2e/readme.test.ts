/** The README's tour is an example that runs: execute it against a real server and check its answers. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { startServerProcess, tempDataDir } from "../helpers/server-process.js";

const ROOT = new URL("../..", import.meta.url).pathname;

test("the README tour runs and prints the numbers it promises", async () => {
  const readme = readFileSync(`${ROOT}README.md`, "utf8");
  const tour = /## A tour[^\n]*\n[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(tour, "README has a tour");
  const data = await tempDataDir();
  const server = await startServerProcess(data.dir, { RUNNEL_ADMIN_PASSWORD: "change-me-please" });
  try {
    const script = tour.replaceAll("http://127.0.0.1:8080", server.url);
    const run = spawnSync("bash", ["-euo", "pipefail", "-c", script], { encoding: "utf8", timeout: 120_000 });
    assert.equal(run.status, 0, run.stderr);
    const promised = [...tour.matchAll(/^# → (.*)$/gm)].map((m) => m[1]!);
    assert.ok(promised.length >= 2);
    for (const answer of promised) assert.ok(run.stdout.includes(answer), `the tour printed ${answer}\n${run.stdout}`);
  } finally {
    await server.kill();
    await data.remove();
  }
});
