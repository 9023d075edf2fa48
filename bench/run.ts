/**
 * Runs benchmarks one after another, each in its own process so one cannot warm or pollute the
 * next: the files named on the command line, or every bench/*.ts.
 * Usage: npm run bench [-- bench/log-append.ts ...]
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { basename, join, relative } from "node:path";

const here = import.meta.dirname;
const named = process.argv.slice(2);
const files =
  named.length > 0
    ? named
    : readdirSync(here)
        .filter((f) => f.endsWith(".ts") && f !== basename(import.meta.filename))
        .sort()
        .map((f) => join(here, f));

const failed: string[] = [];
for (const file of files) {
  const name = relative(process.cwd(), file);
  console.log(`\n=== ${name}`);
  const { status, signal } = spawnSync(process.execPath, ["--import", "tsx", file], { stdio: "inherit" });
  if (status !== 0) failed.push(`${name} (${signal ?? `exit ${status}`})`);
}
if (failed.length > 0) {
  console.error(`\nfailed: ${failed.join(", ")}`);
  process.exit(1);
}
