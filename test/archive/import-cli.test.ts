/**
 * `runnel import` against real server processes, as an operator runs it: on the local archive
 * directory (progress, re-runs, refusals as one line and exit 1), and on the real S3 server with
 * the server SIGKILLed in the middle of an import, restarted, and the import run again: every
 * row committed exactly once, and no upload left that the manifest does not name.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { createPgliteControlStore } from "../../src/control/index.js";
import { runCli, spawnCli } from "../cli/cli-process.js";
import { Client } from "../helpers/http.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";
import { newBucket, s3ClientConfig, s3Url } from "./s3-server.js";

const DAY = 86_400_000;
const USERS = ["ann", "ben", "cat", "dan"];

/** `count` rows of last month, each with a unique n, the user in `customer`. */
function history(count: number, now = Date.now()): string {
  const lines: string[] = [];
  for (let n = 0; n < count; n++) {
    const time = now - 40 * DAY + Math.floor((n * 30 * DAY) / count);
    lines.push(
      JSON.stringify({ customer: USERS[n % USERS.length], timestamp: new Date(time).toISOString(), n, amount: n % 10 }),
    );
  }
  return `${lines.join("\n")}\n`;
}

async function adminOf(server: ServerProcess): Promise<{ admin: Client; token: string }> {
  const admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
  const login = await new Client(server.url).post<{ token: string }>("/api/v1/auth/login", {
    username: "admin",
    password: ADMIN_PASSWORD,
  });
  return { admin, token: login.body.token };
}

