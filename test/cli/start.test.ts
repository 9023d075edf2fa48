/** `runnel start` parses its flags, and refuses bad input with one clear line and a non-zero exit. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Client } from "../helpers/http.js";
import { startServerProcess, tempDataDir } from "../helpers/server-process.js";
import { runCli, spawnCli } from "./cli-process.js";

const runnel = (args: string[], env: Record<string, string> = {}) =>
  runCli(args, { env: { RUNNEL_ADMIN_PASSWORD: "", ...env } });

test("first start without RUNNEL_ADMIN_PASSWORD exits 1 with a clear message", async () => {
  const data = await tempDataDir();
  try {
    const res = await runnel(["start", "--port", "0"], { RUNNEL_DATA_DIR: data.dir });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^runnel start: no admin account exists yet: set RUNNEL_ADMIN_PASSWORD/);
    assert.equal(res.stderr.split("\n").length, 1);
  } finally {
    await data.remove();
  }
});

test("unknown options and commands exit 2 naming them", async () => {
  const option = await runnel(["start", "--colour", "red"]);
  assert.equal(option.code, 2);
  assert.equal(option.stderr, 'runnel start: unknown option "--colour" (see runnel start --help)');
  const command = await runnel(["launch"]);
  assert.equal(command.code, 2);
  assert.equal(command.stderr, 'runnel: unknown command "launch" (see runnel --help)');
});

test("a bad flag value exits 2 naming the flag; the same value from the environment exits 1", async () => {
  const flag = await runnel(["start", "--port", "eighty"]);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /^runnel start: invalid configuration: RUNNEL_PORT \(--port\) must be an integer/);
  assert.equal(flag.stderr.split("\n").length, 1);
  const env = await runnel(["start"], { RUNNEL_PORT: "eighty" });
  assert.equal(env.code, 1);
  assert.match(env.stderr, /^runnel start: invalid configuration: RUNNEL_PORT \(--port\) must be an integer/);
  const missing = await runnel(["start", "--port", "--host", "127.0.0.1"]);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr, "runnel start: option --port needs a value (see runnel start --help)");
});

test("start takes its flags spaced or with =, and they win over the environment", async () => {
  const data = await tempDataDir();
  const child = spawnCli(
    [
      "start",
      "--data-dir",
      data.dir,
      "--port=0",
      "--host",
      "127.0.0.1",
      "--log-level=warn",
      "--default-partitions",
      "3",
    ],
    { RUNNEL_ADMIN_PASSWORD: "admin-password-1", RUNNEL_DATA_DIR: "/nonexistent/elsewhere", RUNNEL_PORT: "1" },
  );
  try {
    let stderr = "";
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on("data", (c: Buffer) => {
        stderr += c.toString();
        const m = /^runnel: listening on (http:\/\/127\.0\.0\.1:\d+) \(data in (.*)\)$/m.exec(stderr);
        if (m) {
          assert.equal(m[2], data.dir);
          resolve(m[1]!);
        }
      });
      child.once("exit", (code) => reject(new Error(`exited with ${code}: ${stderr}`)));
    });
    const admin = await new Client(url).login("admin", "admin-password-1");
    const created = await admin.post<{ partitions: number }>("/api/v1/streams", { name: "clicks" });
    assert.equal(created.status, 201);
    assert.equal(created.body.partitions, 3, "--default-partitions applied");
    const exited = new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    await data.remove();
  }
});

test("a second start on the same data directory exits 1 with one line naming the holder and Kafka", async () => {
  const data = await tempDataDir();
  const first = await startServerProcess(data.dir);
  try {
    const second = await runnel(["start", "--port", "0"], { RUNNEL_DATA_DIR: data.dir });
    assert.equal(second.code, 1);
    assert.match(
      second.stderr,
      new RegExp(`^runnel start: failed to start: the local log in \\S+ is in use by process ${first.child.pid} on `),
    );
    assert.match(second.stderr, /RUNNEL_KAFKA_BROKERS/);
    assert.equal(second.stderr.split("\n").length, 1);
    // The first is untouched: still serving.
    assert.equal((await fetch(`${first.url}/healthz`)).status, 200);
  } finally {
    await first.kill();
    await data.remove();
  }
});
