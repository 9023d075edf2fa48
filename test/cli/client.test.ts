/** `runnel produce`, `tail` and `query` against a real server process, as a user runs them. */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Client } from "../helpers/http.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";
import { runCli, spawnCli } from "./cli-process.js";

let data: Awaited<ReturnType<typeof tempDataDir>>;
let server: ServerProcess;
let admin: Client;
let token: string;

before(async () => {
  data = await tempDataDir();
  server = await startServerProcess(data.dir);
  admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
  const login = await new Client(server.url).post<{ token: string }>("/api/v1/auth/login", {
    username: "admin",
    password: ADMIN_PASSWORD,
  });
  token = login.body.token;
  const res = await admin.post("/api/v1/streams", {
    name: "clicks",
    partitions: 2,
    schema: { type: "object", required: ["page"] },
  });
  assert.equal(res.status, 201);
});
after(async () => {
  await server.kill();
  await data.remove();
});

const serverEnv = (): Record<string, string> => ({ RUNNEL_URL: server.url, RUNNEL_API_KEY: token });

function run(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}) {
  return runCli(args, { ...options, env: { ...serverEnv(), ...options.env } });
}

async function count(where = "true"): Promise<number> {
  const res = await admin.queryUntil(`SELECT count(*) FROM clicks WHERE ${where}`, () => true);
  return Number(res.rows[0]![0]);
}

test("produce sends an NDJSON file in batches and is quiet when not a terminal", async () => {
  const file = join(data.dir, "clicks.ndjson");
  await writeFile(
    file,
    Array.from({ length: 2500 }, (_, i) => JSON.stringify({ user_id: `u${i % 7}`, page: `/p${i}`, src: "file" })).join(
      "\n",
    ),
  );
  const res = await run(["produce", "clicks", file, "--batch-size", "1000"]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stderr, "");
  const n = await admin.queryUntil("SELECT count(*) FROM clicks WHERE src = 'file'", (rows) => rows[0]![0] === 2500);
  assert.equal(n.rows[0]![0], 2500);
});

test("produce reads a JSON array from stdin", async () => {
  const events = [
    { user_id: "a", page: "/x", src: "stdin" },
    { user_id: "b", page: "/y", src: "stdin" },
  ];
  const res = await run(["produce", "clicks", "-"], { stdin: JSON.stringify(events, null, 2) });
  assert.equal(res.code, 0, res.stderr);
  const n = await admin.queryUntil("SELECT count(*) FROM clicks WHERE src = 'stdin'", (rows) => rows[0]![0] === 2);
  assert.equal(n.rows[0]![0], 2);
});

test("a refused batch is one clear line and exit 1", async () => {
  const res = await run(["produce", "clicks"], { stdin: '{"user_id":"a","page":"/ok"}\n{"user_id":"a"}\n' });
  assert.equal(res.code, 1);
  assert.equal(res.stderr.split("\n").length, 1, res.stderr);
  assert.match(res.stderr, /^runnel produce: batch starting at line 1 refused: 400 invalid_events: .*event 1: schema/);
});

test("produce: hostile events are refused in one line naming the limit, whether NDJSON or a JSON array", async () => {
  const ndjson = await run(["produce", "clicks"], { stdin: '{"user_id":"a","user_id":"b","src":"dup"}\n' });
  assert.equal(ndjson.code, 1);
  assert.match(
    ndjson.stderr,
    /^runnel produce: batch starting at line 1 refused: 400 invalid_json: .*duplicate field "user_id"/,
  );
  // A JSON array is re-serialised element by element, which would keep only the last name.
  const array = await run(["produce", "clicks", "-"], {
    stdin: '[{"user_id":"a","src":"dup"},{"user_id":"a","user_id":"b","src":"dup"}]',
  });
  assert.equal(array.code, 1);
  assert.match(array.stderr, /^runnel produce: stdin, element 2, is refused: duplicate field "user_id"/);
  const deep = await run(["produce", "clicks", "-"], {
    stdin: `[{"user_id":"a","v":${"[".repeat(20_000)}${"]".repeat(20_000)}}]`,
  });
  assert.equal(deep.code, 1);
  assert.match(deep.stderr, /^runnel produce: stdin, element 1, is refused: nesting is deeper than 1000 levels/);
  assert.equal(deep.stderr.split("\n").length, 1, deep.stderr);
  const n = await admin.queryUntil("SELECT count(*) FROM clicks WHERE src = 'dup'", () => true);
  assert.equal(n.rows[0]![0], 0);
});

