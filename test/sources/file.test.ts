/**
 * The file source: NDJSON and parsed lines, partial lines, rotation, truncation, dead letters,
 * and a persisted position that a restart neither re-reads nor skips, even when the checkpoint
 * is older than the log (a crash between append and checkpoint).
 */
import assert from "node:assert/strict";
import { appendFile, readFile, rename, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { tempDataDir } from "../helpers/server-process.js";
import { type Instance, startInstance } from "./helpers.js";

let data: Awaited<ReturnType<typeof tempDataDir>>;
let logFile: string;
let textFile: string;
let sourcesFile: string;

before(async () => {
  data = await tempDataDir();
  logFile = join(data.dir, "app.ndjson");
  textFile = join(data.dir, "app.log");
  sourcesFile = join(data.dir, "sources.json");
  await writeFile(
    sourcesFile,
    JSON.stringify({
      sources: [
        { name: "app", type: "file", path: logFile, stream: "app_events", pollInterval: "50ms" },
        {
          name: "text",
          type: "file",
          path: textFile,
          stream: "app_lines",
          format: "lines",
          parser: { regex: "^(?<level>[A-Z]+) (?<user_id>\\w+) (?<msg>.*)$" },
          pollInterval: "50ms",
        },
      ],
    }),
  );
});
after(() => data.remove());

async function start(): Promise<Instance> {
  const r = await startInstance(data.dir, { RUNNEL_SOURCES_FILE: sourcesFile });
  for (const name of ["app_events", "app_lines"]) {
    const res = await r.call("POST", "/api/v1/streams", { name, partitions: 2 });
    assert.ok(res.status === 201 || res.status === 409, JSON.stringify(res.body));
  }
  return r;
}

const line = (n: number) => `${JSON.stringify({ user_id: `u${n % 3}`, n })}\n`;
const lines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => line(from + i)).join("");
const total = "SELECT count(*) FROM app_events";
const distinct = "SELECT count(DISTINCT n) FROM app_events";

test("tails NDJSON, waits for a partial line, dead-letters a malformed one", async () => {
  await writeFile(logFile, lines(0, 10));
  const r = await start();
  try {
    assert.equal(await r.countUntil(total, 10), 10);
    await appendFile(logFile, `${lines(10, 12)}{"user_id":"u1","n":`);
    assert.equal(await r.countUntil(total, 12), 12);
    await appendFile(logFile, "12}\n{broken\n");
    assert.equal(await r.countUntil(total, 13), 13);
    assert.equal(await r.countUntil("SELECT count(*) FROM app_events_dead_letter", 1), 1);
    const dl = await r.call("POST", "/api/v1/query", {
      sql: "SELECT reason, payload, file FROM app_events_dead_letter",
    });
    const [reason, payload, file] = (dl.body.rows as string[][])[0]!;
    assert.match(reason!, /not JSON/);
    assert.equal(payload, "{broken");
    assert.equal(file, logFile);
  } finally {
    await r.runnel.stop();
  }
});

test("a restart continues where it left off: nothing re-read, nothing skipped", async () => {
  await appendFile(logFile, lines(13, 20));
  const r = await start();
  try {
    assert.equal(await r.countUntil(total, 20), 20);
    assert.equal(await r.count(distinct), 20);
  } finally {
    await r.runnel.stop();
  }
});

test("a checkpoint older than the log (crash before it was written) is corrected from the log's tags", async () => {
  const checkpoint = join(data.dir, "sources", "app.position.json");
  const before = await readFile(checkpoint, "utf8");
  const r1 = await start();
  await appendFile(logFile, lines(20, 25));
  assert.equal(await r1.countUntil(total, 25), 25);
  await r1.runnel.stop();
  // Put back the checkpoint from before those five lines, as if the process died right after the append.
  await writeFile(checkpoint, before);
  const r2 = await start();
  try {
    await appendFile(logFile, lines(25, 26));
    assert.equal(await r2.countUntil(total, 26), 26);
    assert.equal(await r2.count(distinct), 26);
  } finally {
    await r2.runnel.stop();
  }
});

test("follows rotation (rename and a new file) and truncation", async () => {
  const r = await start();
  try {
    await appendFile(logFile, lines(26, 28));
    await rename(logFile, `${logFile}.1`);
    await appendFile(`${logFile}.1`, lines(28, 29));
    await writeFile(logFile, lines(29, 31));
    assert.equal(await r.countUntil(total, 31), 31);
    await truncate(logFile, 0);
    await writeFile(logFile, lines(31, 33));
    assert.equal(await r.countUntil(total, 33), 33);
    assert.equal(await r.count(distinct), 33);
  } finally {
    await r.runnel.stop();
  }
});

test("plain lines through a regex parser; a line that does not match is dead-lettered", async () => {
  await writeFile(textFile, "INFO ann disk is fine\nWARN bob disk almost full\nnonsense\n");
  const r = await start();
  try {
    assert.equal(await r.countUntil("SELECT count(*) FROM app_lines", 2), 2);
    assert.equal(await r.count("SELECT count(*) FROM app_lines WHERE level = 'WARN' AND user_id = 'bob'"), 1);
    assert.equal(await r.countUntil("SELECT count(*) FROM app_lines_dead_letter", 1), 1);
  } finally {
    await r.runnel.stop();
  }
});

test("a value that does not fit its column is dead-lettered, naming the column type, and the source moves on", async () => {
  const r = await start();
  try {
    await appendFile(logFile, `${JSON.stringify({ user_id: "u1", n: "thirty-three" })}\n${lines(33, 34)}`);
    assert.equal(await r.countUntil(total, 34), 34);
    assert.equal(await r.countUntil("SELECT count(*) FROM app_events_dead_letter", 2), 2);
    const dl = await r.call("POST", "/api/v1/query", {
      sql: "SELECT reason, payload FROM app_events_dead_letter WHERE reason LIKE 'column_type_mismatch%'",
    });
    const [reason, payload] = (dl.body.rows as string[][])[0]!;
    assert.match(reason!, /"n" is a string, which does not fit its column of type BIGINT/);
    assert.match(payload!, /thirty-three/);
  } finally {
    await r.runnel.stop();
  }
});
