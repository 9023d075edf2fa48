/** docs/rollups.md's example is one that runs: execute it against a real server and check its answers. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { startServerProcess, tempDataDir } from "../helpers/server-process.js";

const ROOT = new URL("../..", import.meta.url).pathname;

test("the example of docs/rollups.md runs and prints what it promises", async () => {
  const doc = readFileSync(`${ROOT}docs/rollups.md`, "utf8");
  const example = /## An example that runs[^\n]*\n[\s\S]*?```sh\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(example, "docs/rollups.md has the example");
  const data = await tempDataDir();
  const server = await startServerProcess(data.dir, { RUNNEL_ADMIN_PASSWORD: "change-me-please" });
  try {
    const script = example.replaceAll("http://127.0.0.1:8080", server.url);
    const run = spawnSync("bash", ["-euo", "pipefail", "-c", script], { encoding: "utf8", timeout: 120_000 });
    assert.equal(run.status, 0, run.stderr);
    const promised = [...example.matchAll(/^# → (.*)$/gm)].map((m) => m[1]!);
    assert.equal(promised.length, 2);
    for (const answer of promised)
      assert.ok(run.stdout.includes(answer), `the example printed ${answer}\n${run.stdout}`);
  } finally {
    await server.kill();
    await data.remove();
  }
});