test("query prints a table, NDJSON or CSV", async () => {
  await count();
  const sql = "SELECT user_id, count(*) AS n FROM clicks WHERE src = 'stdin' GROUP BY user_id ORDER BY user_id";
  const nd = await run(["query", sql, "--format", "ndjson"]);
  assert.equal(nd.code, 0, nd.stderr);
  assert.deepEqual(
    nd.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l)),
    [
      { user_id: "a", n: 1 },
      { user_id: "b", n: 1 },
    ],
  );
  const csv = await run(["query", sql, "--format=csv"]);
  assert.equal(csv.stdout, "user_id,n\r\na,1\r\nb,1\r\n");
  const table = await run(["query", sql, "--format", "table"]);
  assert.match(table.stdout, /user_id │ n\n/);
  assert.match(table.stdout, /\(2 rows\)\n$/);
});

test("tail prints new events as NDJSON until interrupted", async () => {
  const child = spawnCli(["tail", "clicks"], serverEnv());
  let stdout = "";
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  // The tail starts at the end of the log: keep producing until it has seen something.
  for (let i = 0; i < 100 && !stdout.includes('"src":"tail"'); i++) {
    await admin.post("/api/v1/streams/clicks/events", { user_id: "t", page: `/t${i}`, src: "tail" });
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGINT");
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  assert.equal(code, 0);
  const first = JSON.parse(stdout.trim().split("\n")[0]!) as Record<string, unknown>;
  assert.equal(first.src, "tail");
  assert.equal(first.user_id, "t");
});

test("errors are one line: bad key, unreachable server, usage", async () => {
  const bad = await run(["query", "SELECT 1"], { env: { RUNNEL_API_KEY: "nope" } });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^runnel query: 401 unauthorized: /);
  const down = await run(["query", "SELECT 1", "--url", "http://127.0.0.1:2"]);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /^runnel query: cannot reach http:\/\/127\.0\.0\.1:2: ECONNREFUSED$/);
  const usage = await run(["produce"]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /^runnel produce: produce needs <stream> \(see runnel produce --help\)$/);
  const missing = await run(["produce", "clicks", "/nonexistent.ndjson"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot read \/nonexistent\.ndjson: ENOENT/);
});

test("--url and --key win over the environment, spaced or with =", async () => {
  const sql = "SELECT count(*) AS n FROM clicks WHERE src = 'stdin'";
  const env = { RUNNEL_URL: "http://127.0.0.1:2", RUNNEL_API_KEY: "nope" };
  const res = await run(["query", sql, "--url", server.url, `--key=${token}`, "--format", "csv"], { env });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout, "n\r\n2\r\n");
});

test("bad flag values exit 2 naming the flag, before any request", async () => {
  const batch = await run(["produce", "clicks", "--batch-size", "lots"], { stdin: '{"page":"/never"}\n' });
  assert.equal(batch.code, 2);
  assert.equal(
    batch.stderr,
    'runnel produce: --batch-size must be an integer from 1 to 100000, got "lots" (see runnel produce --help)',
  );
  const url = await run(["tail", "clicks", "--url", "ftp://example.com"]);
  assert.equal(url.code, 2);
  assert.match(url.stderr, /^runnel tail: --url must start with http:\/\/ or https:\/\/, got "ftp:\/\/example\.com"/);
  const key = await run(["query", "SELECT 1", "--key"]);
  assert.equal(key.code, 2);
  assert.equal(key.stderr, "runnel query: option --key needs a value (see runnel query --help)");
  assert.equal(await count("page = '/never'"), 0, "nothing was sent");
});
