/** `runnel start` refuses bad input with one clear line and a non-zero exit. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { tempDataDir } from "../helpers/server-process.js";

const ROOT = new URL("../..", import.meta.url).pathname;

function runnel(args: string[], env: Record<string, string>) {
  const res = spawnSync(process.execPath, ["--import", "tsx", "bin/runnel.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, RUNNEL_ADMIN_PASSWORD: "", ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: res.status, stderr: res.stderr.trim() };
}

test("first start without RUNNEL_ADMIN_PASSWORD exits 1 with a clear message", async () => {
  const data = await tempDataDir();
  try {
    const res = runnel(["start", "--port", "0"], { RUNNEL_DATA_DIR: data.dir });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^runnel: no admin account exists yet: set RUNNEL_ADMIN_PASSWORD/);
    assert.equal(res.stderr.split("\n").length, 1);
  } finally {
    await data.remove();
  }
});

test("unknown options and commands exit 2 naming them", () => {
  assert.deepEqual(runnel(["start", "--colour", "red"], {}).code, 2);
  assert.match(runnel(["start", "--colour", "red"], {}).stderr, /unknown option "--colour"/);
  assert.match(runnel(["launch"], {}).stderr, /unknown command "launch"/);
});

test("a bad setting exits 1 naming it", () => {
  const res = runnel(["start", "--port", "eighty"], {});
  assert.equal(res.code, 1);
  assert.match(res.stderr, /RUNNEL_PORT \(--port\) must be an integer/);
});