async function totals(admin: Client): Promise<unknown[]> {
  const res = await admin.post<{ rows: unknown[][] }>("/api/v1/query", {
    sql: "SELECT count(*), count(DISTINCT n), sum(amount) FROM orders",
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.rows[0]!;
}

describe("runnel import on the local archive", () => {
  let data: Awaited<ReturnType<typeof tempDataDir>>;
  let server: ServerProcess;
  let admin: Client;
  let env: Record<string, string>;

  before(async () => {
    data = await tempDataDir();
    server = await startServerProcess(data.dir, { RUNNEL_IMPORT_CHUNK_ROWS: "500" });
    const a = await adminOf(server);
    admin = a.admin;
    env = { RUNNEL_URL: server.url, RUNNEL_API_KEY: a.token };
    const res = await admin.post("/api/v1/streams", { name: "orders", partitions: 2, analytics: { hot: "1d" } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  });
  after(async () => {
    await server?.kill();
    await data?.remove();
  });

  it("imports a file with progress on stderr and the final status on stdout; a re-run commits nothing twice", async () => {
    const file = join(data.dir, "orders.ndjson");
    await writeFile(file, history(3000));
    const res = await runCli(["import", "orders", file, "--id", "march", "--user-column", "customer"], { env });
    assert.equal(res.code, 0, res.stderr);
    const status = JSON.parse(res.stdout) as Record<string, unknown>;
    assert.equal(status.state, "done");
    assert.equal(status.rowsImported, 3000);
    assert.equal(status.chunks, 6);
    assert.match(
      res.stderr,
      /import march: 3,000 rows imported of 3,000 read \([\d,]+ rows\/s\), \d+ files, [\d.]+ KiB written/,
    );
    assert.deepEqual(await totals(admin), [3000, 3000, 13500]);
    // A user column stamped user_id.
    const users = await admin.post<{ rows: unknown[][] }>("/api/v1/query", {
      sql: "SELECT count(DISTINCT user_id), min(user_id) FROM orders",
    });
    assert.deepEqual(users.body.rows, [[4, "ann"]]);
    const again = await runCli(["import", "orders", file, "--id", "march", "--user-column", "customer"], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual([JSON.parse(again.stdout).rowsSkipped, JSON.parse(again.stdout).rowsImported], [3000, 0]);
    assert.deepEqual(await totals(admin), [3000, 3000, 13500]);
    const stored = await admin.get("/api/v1/streams/orders/imports/march");
    assert.equal(stored.status, 200);
    assert.equal(stored.body.state, "done");
  });

  it("refuses bad input with one line and exit 1, naming the row, committing no bad chunk", async () => {
    const file = join(data.dir, "bad.ndjson");
    await writeFile(file, `${history(700).trim()}\n{"customer": "ann", "n": 1}\n`);
    const res = await runCli(["import", "orders", file, "--id", "bad", "--user-column", "customer"], { env });
    assert.equal(res.code, 1);
    const lines = res.stderr.split("\n");
    assert.match(
      lines.at(-1)!,
      /^runnel import: import bad failed: line 701: timestamp is required in an import .*; 500 rows before it are committed \(re-run with id bad to continue\)$/,
    );
    const failed = await admin.get("/api/v1/streams/orders/imports/bad");
    assert.deepEqual(
      [failed.body.state, failed.body.rowsImported, (failed.body.error as { code: string }).code],
      ["failed", 500, "invalid_events"],
    );
    const missing = await runCli(["import", "nope", file], { env });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^runnel import: 404 stream_not_found: stream "nope" does not exist/m);
    const noFormat = await runCli(["import", "orders", join(data.dir, "orders.txt")], { env });
    assert.equal(noFormat.code, 2);
    assert.match(noFormat.stderr, /--format is needed/);
    const both = await admin.request(
      "POST",
      "/api/v1/streams/orders/imports?format=csv&user=a&userColumn=b",
      undefined,
      {
        raw: "x",
        contentType: "text/csv",
      },
    );
    assert.deepEqual([both.status, both.body.error], [400, "invalid_input"]);
    const media = await admin.request("POST", "/api/v1/streams/orders/imports", undefined, {
      raw: "x",
      contentType: "text/plain",
    });
    assert.deepEqual([media.status, media.body.error], [415, "unsupported_media_type"]);
  });
});

describe("runnel import into an S3 bucket, the server SIGKILLed mid-import", () => {
  it("a re-run after the restart commits every row exactly once and leaves no orphaned upload", async () => {
    const url = s3Url();
    const bucket = await newBucket();
    const data = await tempDataDir();
    const s3env = {
      AWS_ENDPOINT_URL: url,
      AWS_ACCESS_KEY_ID: "runnel-test",
      AWS_SECRET_ACCESS_KEY: "runnel-test-secret",
      AWS_REGION: "us-east-1",
      RUNNEL_ARCHIVE_URL: `s3://${bucket}/runnel`,
      RUNNEL_IMPORT_CHUNK_ROWS: "1000",
    };
    const s3 = new S3Client(s3ClientConfig(url));
    let server = await startServerProcess(data.dir, s3env);
    try {
      let { admin, token } = await adminOf(server);
      const created = await admin.post("/api/v1/streams", { name: "orders", partitions: 1, analytics: { hot: "1d" } });
      assert.equal(created.status, 201);
      const file = join(data.dir, "orders.ndjson");
      const rows = 40_000;
      await writeFile(file, history(rows));
      const args = ["import", "orders", file, "--id", "big", "--user-column", "customer"];
      const first = spawnCli(args, { RUNNEL_URL: server.url, RUNNEL_API_KEY: token });
      first.stdout!.resume();
      first.stderr!.resume();
      const firstExit = new Promise((resolve) => first.once("close", resolve));
      // Once a few chunks are committed, and well before the last, the server dies.
      let chunks = 0;
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
        const s = await admin.get("/api/v1/streams/orders/imports/big");
        chunks = s.status === 200 ? Number(s.body.chunks) : 0;
        if (chunks >= 3) {
          assert.equal(s.body.state, "running", "killed mid-import");
          break;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(chunks >= 3, `${chunks} chunks committed before the kill`);
      await server.kill("SIGKILL");
      await firstExit;
      server = await startServerProcess(data.dir, s3env);
      ({ admin, token } = await adminOf(server));
      const before = (await totals(admin))[0] as number;
      assert.ok(before >= 3000 && before < rows && before % 1000 === 0, `${before} rows committed before the kill`);
      const rerun = await runCli(args, { env: { RUNNEL_URL: server.url, RUNNEL_API_KEY: token } });
      assert.equal(rerun.code, 0, rerun.stderr);
      const status = JSON.parse(rerun.stdout) as Record<string, number>;
      assert.equal(status.rowsSkipped, before);
      assert.equal(status.rowsImported, rows - before);
      assert.deepEqual(await totals(admin), [rows, rows, (rows / 10) * 45]);
      await server.kill();
      // Every object in the bucket is a committed file, and every committed file is there.
      const control = createPgliteControlStore(join(data.dir, "control"));
      await control.open();
      const committed = (await control.listImportFiles("orders", "big")).map((f) => `runnel/${f.path}`).sort();
      await control.close();
      const listed = ((await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "runnel/" }))).Contents ?? [])
        .map((o) => o.Key!)
        .sort();
      assert.deepEqual(listed, committed);
      assert.equal(new Set(committed.map((k) => k.split("/").at(-1)!.split("-")[1])).size, rows / 1000, "40 chunks");
    } finally {
      await server.kill();
      s3.destroy();
      await data.remove();
    }
  });
});
