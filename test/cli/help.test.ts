/** `runnel --help`, `runnel <command> --help` and `runnel --version`, from the real command line. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { ENV_NAMES, FLAG_NAMES } from "../../src/config/config.js";
import { runCli } from "./cli-process.js";

const COMMANDS = ["start", "produce", "tail", "query"];

test("runnel --help lists every command on stdout and exits 0", async () => {
  for (const args of [["--help"], ["-h"], ["help"]]) {
    const res = await runCli(args);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, "");
    assert.match(res.stdout, /^usage: runnel <command> \[flags\]\n/);
    for (const command of COMMANDS) assert.match(res.stdout, new RegExp(`^  ${command} +\\S`, "m"), command);
  }
});

test("runnel <command> --help shows the command's operands and every flag it takes", async () => {
  const flags: Record<string, string[]> = {
    start: [
      "--data-dir DIR",
      "--port PORT",
      "--host ADDR",
      "--database-url URL",
      "--kafka-brokers HOSTS",
      "--log-level LEVEL",
      "--max-body-bytes SIZE",
      "--max-event-bytes SIZE",
      "--token-ttl DURATION",
      "--default-partitions N",
      "--sources FILE",
    ],
    produce: ["--url URL", "--key KEY", "--batch-size N"],
    tail: ["--url URL", "--key KEY"],
    query: ["--url URL", "--key KEY", "--format FORMAT"],
  };
  const usage: Record<string, string> = {
    start: "usage: runnel start [flags]",
    produce: "usage: runnel produce <stream> [FILE|-] [flags]",
    tail: "usage: runnel tail <stream> [flags]",
    query: 'usage: runnel query "<sql>" [flags]',
  };
  for (const command of COMMANDS) {
    // --help wins over missing operands; `runnel help <command>` prints the same.
    const res = await runCli([command, "--help"]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.split("\n")[0], usage[command]);
    for (const flag of [...flags[command]!, "-h, --help"]) assert.match(res.stdout, new RegExp(`^  ${flag}  `, "m"));
    assert.equal((await runCli(["help", command])).stdout, res.stdout);
  }
  const start = await runCli(["start", "-h"]);
  assert.match(start.stdout, /--port PORT +HTTP port .*\(env RUNNEL_PORT, default 8080\)/);
});

test("runnel --version prints package.json's version", async () => {
  const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  const res = await runCli(["--version"]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout, `${version}\n`);
});

test("usage mistakes are one line on stderr naming the flag, with exit code 2", async () => {
  const cases: [string[], string][] = [
    [["--colour"], 'runnel: unknown option "--colour" (see runnel --help)'],
    [["--version=2"], "runnel: option --version takes no value (see runnel --help)"],
    [[], "runnel: a command is missing (see runnel --help)"],
    [["query", "SELECT 1", "--colour=red"], 'runnel query: unknown option "--colour" (see runnel query --help)'],
    [["query", "SELECT 1", "-x"], 'runnel query: unknown option "-x" (see runnel query --help)'],
    [
      ["query", "SELECT 1", "--format", "xml"],
      'runnel query: --format must be table, ndjson or csv, got "xml" (see runnel query --help)',
    ],
    [["query", "SELECT 1", "--format"], "runnel query: option --format needs a value (see runnel query --help)"],
    [["tail", "a", "b"], 'runnel tail: unexpected argument "b" (see runnel tail --help)'],
    [["start", "--help=yes"], "runnel start: option --help takes no value (see runnel start --help)"],
    [
      ["start", "--max-body-bytes", "huge"],
      'runnel start: invalid configuration: RUNNEL_MAX_BODY_BYTES (--max-body-bytes) must be a size such as 10MiB or 4096, got "huge" (see runnel start --help)',
    ],
  ];
  for (const [args, line] of cases) {
    const res = await runCli(args);
    assert.equal(res.code, 2, `${args.join(" ")}: ${res.stderr}`);
    assert.equal(res.stderr, line);
    assert.equal(res.stdout, "");
  }
});

test("the README's configuration table names the same flags and variables as runnel start --help", async () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const documented = [...readme.matchAll(/^\| `--([a-z-]+)` \| `(RUNNEL_[A-Z_]+)` \|/gm)].map(
    (m) => `--${m[1]} ${m[2]}`,
  );
  const declared = Object.entries(FLAG_NAMES).map(([setting, flag]) => {
    return `--${flag} ${ENV_NAMES[setting as keyof typeof FLAG_NAMES]}`;
  });
  assert.deepEqual(documented.sort(), declared.sort());
  const help = (await runCli(["start", "--help"])).stdout;
  for (const line of declared) {
    const [flag, env] = line.split(" ");
    assert.match(help, new RegExp(`^  ${flag} \\S+ .*\\(env ${env}[,)]`, "m"), line);
  }
});
