/**
 * Schemathesis against a real server started from the CLI (scripts/fuzz.sh): every operation of
 * the OpenAPI document with generated valid and invalid input; no 5xx, every error in API.md's
 * JSON shape. Bounded to a few cases per operation so the suite stays fast; run the script with
 * FUZZ_EXAMPLES=200 for a deep run. Never skipped: if schemathesis cannot be installed, this fails.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("../../scripts/fuzz.sh", import.meta.url));

test("schemathesis finds no 5xx and no malformed error", { timeout: 240_000 }, async () => {
  const child = spawn("bash", [SCRIPT], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  let output = "";
  child.stdout.on("data", (c: Buffer) => {
    output += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    output += c.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  assert.equal(code, 0, `scripts/fuzz.sh failed (exit ${code}; 3 = schemathesis could not be installed):\n${output}`);
  assert.doesNotMatch(output, /= FAILURES =/, output);
  assert.match(output, /No issues found|fuzz: no findings/, output);
});
