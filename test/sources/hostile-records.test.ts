/**
 * Issue 14's limits on the source paths: a record nested 20,000 deep, one with a duplicate field
 * name, a logfmt line repeating a key, and one stamped 9999-12-31 go to the stream's dead-letter
 * stream with the reason, through a real Mosquitto and a tailed file, while their good neighbours
 * land in the stream.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { appendFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { tempDataDir } from "../helpers/server-process.js";
import { type Instance, mqttUrl, startInstance, waitFor } from "./helpers.js";

const url = mqttUrl();
const prefix = `h${randomUUID().slice(0, 8)}`;
const deep = `{"user_id":"ann","v":${"[".repeat(20_000)}${"]".repeat(20_000)}}`;
const HOSTILE = [
  deep,
  '{"user_id":"ann","user_id":"bob","n":1}',
  JSON.stringify({ user_id: "ann", timestamp: "9999-12-31T00:00:00Z" }),
];
const REASONS = [
  /RUNNEL_MAX_JSON_DEPTH/,
  /duplicate field "user_id"/,
  /9999-12-31T00:00:00.000Z is more than 1h ahead/,
];

let data: Awaited<ReturnType<typeof tempDataDir>>;
let publisher: MqttClient;
let r: Instance;
let logFile: string;
let textFile: string;

before(async () => {
  data = await tempDataDir();
  logFile = join(data.dir, "app.ndjson");
  textFile = join(data.dir, "app.logfmt");
  await writeFile(logFile, "");
  await writeFile(textFile, "");
  const sourcesFile = join(data.dir, "sources.json");
  await writeFile(
    sourcesFile,
    JSON.stringify({
      sources: [
        {
          name: "devices",
          type: "mqtt",
          url,
          clientId: `runnel-${prefix}`,
          topics: [{ filter: `${prefix}/+`, stream: "telemetry" }],
        },
        { name: "app", type: "file", path: logFile, stream: "app_events", pollInterval: "50ms" },
        {
          name: "text",
          type: "file",
          path: textFile,
          stream: "app_lines",
          format: "lines",
          parser: "logfmt",
          pollInterval: "50ms",
        },
      ],
    }),
  );
  publisher = await mqtt.connectAsync(url, { protocolVersion: 4 });
  r = await startInstance(data.dir, { RUNNEL_SOURCES_FILE: sourcesFile });
  for (const name of ["telemetry", "app_events", "app_lines"]) {
    const res = await r.call("POST", "/api/v1/streams", { name, partitions: 2 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }
  const running = await waitFor(
    async () => (await r.call("GET", "/api/v1/sources/devices")).body,
    (s) => s.state === "running",
  );
  assert.equal(running.state, "running", JSON.stringify(running));
});
after(async () => {
  await r?.runnel.stop();
  await publisher?.endAsync();
  await data?.remove();
});

async function reasons(stream: string): Promise<string[]> {
  const res = await r.call("POST", "/api/v1/query", {
    sql: `SELECT reason FROM ${stream}_dead_letter ORDER BY received_at, _offset`,
  });
  return (res.body.rows as string[][]).map((row) => row[0]!);
}

function assertReasons(found: string[]): void {
  assert.equal(found.length, REASONS.length, JSON.stringify(found));
  for (const reason of REASONS)
    assert.ok(
      found.some((f) => reason.test(f)),
      `${reason} in ${JSON.stringify(found)}`,
    );
}

test("MQTT: hostile payloads go to the dead-letter stream with the reason; good ones land", async () => {
  await publisher.publishAsync(`${prefix}/d1`, JSON.stringify({ user_id: "ann", n: 0 }), { qos: 1 });
  for (const payload of HOSTILE) await publisher.publishAsync(`${prefix}/d1`, payload, { qos: 1 });
  await publisher.publishAsync(`${prefix}/d1`, JSON.stringify({ user_id: "ann", n: 1 }), { qos: 1 });
  assert.equal(await r.countUntil("SELECT count(*) FROM telemetry_dead_letter", HOSTILE.length), HOSTILE.length);
  assert.equal(await r.countUntil("SELECT count(*) FROM telemetry", 2), 2);
  assertReasons(await reasons("telemetry"));
});

test("file: hostile lines go to the dead-letter stream with the reason; good ones land", async () => {
  await appendFile(
    logFile,
    [JSON.stringify({ user_id: "ann", n: 0 }), ...HOSTILE, JSON.stringify({ user_id: "ann", n: 1 }), ""].join("\n"),
  );
  assert.equal(await r.countUntil("SELECT count(*) FROM app_events_dead_letter", HOSTILE.length), HOSTILE.length);
  assert.equal(await r.countUntil("SELECT count(*) FROM app_events", 2), 2);
  assertReasons(await reasons("app_events"));
});

test("file, logfmt: a repeated key is refused like a duplicate JSON field", async () => {
  await appendFile(textFile, "user_id=ann level=info\nuser_id=ann user_id=bob level=warn\n");
  assert.equal(await r.countUntil("SELECT count(*) FROM app_lines_dead_letter", 1), 1);
  assert.equal(await r.countUntil("SELECT count(*) FROM app_lines", 1), 1);
  assert.match((await reasons("app_lines"))[0]!, /logfmt: duplicate key "user_id"/);
});
